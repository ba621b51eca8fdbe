"""Fit the extractive answerer's sentence model and abstention threshold on data.

Data: HaluEval QA rows 0-4999 only (HotpotQA questions with their two-paragraph
knowledge). The knowledge of rows 0-2499 is indexed; questions of rows
0-2499 are *answerable* (their knowledge is in the index), questions of rows
2500-4999 are *unanswerable* (their knowledge is not). For answerable
questions, a candidate sentence is a positive example when it comes from the
row's own knowledge and contains the gold answer.

1. A logistic regression over the sentence features (coverage, dense, chunk,
   typed) is fitted on the candidate sentences of the fit split.
2. The abstention threshold on the best sentence's probability is the one
   that maximises balanced accuracy (answerable answered, unanswerable
   abstained) on the fit split.
3. Both are reported on a held-out split, and written to rag/data/abstention.json.

    .venv/bin/python bench/calibrate_abstention.py [--n 600] [--write]
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
from rag.extractive import CALIBRATION, candidates, featurize

FEATURES = ["coverage", "dense", "chunk", "typed"]


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
        out.append({"X": X, "y": y, "answerable": answerable, "has_gold": bool(y.any())})
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> tuple[np.ndarray, float]:
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(Xb.shape[1])
    for _ in range(iters):  # Newton-Raphson
        p = 1 / (1 + np.exp(-Xb @ w))
        grad = Xb.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        H = (Xb * (p * (1 - p))[:, None]).T @ Xb + l2 * np.eye(len(w))
        w -= np.linalg.solve(H, grad)
    return w[:-1], float(w[-1])


def evaluate(items, w, b, threshold=None):
    best = []
    top1 = []
    for it in items:
        if len(it["X"]) == 0:
            best.append(0.0)
            top1.append(False)
            continue
        p = 1 / (1 + np.exp(-(it["X"] @ w + b)))
        best.append(float(p.max()))
        top1.append(bool(it["y"][int(p.argmax())]))
    best = np.array(best)
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
    args = ap.parse_args()

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
    from rag.extractive import DEFAULT_MODEL

    old_w = np.array([DEFAULT_MODEL["weights"][f] for f in FEATURES])
    rows = []
    for name, ww, bb in [("hand-set defaults", old_w, DEFAULT_MODEL["bias"]), ("fitted", w, b)]:
        f = evaluate(fit, ww, bb)
        h = evaluate(held, ww, bb, threshold=f["threshold"])
        rows.append({"model": name, "split": "fit", **f})
        rows.append({"model": name, "split": "held-out", **h})
    print(table(rows))
    print("weights:", dict(zip(FEATURES, np.round(w, 3))), "bias:", round(b, 3))
    if args.write:
        fitted = rows[2]
        CALIBRATION.write_text(json.dumps({
            "weights": {f: round(float(v), 4) for f, v in zip(FEATURES, w)}, "bias": round(b, 4),
            "threshold": fitted["threshold"],
            "source": (f"bench/calibrate_abstention.py on {datetime.date.today()}: HaluEval QA, knowledge of rows "
                       f"0-2499 indexed; {half} answerable questions (rows 0-2499) + {half} unanswerable "
                       f"(rows 2500-4999) to fit; threshold = max balanced accuracy on the fit split"),
            "fit": rows[2], "held_out": rows[3]}, indent=2) + "\n")
        print("wrote", CALIBRATION)


if __name__ == "__main__":
    main()
