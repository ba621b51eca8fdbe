"""Retrieval quality: dense only, BM25 only and fused, side by side.

Set 1, HaluEval QA (rows 0-4999): every row's knowledge block is one document;
each question's gold document is its own row. Entity-heavy questions that
favour the lexical side.
Set 2, paraphrased: the seed dev set's answerable questions and rewritten
follow-ups (many in words the article does not use), asked against the seed
article hidden among the 2,225 BBC News articles; gold = the seed article.

Prints recall@1/5/10 and MRR@10 for each mode, and the query latency.

    .venv/bin/python bench/retrieval_quality.py [--rows 0:5000] [--skip-bbc]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import ROOT, percentiles, table
from halueval_index import build, parse_rows, source_for

import rag  # noqa: F401
from eval.datasets import bbc_articles, halueval_qa
from rag.config import Config
from rag.index.ingest import Indexer
from rag.index.loaders import make_document
from rag.answer.retriever import HybridRetriever
from rag.index.store import Store

MODES = ["dense", "bm25", "hybrid"]


def score(retriever_for, questions: list[tuple[str, str]], k_max: int = 10) -> list[dict]:
    rows = []
    for mode in MODES:
        retriever = retriever_for(mode)
        hits = {1: 0, 5: 0, 10: 0}
        rr = 0.0
        ms = []
        for question, gold in questions:
            t = time.perf_counter()
            ranked = [n.node.metadata["source"] for n in retriever.search(question, k_max)]
            ms.append((time.perf_counter() - t) * 1000)
            ranked = list(dict.fromkeys(ranked))  # document level
            if gold in ranked:
                rank = ranked.index(gold) + 1
                rr += 1 / rank
                for k in hits:
                    hits[k] += rank <= k
        n = len(questions)
        rows.append({"mode": mode, "n": n, **{f"recall@{k}": round(v / n, 4) for k, v in hits.items()},
                     "MRR@10": round(rr / n, 4), "p50 ms": percentiles(ms)["p50"]})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="0:5000")
    ap.add_argument("--data-dir", type=Path, default=Path("bench/out/halueval"))
    ap.add_argument("--skip-bbc", action="store_true")
    ap.add_argument("--bbc-dir", type=Path, default=Path("bench/out/bbc-seed"))
    args = ap.parse_args()

    rows = parse_rows(args.rows)
    store = build(rows, args.data_dir)
    questions = [(r["question"], source_for(r["row"])) for r in halueval_qa(rows)]
    print(f"\nHaluEval QA rows {rows.start}-{rows.stop - 1}: {len(questions)} questions, document-level")
    print(table(score(lambda m: HybridRetriever(store, mode=m), questions)))

    if args.skip_bbc:
        return
    bbc = Store(Config(data_dir=args.bbc_dir, chroma_url=None, collection="bbcseed"))
    seed = ROOT / "seeds" / "zelenskyy-ceasefire-nato-umbrella-sky-news-interview.txt"
    docs = [make_document(seed.read_text(), "seed"), *(make_document(t, f"bbc:{p.parent.name}/{p.name}")
                                                      for p, t in bbc_articles())]
    Indexer(bbc).ingest_documents(docs)
    dev = [json.loads(l) for l in (ROOT / "eval/data/seed_dev.jsonl").read_text().splitlines() if l.strip()]
    para = [(r.get("rewritten") or r["question"], "seed") for r in dev if r["kind"] in ("answerable", "conversation")]
    print(f"\nParaphrased set: {len(para)} seed dev questions against seed + 2,225 BBC articles, document-level")
    print(table(score(lambda m: HybridRetriever(bbc, mode=m), para)))


if __name__ == "__main__":
    main()
