"""Fit the extractive answerer's sentence model and abstention threshold on data.

Data: HaluEval QA rows 0-4999 only (HotpotQA questions with their two-paragraph
knowledge). The knowledge of rows 0-2499 is indexed; questions of rows
0-2499 are *answerable* (their knowledge is in the index), questions of rows
2500-4999 are *unanswerable* (their knowledge is not). For answerable
questions, a candidate sentence is a positive example when it comes from the
row's own knowledge and contains the gold answer.

1. A logistic regression over the sentence features (coverage, dense, rank,
   typed) is fitted on the candidate sentences of the fit split.
2. A second logistic regression over question-level evidence (best coverage,
   best sentence similarity, whether the top sentence has the asked-for type)
   separates answerable from unanswerable questions; its threshold is the one
   that maximises (weighted) balanced accuracy on the fitting data. With
   --with-dev the seed development set joins the fit at half the weight.
3. Both are reported on a held-out split, and written to rag/data/abstention.json,
   with the two rules of ``FeatureScorer.answerable`` on top (a typed question whose
   best sentence holds nothing of the kind abstains; a sentence at MiniLM cosine >=
   ``--dense-floor`` answers): the held-out split is scored with and without them.

``--scorer cross-encoder`` calibrates the learned sentence scorer instead
(``rag/data/sentence-minilm.*``, trained on rows 0-3999): rows 4000-4999 are held
back from its training, so the knowledge of rows 4000-4499 is indexed, their
questions are answerable, those of rows 4500-4999 are not; the threshold on the best
sentence probability maximises balanced accuracy on one half and is reported on the
other. It is written to the ``cross_encoder`` entry of abstention.json.

    .venv/bin/python bench/calibrate_abstention.py --n 600 --write   (what produced the shipped file)
    .venv/bin/python bench/calibrate_abstention.py --scorer cross-encoder --n 400 --write
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from pathlib import Path

import numpy as np
from common import table
from halueval_index import build, source_for

import rag  # noqa: F401
from eval.datasets import halueval_qa
from rag.assistant import Assistant
from rag.answer.extractive.scoring import ANSWERABILITY, CALIBRATION, DEFAULT_MODEL, FeatureScorer, answerability_features, candidates, featurize, make_scorer

FEATURES = ["coverage", "dense", "rank", "typed"]


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower().replace("’", "'")).strip()


def collect(assistant: Assistant, rows: list[dict], answerable: bool):
    """Per question: candidate feature matrix, sentence labels, and whether gold was retrievable."""
    out = []
    for r in rows:
        nodes = assistant.retrieve(r["question"], 6)
        q_vec = np.asarray(assistant.embed_model.get_query_embedding(r["question"]), dtype=np.float32)
        cands = featurize(r["question"], q_vec, candidates(nodes), assistant.retriever.lexical.bm25.idf,
                          assistant.sentence_vectors)
        gold = source_for(r["row"])
        ans = norm(r["right_answer"])
        X = np.array([[c.features[f] for f in FEATURES] for c in cands], dtype=np.float64).reshape(-1, len(FEATURES))
        y = np.array([answerable and c.source == gold and ans in norm(c.text) for c in cands], dtype=np.float64)
        out.append({"X": X, "y": y, "answerable": answerable, "has_gold": bool(y.any()), "cands": cands,
                    "question": r["question"]})
    return out


def with_rules(items, model: dict, assistant: Assistant) -> dict:
    """Held-out scores of FeatureScorer.answerable (the fitted model plus the typed gate and dense floor)."""
    scorer = FeatureScorer(lambda q: None, assistant._idf, assistant.sentence_vectors, model)  # noqa: SLF001
    answered = np.array([scorer.answerable(it["question"], sorted(it["cands"], key=lambda c: -c.prob))
                         >= scorer.threshold for it in items])
    truth = np.array([it["answerable"] for it in items])
    return {"balanced_acc": round(float((answered[truth].mean() + (~answered[~truth]).mean()) / 2), 4),
            "answered|answerable": round(float(answered[truth].mean()), 4),
            "abstained|unanswerable": round(float((~answered[~truth]).mean()), 4)}


def calibrate_cross_encoder(args) -> None:
    """Threshold of the learned scorer's best probability, on rows 4000-4999 (held back from its training)."""
    from rag.config import Config

    store = build(range(4000, 4500), args.data_dir, collection="halueval_ce")
    assistant = Assistant(Config(data_dir=args.data_dir, collection="halueval_ce"), store)
    qv = lambda q: np.asarray(assistant.embed_model.get_query_embedding(q), dtype=np.float32)  # noqa: E731
    scorer = make_scorer(FeatureScorer(qv, assistant._idf, assistant.sentence_vectors), "cross-encoder")  # noqa: SLF001
    skip = lambda r: norm(r["right_answer"]) in ("yes", "no") or len(r["right_answer"]) < 3  # noqa: E731
    pos = [r for r in halueval_qa(range(4000, 4500)) if not skip(r)][: args.n]
    neg = list(halueval_qa(range(4500, 5000)))[: args.n]
    items = []
    for r, label in [(r, True) for r in pos] + [(r, False) for r in neg]:
        ranked = scorer.rank(r["question"], candidates(assistant.retrieve(r["question"], 6)))
        gold = source_for(r["row"])
        ans = norm(r["right_answer"])
        items.append({"p": scorer.answerable(r["question"], ranked), "answerable": label,
                      "top1": bool(ranked) and ranked[0].source == gold and ans in norm(ranked[0].text),
                      "has_gold": any(c.source == gold and ans in norm(c.text) for c in ranked)})
    fit, held = items[0::2], items[1::2]

    def scores(part, t):
        p = np.array([it["p"] for it in part])
        truth = np.array([it["answerable"] for it in part])
        answered = p >= t
        gold = [it for it in part if it["answerable"] and it["has_gold"]]
        return {"threshold": round(float(t), 4),
                "balanced_acc": round(float((answered[truth].mean() + (~answered[~truth]).mean()) / 2), 4),
                "answered|answerable": round(float(answered[truth].mean()), 4),
                "abstained|unanswerable": round(float((~answered[~truth]).mean()), 4),
                "top1 has gold|gold retrieved": round(float(np.mean([it["top1"] for it in gold])), 4) if gold else None}

    grid = np.unique([it["p"] for it in fit])
    t = float(max(grid, key=lambda t: scores(fit, t)["balanced_acc"]))
    rows = [{"split": "fit (every other question)", **scores(fit, t)}, {"split": "held-out", **scores(held, t)}]
    print(table(rows))
    if args.write:
        data = json.loads(CALIBRATION.read_text())
        data["cross_encoder"] = {"threshold": round(t, 4), "typed_weight": 0.0, "fit": rows[0], "held_out": rows[1],
                                 "source": f"bench/calibrate_abstention.py --scorer cross-encoder on {datetime.date.today()}: "
                                           f"knowledge of HaluEval QA rows 4000-4499 indexed, {len(pos)} answerable "
                                           f"(rows 4000-4499) + {len(neg)} unanswerable (rows 4500-4999) questions, "
                                           "alternate halves to fit / hold out"}
        CALIBRATION.write_text(json.dumps(data, indent=2) + "\n")
        print("wrote", CALIBRATION)


def dev_items(data_dir: Path):
    """Seed dev-set questions as answerable (answerable, conversation, false premise) or not."""
    from common import ROOT

    from rag.config import Config

    assistant = Assistant.open(Config(data_dir=data_dir, chroma_url=None, collection="seeddev"))
    assistant.ingest([ROOT / "seeds"])
    items = []
    for line in (ROOT / "eval/data/seed_dev.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        q = r.get("rewritten") or r["question"]
        nodes = assistant.retrieve(q, 6)
        q_vec = np.asarray(assistant.embed_model.get_query_embedding(q), dtype=np.float32)
        cands = featurize(q, q_vec, candidates(nodes), assistant.retriever.lexical.bm25.idf, assistant.sentence_vectors)
        X = np.array([[c.features[f] for f in FEATURES] for c in cands]).reshape(-1, len(FEATURES))
        items.append({"X": X, "y": np.zeros(len(cands)), "answerable": r["kind"] != "unanswerable",
                      "has_gold": False, "cands": cands})
    return items


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50,
                 sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    Xb = np.hstack([X, np.ones((len(X), 1))])
    sw = np.ones(len(X)) if sample_weight is None else sample_weight
    w = np.zeros(Xb.shape[1])
    for _ in range(iters):  # Newton-Raphson
        p = 1 / (1 + np.exp(-Xb @ w))
        grad = Xb.T @ (sw * (p - y)) + l2 * np.r_[w[:-1], 0]
        H = (Xb * (sw * p * (1 - p))[:, None]).T @ Xb + l2 * np.eye(len(w))
        w -= np.linalg.solve(H, grad)
    return w[:-1], float(w[-1])


def question_features(items, w, b):
    """Answerability features per question, with candidates ranked by the sentence model (w, b)."""
    rows, top1 = [], []
    for it in items:
        if len(it["X"]) == 0:
            rows.append([0.0] * len(ANSWERABILITY))
            top1.append(False)
            continue
        p = 1 / (1 + np.exp(-(it["X"] @ w + b)))
        order = np.argsort(-p, kind="stable")
        ranked = [it["cands"][i] for i in order]
        f = answerability_features(ranked)
        rows.append([f[k] for k in ANSWERABILITY])
        top1.append(bool(it["y"][order[0]]))
    return np.array(rows), top1


def evaluate(items, w, b, aw, ab, threshold=None):
    Q, top1 = question_features(items, w, b)
    best = 1 / (1 + np.exp(-(Q @ aw + ab)))
    truth = np.array([it["answerable"] for it in items])
    if threshold is None:
        grid = np.unique(best)
        scores = [((best[truth] >= t).mean() + (best[~truth] < t).mean()) / 2 for t in grid]
        threshold = float(grid[int(np.argmax(scores))])
    answered = best >= threshold
    ans_items = [i for i, it in enumerate(items) if it["answerable"] and it["has_gold"]]
    return {"threshold": round(threshold, 4),
            "balanced_acc": round(float((answered[truth].mean() + (~answered[~truth]).mean()) / 2), 4),
            "answered|answerable": round(float(answered[truth].mean()), 4),
            "abstained|unanswerable": round(float((~answered[~truth]).mean()), 4),
            "top1 has gold|gold retrieved": round(float(np.mean([top1[i] for i in ans_items])), 4) if ans_items else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="questions per class (half fit, half held out)")
    ap.add_argument("--data-dir", type=Path, default=Path("bench/out/halueval-calib"))
    ap.add_argument("--write", action="store_true", help="write rag/data/abstention.json")
    ap.add_argument("--with-dev", action="store_true",
                    help="also fit abstention on the seed dev set (then dev-set scores are in-sample)")
    ap.add_argument("--dev-dir", type=Path, default=Path("bench/out/seed-dev"))
    ap.add_argument("--scorer", choices=["features", "cross-encoder"], default="features")
    ap.add_argument("--dense-floor", type=float, default=0.5,
                    help="MiniLM cosine at which a sentence answers whatever the abstention model says "
                         "(set on the seed dev set's paraphrased questions)")
    ap.add_argument("--ranking", choices=["hand-set", "fitted"], default="hand-set",
                    help="sentence ranking weights: fitted on HaluEval, or the hand-set news-QA defaults "
                         "(HaluEval's multi-hop questions reward the bridge sentence, which hurts news QA)")
    args = ap.parse_args()
    if args.scorer == "cross-encoder":
        calibrate_cross_encoder(args)
        return

    store = build(range(0, 2500), args.data_dir)
    from rag.config import Config

    assistant = Assistant(Config(data_dir=args.data_dir, collection="halueval"), store)
    skip = lambda r: norm(r["right_answer"]) in ("yes", "no") or len(r["right_answer"]) < 3  # noqa: E731
    pos = [r for r in halueval_qa(range(0, 2500)) if not skip(r)][: args.n]
    neg = list(halueval_qa(range(2500, 5000)))[: args.n]
    half = args.n // 2
    fit = collect(assistant, pos[:half], True) + collect(assistant, neg[:half], False)
    held = collect(assistant, pos[half:], True) + collect(assistant, neg[half:], False)

    X = np.vstack([it["X"] for it in fit if it["answerable"] and len(it["X"])])
    y = np.concatenate([it["y"] for it in fit if it["answerable"] and len(it["X"])])
    w, b = fit_logistic(X, y)
    if args.ranking == "hand-set":  # keep the news-QA ranking weights, fit only abstention on top
        w, b = np.array([DEFAULT_MODEL["weights"][f] for f in FEATURES]), DEFAULT_MODEL["bias"]
    Q, _ = question_features(fit, w, b)
    truth = np.array([it["answerable"] for it in fit], dtype=np.float64)
    weight = np.ones(len(Q))
    if args.with_dev:  # the seed development set: news questions, many paraphrased; half the total weight
        dev = dev_items(args.dev_dir)
        Qd, _ = question_features(dev, w, b)
        Q = np.vstack([Q, Qd])
        truth = np.r_[truth, [it["answerable"] for it in dev]]
        weight = np.r_[weight, np.full(len(dev), len(weight) / len(dev))]
    aw, ab = fit_logistic(Q, truth, sample_weight=weight)
    prob = 1 / (1 + np.exp(-(Q @ aw + ab)))
    pos, neg = truth == 1, truth == 0

    def weighted_bacc(t):
        return (weight[pos & (prob >= t)].sum() / weight[pos].sum() + weight[neg & (prob < t)].sum() / weight[neg].sum()) / 2

    threshold = float(max(np.unique(prob), key=weighted_bacc))

    d_w = np.array([DEFAULT_MODEL["weights"][f] for f in FEATURES])
    d_aw = np.array([DEFAULT_MODEL["abstain"]["weights"][f] for f in ANSWERABILITY])
    rows = []
    for name, params in [("hand-set defaults", (d_w, DEFAULT_MODEL["bias"], d_aw, DEFAULT_MODEL["abstain"]["bias"])),
                         ("fitted", (w, b, aw, ab))]:
        f = evaluate(fit, *params, threshold=threshold if name == "fitted" else None)
        h = evaluate(held, *params, threshold=f["threshold"])
        rows.append({"model": name, "split": "fit", **f})
        rows.append({"model": name, "split": "held-out", **h})
    print(table(rows))
    fitted = {"weights": dict(zip(FEATURES, map(float, w))), "bias": float(b),
              "abstain": {"weights": dict(zip(ANSWERABILITY, map(float, aw))), "bias": float(ab),
                          "threshold": rows[2]["threshold"], "dense_floor": args.dense_floor}}
    rules = with_rules(held, fitted, assistant)
    variants = [{"held-out": f"model + typed gate + dense floor {args.dense_floor}", **rules}]
    for floor in (0.55, 0.6, 0.65, None):
        if floor != args.dense_floor:
            v = with_rules(held, {**fitted, "abstain": {**fitted["abstain"], "dense_floor": floor}}, assistant)
            variants.append({"held-out": f"model + typed gate + dense floor {floor}" if floor else
                             "model + typed gate", **v})
    print(table(variants))
    print("sentence model:", dict(zip(FEATURES, np.round(w, 3))), "bias:", round(b, 3))
    print("answerability model:", dict(zip(ANSWERABILITY, np.round(aw, 3))), "bias:", round(ab, 3))
    if args.write:
        CALIBRATION.write_text(json.dumps({
            "weights": {f: round(float(v), 4) for f, v in zip(FEATURES, w)}, "bias": round(b, 4),
            "abstain": {"weights": {f: round(float(v), 4) for f, v in zip(ANSWERABILITY, aw)},
                        "bias": round(ab, 4), "threshold": rows[2]["threshold"], "dense_floor": args.dense_floor},
            "source": (f"bench/calibrate_abstention.py on {datetime.date.today()}: HaluEval QA, knowledge of rows "
                       f"0-2499 indexed; {half} answerable questions (rows 0-2499) + {half} unanswerable "
                       f"(rows 2500-4999) to fit{' + the seed dev set at half the weight' if args.with_dev else ''}; sentence model = logistic regression on sentences containing "
                       f"the gold answer ({args.ranking} ranking weights kept); abstention = logistic regression answerable vs not, threshold = max "
                       f"(weighted) balanced accuracy on the fitting data; dense_floor {args.dense_floor} set on the "
                       f"seed dev set's paraphrased questions"),
            "fit": rows[2], "held_out": rows[3], "held_out_with_rules": rules,
            **({"cross_encoder": json.loads(CALIBRATION.read_text())["cross_encoder"]}
               if "cross_encoder" in json.loads(CALIBRATION.read_text()) else {})}, indent=2) + "\n")
        print("wrote", CALIBRATION)


if __name__ == "__main__":
    main()
