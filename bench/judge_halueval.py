"""Faithfulness judge on HaluEval (rows 0-4999 only; rows >= 5000 are reserved).

Summarization: each row gives two pairs, (document, right_summary) = supported
and (document, hallucinated_summary) = unsupported. QA: (knowledge, question)
with right_answer = supported and hallucinated_answer = unsupported; the claim
is the answer, the evidence the knowledge paragraphs plus the question (the
question's words are not the answer's invention).

An output's score combines its claims' (sentences') scores from the offline
judge (``eval.judges.judge_output``: a calibrated blend of the weakest claim and
the size-weighted mean on the logit scale, capped by any claim showing a
negation or antonym flip). Reported, per split: balanced accuracy at the
calibrated threshold and ROC AUC, overall and on the length-matched subset
(pairs whose two outputs differ in word count by at most 10%), next to the
baseline "share of the output's content words that never occur in the
evidence" (its best threshold chosen in-sample, i.e. optimistic); then seconds
per 100 claims of ``judge_output`` with fresh judges (no embedding cache), and
accuracy per kind on ``eval/data/seed_judge_pairs.jsonl`` (a hand-written test
set, never fitted on).

With ``--fit`` the claim-level logistic model is fitted on the train rows of
the summarization task only (see ``fit`` below: sign constraints, priors for
the contradiction cues) and written to ``eval/data/judge_calibration.json``;
the test rows are never seen by the fit.

    .venv/bin/python bench/judge_halueval.py --fit                  # fit on 0-2499, report 2500-4999 and 0-4999
    .venv/bin/python bench/judge_halueval.py --limit 200            # quick: first 200 rows of each split
    .venv/bin/python bench/judge_halueval.py --train 0-1499 --test 2500-3999 --fit
    .venv/bin/python bench/judge_halueval.py --fit --dry-run --tasks summarization --synonym-cosine 0.6

Embeddings are cached on disk (``--cache``, default ``~/.cache/grounded-rag``)
keyed by text, so reruns only recompute the cheap lexical features.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import pickle
import time
from pathlib import Path

import numpy as np
from common import ROOT, table

from eval import judges
from eval.datasets import RESERVED_FROM, halueval_qa, halueval_summarization
from eval.metrics import balanced_accuracy, best_threshold, roc_auc
from rag.embeddings import embed_texts
from rag.lexical import tokenize

SEED_PAIRS = ROOT / "eval" / "data" / "seed_judge_pairs.jsonl"
# Paraphrases and contradictions over a BBC business article: looked at while designing features (not fitted on).
DEV_PAIRS = ROOT / "eval" / "data" / "judge_dev_pairs.jsonl"


class CachedEmbedder:
    """embed_texts with a persistent text -> vector cache (float16 on disk)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.cache: dict[bytes, np.ndarray] = {}
        if path and path.is_file():
            with open(path, "rb") as fh:
                self.cache = pickle.load(fh)
        self.new = 0
        self.seconds = 0.0
        self.computed = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).digest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            t0 = time.perf_counter()
            vecs = embed_texts([texts[i] for i in todo])
            self.seconds += time.perf_counter() - t0
            self.computed += len(todo)
            for i, v in zip(todo, vecs):
                self.cache[keys[i]] = v.astype(np.float16)
            self.new += len(todo)
        out = np.stack([self.cache[k].astype(np.float32) for k in keys]) if keys else np.zeros((0, 384), np.float32)
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)

    def save(self) -> None:
        if self.path and self.new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(self.cache, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(self.path)
            self.new = 0


def parse_rows(spec: str, limit: int | None) -> range:
    lo, hi = (int(x) for x in spec.split("-"))
    if hi >= RESERVED_FROM:
        raise SystemExit(f"rows >= {RESERVED_FROM} are reserved for independent measurement")
    rows = range(lo, hi + 1)
    return rows[:limit] if limit else rows


def novel_share(output: str, evidence: str) -> float:
    """Baseline: share of the output's content words that never occur in the evidence."""
    words = tokenize(output)
    if not words:
        return 0.0
    present = set(tokenize(evidence))
    return sum(w not in present for w in words) / len(words)


def pairs_for(task: str, rows: range):
    """(row, evidence, supported_output, unsupported_output) for each row."""
    if task == "summarization":
        for r in halueval_summarization(rows):
            yield r["row"], r["document"], r["right_summary"], r["hallucinated_summary"]
    else:
        for r in halueval_qa(rows):
            yield r["row"], [r["knowledge"], r["question"]], r["right_answer"], r["hallucinated_answer"]


def featurize(task: str, rows: range, judge: judges.OfflineJudge, embedder: CachedEmbedder, progress: bool = True):
    """Per pair: claim feature matrices of both outputs, baseline scores, word counts."""
    out = []
    t0 = time.perf_counter()
    n_claims = 0
    for n, (row, evidence, good, bad) in enumerate(pairs_for(task, rows)):
        ev = judge.evidence(evidence)
        claims = [judges.split_claims(good), judges.split_claims(bad)]
        vecs = judge.prefetch(claims[0] + claims[1], ev)
        mats, sizes = [], []
        for part, offset in ((claims[0], 0), (claims[1], len(claims[0]))):
            sizes.append(np.array([float(len(tokenize(c))) for c in part]))
            feats = [judge.features(c, ev, vecs[offset + i])[0] for i, c in enumerate(part)]
            mats.append(np.array([[f[k] for k in judges.FEATURES] for f in feats]).reshape(-1, len(judges.FEATURES)))
        n_claims += len(claims[0]) + len(claims[1])
        ev_text = evidence if isinstance(evidence, str) else "\n".join(evidence)
        out.append({"row": row, "good": mats[0], "bad": mats[1], "good_w": sizes[0], "bad_w": sizes[1],
                    "base_good": novel_share(good, ev_text), "base_bad": novel_share(bad, ev_text),
                    "len_good": len(good.split()), "len_bad": len(bad.split())})
        if progress and (n + 1) % 250 == 0:
            print(f"  {task}: {n + 1} rows, {time.perf_counter() - t0:.0f}s", flush=True)
            embedder.save()
    embedder.save()
    return out, n_claims, time.perf_counter() - t0


def output_scores(pairs, model: dict):
    """Output scores of the supported and of the unsupported outputs, as judge_output computes them."""
    w = np.array([model["weights"][f] for f in model["features"]])
    idx = [judges.FEATURES.index(f) for f in model["features"]]
    a = model.get("min_weight", 1.0)
    cues = [judges.FEATURES.index(c) for c in judges.HARD_CUES]

    def score(mat, sizes):
        if not len(mat):
            return 1.0
        z = np.clip(mat[:, idx] @ w + model["bias"], -30, 30)
        probs = 1 / (1 + np.exp(-z))
        hard = (mat[:, cues] > 0).any(axis=1)
        return judges.aggregate(probs.tolist(), sizes.tolist(), a, hard.tolist())

    return [score(p["good"], p["good_w"]) for p in pairs], [score(p["bad"], p["bad_w"]) for p in pairs]


def length_matched(p) -> bool:
    a, b = p["len_good"], p["len_bad"]
    return abs(a - b) <= 0.1 * max(a, b, 1)


def evaluate(pairs, model: dict) -> dict:
    good, bad = output_scores(pairs, model)
    res = {}
    for subset, keep in (("all", [True] * len(pairs)), ("len-matched", [length_matched(p) for p in pairs])):
        g = [s for s, k in zip(good, keep) if k]
        b = [s for s, k in zip(bad, keep) if k]
        bg = [-p["base_good"] for p, k in zip(pairs, keep) if k]
        bb = [-p["base_bad"] for p, k in zip(pairs, keep) if k]
        if not g:
            res[subset] = None
            continue
        labels = [1] * len(g) + [0] * len(b)
        scores = g + b
        preds = [int(s >= model["threshold"]) for s in scores]
        res[subset] = {
            "pairs": len(g),
            "judge_bacc": balanced_accuracy(labels, preds),
            "judge_auc": roc_auc(labels, scores),
            "base_bacc": best_threshold(labels, bg + bb)[1],
            "base_auc": roc_auc(labels, bg + bb),
        }
    return res


# Contradiction cues are rare in HaluEval's hallucinations (they mostly add facts), so the data says little
# about them: their weights start from these hand-set values (a Gaussian prior) and move only where the data
# insists. The other features start from 0. The data would set new names, numbers and swaps to 0: HaluEval's
# faithful summaries (CNN highlights) hold names and numbers the article body lacks more often than the
# hallucinated ones (an op-ed's author, "Wednesday", "66 days"). Fitted without these three priors the judge
# scored 78.8% / 75.9% (overall / length-matched) on test rows 2500-4999 instead of 76.9% / 74.7%, but caught
# 1 of 4 swapped numbers and 3 of 7 swapped names on the seed pairs instead of 3 of 4 and 4 of 7, and fell
# from 68.7% to 58.9% on HaluEval QA pairs. We keep the priors: a judge that misses a changed number misleads.
PRIOR = {"novel_names": -1.0, "novel_numbers": -1.5, "swap": -1.0, "negation": -2.5, "antonym": -3.0}
PRIOR_STRENGTH = 200.0  # penalty per unit of weight squared, original feature scale


# The direction each weight must have for the judge to judge meaning: similarity can only help, unseen
# words, unseen relations and contradiction cues can only hurt. A weight the data pushes the other way
# (an artefact of how HaluEval's outputs were written) is set to 0 and the rest refitted.
SIGNS = {"dense": 1, "novel_doc": -1, "novel_count": -1, "unexplained": -1, "novel_local": -1, "unlinked": -1,
         "novel_names": -1, "novel_numbers": -1, "swap": -1, "negation": -1, "antonym": -1}


def fit_signed(outputs, labels, l2s, rounds, prior, sizes, ow):
    active = list(range(len(judges.FEATURES)))
    while True:
        w_a, b = judges.fit_multi_instance([o[:, active] for o in outputs], labels, l2=l2s[active], rounds=rounds,
                                           prior=prior[active], claim_weights=sizes, output_weights=ow)
        w = np.zeros(len(judges.FEATURES))
        w[active] = w_a
        wrong = [i for i in active if w[i] * SIGNS[judges.FEATURES[i]] < 0]
        if not wrong:
            return w, b
        active = [i for i in active if i not in wrong]


def length_weight(p: dict, sigma: float | None) -> float:
    """Weight of a training pair: 1 for outputs of equal length, falling off with their log length ratio."""
    if sigma is None:
        return 1.0
    r = math.log(max(p["len_bad"], 1) / max(p["len_good"], 1))
    return math.exp(-(r * r) / (2 * sigma * sigma))


# Output score = min_weight x weakest claim + (1 - min_weight) x size-weighted mean (logits); claims with a
# contradiction cue (judges.HARD_CUES) cap it whatever min_weight is.
MIN_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit(train_sets: list[list[dict]], l2: float, sigma: float | None = None) -> dict:
    outputs, sizes, labels, ow = [], [], [], []
    for pairs in train_sets:
        for p in pairs:
            outputs += [p["good"], p["bad"]]
            sizes += [p["good_w"], p["bad_w"]]
            labels += [1, 0]
            ow += [length_weight(p, sigma)] * 2
    keep = [i for i, o in enumerate(outputs) if len(o)]
    outputs, sizes, labels = [outputs[i] for i in keep], [sizes[i] for i in keep], [labels[i] for i in keep]
    ow = [ow[i] for i in keep]
    sd = np.vstack(outputs).std(0)
    sd[sd == 0] = 1.0
    prior = np.array([PRIOR.get(f, 0.0) for f in judges.FEATURES])
    # fit_logistic penalises standardised weights: l2 / sd^2 is PRIOR_STRENGTH on the original scale
    l2s = np.array([PRIOR_STRENGTH / sd[i] ** 2 if f in PRIOR else l2 for i, f in enumerate(judges.FEATURES)])
    best = None
    for rounds in (0, 3):
        w, b = fit_signed(outputs, labels, l2s, rounds, prior, sizes, ow)
        for a in MIN_WEIGHTS:
            model = {"features": judges.FEATURES, "weights": dict(zip(judges.FEATURES, map(float, w))),
                     "bias": float(b), "min_weight": a, "threshold": 0.5, "mil_rounds": rounds}
            scores, labs = [], []
            for pairs in train_sets:
                g, bd = output_scores(pairs, model)
                scores += g + bd
                labs += [1] * len(g) + [0] * len(bd)
            t, acc = best_threshold(labs, scores)
            model["threshold"] = float(t)
            lm = evaluate([p for pairs in train_sets for p in pairs if length_matched(p)], model)["all"]
            crit = (acc + lm["judge_bacc"]) / 2 if lm else acc
            print(f"  fit: MIL rounds {rounds}, min_weight {a}: train balanced accuracy {acc:.3f} "
                  f"(length-matched {lm['judge_bacc'] if lm else float('nan'):.3f}), AUC {roc_auc(labs, scores):.3f}")
            if best is None or crit > best[0]:
                best = (crit, model)
    return make_cues_decisive(best[1], train_sets)


# One contradiction cue on an otherwise verbatim claim must turn the verdict: a design rule, not a fit.
# HaluEval's hallucinations rarely contain these cues, so the data cannot set their weights.
DECISIVE = ("negation", "antonym")
DECISIVE_MARGIN = 0.5  # logits below the threshold


def make_cues_decisive(model: dict, train_sets: list[list[dict]]) -> dict:
    def logit(p):
        return math.log(p / (1 - p))

    for _ in range(5):
        limit = logit(model["threshold"]) - model["bias"] - DECISIVE_MARGIN
        changed = False
        for cue in DECISIVE:
            if model["weights"][cue] > limit:
                model["weights"][cue] = limit
                changed = True
        if not changed:
            break
        scores, labs = [], []
        for pairs in train_sets:
            g, bd = output_scores(pairs, model)
            scores += g + bd
            labs += [1] * len(g) + [0] * len(bd)
        model["threshold"] = float(best_threshold(labs, scores)[0])
    model["decisive_cues"] = {"cues": list(DECISIVE), "margin_logits": DECISIVE_MARGIN}
    return model


def seed_pair_report(judge: judges.OfflineJudge, path: Path = SEED_PAIRS) -> list[dict]:
    if not path.is_file():
        return []
    by_kind: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        score, _ = judges.judge_output(case["context"], case["output"], judge)
        correct = (score >= judge.model["threshold"]) == (case["label"] == "supported")
        by_kind.setdefault(case["kind"], []).append(int(correct))
    rows = [{"kind": k, "pairs": len(v), "accuracy": f"{sum(v) / len(v):.0%}"} for k, v in sorted(by_kind.items())]
    total = [x for v in by_kind.values() for x in v]
    rows.append({"kind": "all", "pairs": len(total), "accuracy": f"{sum(total) / len(total):.0%}"})
    return rows


def speed_report(tasks: list[str], rows: range, model: dict, n_rows: int) -> list[dict]:
    """Seconds per 100 claims of judge_output, fresh judges and no embedding cache, on the first test rows:
    the judge as calibrated (MiniLM only if its weight is non-zero) and with MiniLM similarity forced on."""
    out = []
    for task in tasks:
        pairs = list(pairs_for(task, rows[:n_rows]))
        for label, use in (("as calibrated", None), ("with MiniLM similarity", True)):
            judge = judges.OfflineJudge(model=model, use_embeddings=use)
            judge.embedder(["warm up"]) if judge.uses_embeddings else None
            claims = 0
            t0 = time.perf_counter()
            for _, evidence, good, bad in pairs:
                for output in (good, bad):
                    claims += len(judges.judge_output(evidence, output, judge)[1])
            secs = time.perf_counter() - t0
            out.append({"task": task, "judge": label, "embeds": "yes" if judge.uses_embeddings else "no",
                        "rows": len(pairs), "claims": claims, "s/100 claims": f"{100 * secs / max(claims, 1):.2f}"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="0-2499", help="rows the fit may see (default 0-2499)")
    ap.add_argument("--test", default="2500-4999", help="held-out rows for the report (default 2500-4999)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows of each split")
    ap.add_argument("--tasks", default="summarization,qa")
    ap.add_argument("--fit", action="store_true", help="fit on --train and write eval/data/judge_calibration.json")
    ap.add_argument("--fit-tasks", default="summarization", help="tasks whose train rows the fit uses")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--synonym-cosine", type=float, default=judges.SYNONYM_COSINE,
                    help="word cosine at which a new word counts as rewording (default %(default)s; > 1 = never)")
    ap.add_argument("--dry-run", action="store_true", help="with --fit: report, but do not write the calibration")
    ap.add_argument("--sigma", type=float, default=None,
                    help="weigh training pairs by output length similarity (log-ratio kernel width); default off")
    ap.add_argument("--speed-rows", type=int, default=50, help="test rows timed with fresh judges (default 50)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "grounded-rag" / "judge-embeddings.pkl",
                    help="embedding cache file ('none' to disable)")
    args = ap.parse_args()

    cache = None if str(args.cache) == "none" else args.cache
    embedder = CachedEmbedder(cache)
    judge = judges.OfflineJudge(embedder=embedder, use_embeddings=True)  # every feature, to fit and compare
    judge.synonym_cosine = args.synonym_cosine
    train_rows, test_rows = parse_rows(args.train, args.limit), parse_rows(args.test, args.limit)
    tasks = args.tasks.split(",")

    data = {}
    for task in tasks:
        for split, rows in (("train", train_rows), ("test", test_rows)):
            pairs, _, _ = featurize(task, rows, judge, embedder)
            data[task, split] = pairs

    if args.fit:
        model = fit([data[t, "train"] for t in args.fit_tasks.split(",") if (t, "train") in data], args.l2, args.sigma)
        model.update({
            "source": "bench/judge_halueval.py --fit",
            "data": {t: f"HaluEval {t} rows {train_rows.start}-{train_rows.stop - 1} (of 0-4999; rows >= 5000 "
                        f"reserved and never read)" for t in args.fit_tasks.split(",")},
            "aggregation": "output logit = min_weight * weakest claim logit + (1 - min_weight) * claim logits "
                           "weighted by content words, capped by the score of any claim with a negation or "
                           "antonym flip; supported iff score >= threshold",
            "fit": f"L2 logistic regression (l2={args.l2}) on claims labelled by their output (multi-instance "
                   f"rounds {model['mil_rounds']}), contradiction-cue weights shrunk towards hand-set priors "
                   f"{PRIOR} (strength {PRIOR_STRENGTH}), signs constrained {SIGNS} (a weight the data pushes the "
                   "other way is set to 0); min_weight and rounds chosen by mean of overall and length-matched "
                   "train balanced accuracy; threshold maximising train balanced accuracy",
            "length_weighting_sigma": args.sigma,
            "synonym_cosine": args.synonym_cosine,
            "date": datetime.date.today().isoformat(),
        })
        judge.model = model
    else:
        model = judge.model

    rows = []
    for task in tasks:
        for split, rng in (("train", train_rows), ("test", test_rows), ("train+test", None)):
            pairs = data[task, "train"] + data[task, "test"] if rng is None else data[task, split]
            label = (f"{train_rows.start}-{train_rows.stop - 1} + {test_rows.start}-{test_rows.stop - 1}"
                     if rng is None else f"{rng.start}-{rng.stop - 1}")
            res = evaluate(pairs, model)
            for subset in ("all", "len-matched"):
                r = res[subset]
                if r is None:
                    continue
                rows.append({"task": task, "rows": label, "split": split, "subset": subset, "pairs": r["pairs"],
                             "judge bal.acc": f"{r['judge_bacc']:.1%}", "judge AUC": f"{r['judge_auc']:.3f}",
                             "baseline bal.acc*": f"{r['base_bacc']:.1%}", "baseline AUC": f"{r['base_auc']:.3f}"})
                if args.fit and split != "train+test":
                    model.setdefault("measured", {})[f"{task} {split} {label} {subset}"] = {
                        k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
    print()
    print(table(rows))
    print("* baseline = share of the output's content words absent from the evidence; its threshold is the best "
          "one in-sample (optimistic). Judge threshold from the fit (train rows only).")
    print()
    print(table(speed_report(tasks, test_rows, model, args.speed_rows)))
    shipped = judges.OfflineJudge(model=model)
    shipped.synonym_cosine = args.synonym_cosine
    dev = seed_pair_report(shipped, DEV_PAIRS)
    if dev:
        print("\njudge_dev_pairs.jsonl (hand-written over a BBC article; looked at while designing features):")
        print(table(dev))
        if args.fit:
            model["dev_pairs"] = {r["kind"]: r["accuracy"] for r in dev}
    seeds = seed_pair_report(shipped)
    if seeds:
        print("\nseed_judge_pairs.jsonl (hand-written test set, not used for fitting):")
        print(table(seeds))
        if args.fit:
            model["seed_pairs"] = {r["kind"]: r["accuracy"] for r in seeds}
    if args.fit and not args.dry_run:
        judges.CALIBRATION_PATH.write_text(json.dumps(model, indent=2) + "\n")
        print(f"\nwrote {judges.CALIBRATION_PATH.relative_to(ROOT)}: weights "
              + ", ".join(f"{k}={v:+.2f}" for k, v in model["weights"].items())
              + f", bias={model['bias']:+.2f}, threshold={model['threshold']:.3f}")


if __name__ == "__main__":
    main()
