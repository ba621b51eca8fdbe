"""The offline judge (the MiniLM cross-encoder) on HaluEval test rows and on the seed judge pairs.

Rows 0-2249 trained the model and rows 2250-2499 calibrated its threshold
(``bench/train_cross_encoder.py --task judge``); this reports the test rows
2500-4999 (rows >= 5000 are reserved and never read):

* summarization: (document, right_summary) = supported, (document,
  hallucinated_summary) = unsupported, scored by ``rag.judge.judges.judge_output``
  (claims of whole sentences up to 72 wordpieces, the weakest claim's score);
  overall and on the length-matched subset (pairs whose two summaries differ in
  word count by at most 10%);
* QA: the claim is ``question + " " + answer`` against the knowledge;
* dialogue: the response against the knowledge and the dialogue history.

Balanced accuracy at the shipped threshold and ROC AUC, next to the baseline
"share of the output's content words absent from the evidence" (its best
threshold chosen in-sample, i.e. optimistic). Then accuracy by kind on
``eval/data/seed_judge_pairs.jsonl`` (a hand-written test set: never trained or
tuned on) and ``eval/data/judge_dev_pairs.jsonl``, and speed in claims/s.

    .venv/bin/python bench/judge_halueval.py                 # all test rows (about 5 minutes on 2 cores)
    .venv/bin/python bench/judge_halueval.py --limit 300     # quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import ROOT, table

from rag.judge import judges
from eval.datasets import RESERVED_FROM, halueval_path, halueval_qa, halueval_summarization
from eval.metrics import balanced_accuracy, best_threshold, roc_auc
from rag.index.lexical import tokenize

SEED_PAIRS = ROOT / "eval" / "data" / "seed_judge_pairs.jsonl"
DEV_PAIRS = ROOT / "eval" / "data" / "judge_dev_pairs.jsonl"


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


def dialogue_rows(rows: range):
    wanted = set(rows)
    with open(halueval_path("dialogue"), encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if index > rows.stop - 1:
                break
            if index in wanted:
                rec = json.loads(line)
                rec["row"] = index
                yield rec


def pairs_for(task: str, rows: range):
    """(evidence, supported output, unsupported output, how to judge) per row."""
    if task == "summarization":
        for r in halueval_summarization(rows):
            yield r["document"], r["right_summary"], r["hallucinated_summary"], "output"
    elif task == "qa":
        for r in halueval_qa(rows):
            q = r["question"]
            yield r["knowledge"], f"{q} {r['right_answer']}", f"{q} {r['hallucinated_answer']}", "claim"
    else:
        for r in dialogue_rows(rows):
            yield [r["knowledge"], r["dialogue_history"]], r["right_response"], r["hallucinated_response"], "claim"


def score(judge, evidence, output: str, how: str) -> tuple[float, int, float]:
    """(score with the lexical cues, number of claims, the model's score alone)."""
    if how == "claim":
        v = judge.judge(output, evidence)
        return v.score, 1, v.features.get("model_score", v.score)
    s, verdicts = judges.judge_output(evidence, output, judge)
    alone = min((v.features.get("model_score", v.score) for v in verdicts), default=1.0)
    return s, len(verdicts), alone


def evaluate(task: str, rows: range, judge, threshold: float) -> tuple[list[dict], float]:
    good, bad, base_g, base_b, matched, alone_g, alone_b = [], [], [], [], [], [], []
    claims, t0 = 0, time.perf_counter()
    for evidence, g, b, how in pairs_for(task, rows):
        sg, ng, ag = score(judge, evidence, g, how)
        sb, nb, ab = score(judge, evidence, b, how)
        claims += ng + nb
        good.append(sg)
        bad.append(sb)
        alone_g.append(ag)
        alone_b.append(ab)
        ev = evidence if isinstance(evidence, str) else "\n".join(evidence)
        base_g.append(-novel_share(g, ev))
        base_b.append(-novel_share(b, ev))
        lg, lb = len(g.split()), len(b.split())
        matched.append(abs(lg - lb) <= 0.1 * max(lg, lb, 1))
    secs = time.perf_counter() - t0
    out = []
    subsets = [("all", [True] * len(good))]
    if task == "summarization":
        subsets.append(("length-matched", matched))
    for subset, keep in subsets:
        def pick(xs):
            return [s for s, k in zip(xs, keep) if k]

        g, b = pick(good), pick(bad)
        labels = [1] * len(g) + [0] * len(b)
        scores = g + b
        alone = pick(alone_g) + pick(alone_b)
        base = pick(base_g) + pick(base_b)
        out.append({"task": task, "rows": f"{rows.start}-{rows.stop - 1}", "subset": subset, "pairs": len(g),
                    "bal.acc": f"{balanced_accuracy(labels, [int(s >= threshold) for s in scores]):.1%}",
                    "AUC": f"{roc_auc(labels, scores):.3f}",
                    "model alone bal.acc": f"{balanced_accuracy(labels, [int(s >= threshold) for s in alone]):.1%}",
                    "model alone AUC": f"{roc_auc(labels, alone):.3f}",
                    "baseline bal.acc*": f"{best_threshold(labels, base)[1]:.1%}",
                    "baseline AUC": f"{roc_auc(labels, base):.3f}"})
    return out, claims / secs if secs else 0.0


def pair_report(judge, path) -> tuple[list[dict], dict]:
    by_kind: dict[str, list[int]] = {}
    threshold = judge.model["threshold"]
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        s, _ = judges.judge_output(case["context"], case["output"], judge)
        by_kind.setdefault(case["kind"], []).append(int((s >= threshold) == (case["label"] == "supported")))
    rows = [{"kind": k, "pairs": len(v), "correct": f"{sum(v)}/{len(v)}"} for k, v in sorted(by_kind.items())]
    contra = [x for k, v in by_kind.items() if k in ("negation_flip", "antonym", "swapped_entity",
                                                      "swapped_number_or_date") for x in v]
    total = [x for v in by_kind.values() for x in v]
    if contra:
        rows.append({"kind": "negation+antonym+swaps", "pairs": len(contra), "correct": f"{sum(contra)}/{len(contra)}"})
    rows.append({"kind": "all", "pairs": len(total), "correct": f"{sum(total)}/{len(total)}"})
    return rows, by_kind


def speed_report(judge) -> list[dict]:
    """claims/s of the bare model on short claims against a one-sentence quote (what rag/answer/generative.py
    checks) and on HaluEval summaries against their evidence windows, batched and one at a time."""
    cases = [json.loads(x) for x in SEED_PAIRS.read_text().splitlines() if x.strip()]
    short = [(c["output"], c["context"]) for c in cases] * 20
    summ = [(r["right_summary"], r["document"]) for r in halueval_summarization(range(2500, 2600))]
    out = []
    from rag.judge import cross_encoder

    for label, pairs in (("seed claim vs its quote", short), ("HaluEval summary vs its evidence window", summ)):
        windows = [(c, cross_encoder.evidence_window(c, e, judge.budget)) for c, e in pairs]
        judge.encoder.predict(windows[:16])
        t0 = time.perf_counter()
        judge.encoder.predict(windows)
        batched = len(windows) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c, e in pairs[:100]:
            cross_encoder.support_score(c, e)
        single = min(100, len(pairs)) / (time.perf_counter() - t0)
        wp = np.mean([len(i) for i, _ in cross_encoder.encode_pairs(windows, judge.encoder.max_length,
                                                                     judge.encoder.max_a)])
        out.append({"claims": label, "n": len(windows), "mean wordpieces": f"{wp:.0f}",
                    "claims/s batched": f"{batched:.0f}", "claims/s one by one (support_score)": f"{single:.0f}"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test", default="2500-4999", help="held-out rows (default 2500-4999)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ap.add_argument("--tasks", default="summarization,qa,dialogue")
    ap.add_argument("--cues", default=None,
                    help="contradiction cues that cap a claim: negation,antonym (comma list) or none; default both")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="judge-minilm.onnx/.json from this folder instead of rag/data (a candidate model)")
    args = ap.parse_args()

    if args.model_dir is not None:
        from rag.judge import cross_encoder

        cross_encoder._loaded[cross_encoder.JUDGE_MODEL] = cross_encoder.CrossEncoder.load(  # noqa: SLF001
            cross_encoder.JUDGE_MODEL, data_dir=args.model_dir)
    judge = judges.default_judge()
    if args.cues is not None:
        judge.CUES = tuple(c for c in args.cues.split(",") if c and c != "none")
        if set(judge.CUES) - {"negation", "antonym"}:
            raise SystemExit("--cues: negation, antonym or none (the swap cue was deleted)")
        judge.cues = bool(judge.CUES)
    print(f"lexical cues: {', '.join(judge.CUES) if judge.cues else 'none'}")
    threshold = judge.model["threshold"]
    print(f"judge: {judge.model['source']}, threshold {threshold:.3f} (calibrated on rows 2250-2499)")
    rows = parse_rows(args.test, args.limit)
    results, speeds = [], {}
    for task in args.tasks.split(","):
        res, cps = evaluate(task, rows, judge, threshold)
        results += res
        speeds[task] = cps
    print()
    print(table(results))
    print("bal.acc/AUC: the shipped judge (model capped by the lexical contradiction cues); model alone: no cues.")
    print("* baseline threshold chosen in-sample on the test rows (optimistic).")
    print("  end-to-end claims/s incl. evidence selection: "
          + ", ".join(f"{t} {v:.0f}" for t, v in speeds.items()))
    print()
    seeds, _ = pair_report(judge, SEED_PAIRS)
    print("seed_judge_pairs.jsonl (hand-written test set; never trained or tuned on):")
    print(table(seeds))
    if DEV_PAIRS.is_file():
        dev, _ = pair_report(judge, DEV_PAIRS)
        print("\njudge_dev_pairs.jsonl (hand-written over a BBC article):")
        print(table(dev))
    print()
    print(table(speed_report(judge)))


if __name__ == "__main__":
    main()
