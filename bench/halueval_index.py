"""Index HaluEval QA knowledge blocks (one document per row) for retrieval
and answer benchmarks. Rows must stay below 5000 (the rest is reserved).

    .venv/bin/python bench/halueval_index.py --rows 0:5000 --data-dir bench/out/halueval
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import peak_rss_mb  # noqa: F401  (sets sys.path)

import rag  # noqa: F401
from eval.datasets import halueval_qa
from rag.config import Config
from rag.index.ingest import Indexer
from rag.index.loaders import make_document
from rag.index.store import Store


def parse_rows(spec: str) -> range:
    a, b = spec.split(":")
    return range(int(a), int(b))


def source_for(row: int) -> str:
    return f"halueval-qa:row{row}"


def build(rows: range, data_dir: Path, collection: str = "halueval") -> Store:
    store = Store(Config(data_dir=data_dir, chroma_url=None, collection=collection))
    docs = [make_document(r["knowledge"], source_for(r["row"]), title=f"HaluEval QA knowledge row {r['row']}")
            for r in halueval_qa(rows)]
    t0 = time.perf_counter()
    report = Indexer(store).ingest_documents(docs)
    if report.chunks:
        print(f"indexed {len(docs)} knowledge blocks: {report.summary()} ({time.perf_counter() - t0:.0f}s)")
    return store


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="0:5000")
    ap.add_argument("--data-dir", type=Path, default=Path("bench/out/halueval"))
    args = ap.parse_args()
    build(parse_rows(args.rows), args.data_dir)
