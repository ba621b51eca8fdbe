"""The persistent SQLite FTS5 lexical index against the in-memory BM25 it replaced, on an
existing index (embedded Chroma). Both score the same committed chunks.

Prints, for each: time to be ready in a fresh process (old: full Chroma scan + BM25
build; new: full catch-up into an empty file, then re-opening a caught-up file), query
p50/p95 for top-30, memory held, file size, and how far the new top-30 is from the
exact in-memory top-30 (same ids in the same order; scores equal).

Questions: the first words of a random sentence of random chunks (seeded), or
``--questions FILE`` (one per line).

    .venv/bin/python bench/lexical_compare.py --data-dir bench/out/bbc-seed --collection bbcseed
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import percentiles, table

import rag  # noqa: F401
from rag.config import Config
from rag.index.lexical import BM25
from rag.index.lexical_index import LexicalIndex
from rag.index.store import Store


def questions_from(texts: list[str], n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", rng.choice(texts)) if len(s.split()) >= 6]
        if sentences:
            words = rng.choice(sentences).split()
            out.append(" ".join(words[: rng.randint(4, 10)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--collection", default="documents")
    ap.add_argument("--n", type=int, default=300, help="questions")
    ap.add_argument("--questions", type=Path)
    ap.add_argument("--k", type=int, default=30)
    args = ap.parse_args()
    store = Store(Config(data_dir=args.data_dir, chroma_url=None, collection=args.collection))

    # old: full scan of Chroma + in-memory BM25
    t0 = time.perf_counter()
    ids, texts, _ = store.visible_chunks()
    t1 = time.perf_counter()
    bm25 = BM25(texts)
    t2 = time.perf_counter()
    tracemalloc.start()  # a second build, traced (tracing slows it: not the timed one)
    BM25(texts)
    old_mem = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    questions = (args.questions.read_text().splitlines() if args.questions else questions_from(texts, args.n))

    # new: a fresh file (full catch-up), then a second process-like open (poll)
    tmp = Path(tempfile.mkdtemp(prefix="lexical-"))
    path = tmp / "lex.sqlite"
    t3 = time.perf_counter()
    index = LexicalIndex(store, path=path)
    full = index.sync()
    t4 = time.perf_counter()
    reopened = LexicalIndex(store, path=path)
    poll = reopened.sync()
    t5 = time.perf_counter()

    old_ms, new_ms, same_order, same_set, max_diff = [], [], 0, 0, 0.0
    for q in questions:
        t = time.perf_counter()
        ref = bm25.top(q, args.k)
        old_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        got = reopened.top(q, args.k)
        new_ms.append((time.perf_counter() - t) * 1000)
        same_order += len(ref) == len(got) and all(abs(a[1] - b[3]) < 1e-4 for a, b in zip(ref, got))
        same_set += {ids[i] for i, _ in ref} == {cid for cid, *_ in got}
        exact = reopened.scores_for(q, [ids[i] for i, _ in ref])
        max_diff = max([max_diff, *(abs(exact[ids[i]] - s) for i, s in ref)])
    size = sum(p.stat().st_size for p in tmp.iterdir()) / 2**20
    n = len(questions)
    print(f"{len(ids)} committed chunks, {len(store.documents())} documents, {n} questions, top-{args.k}")
    print(table([
        {"index": "in-memory BM25 (before)", "ready in fresh process s": round(t2 - t0, 2),
         "of which Chroma scan s": round(t1 - t0, 2), "query p50 ms": percentiles(old_ms)["p50"],
         "query p95 ms": percentiles(old_ms)["p95"], "memory MB": round(old_mem, 1), "file MB": "-"},
        {"index": "SQLite FTS5, empty file (full catch-up)", "ready in fresh process s": round(t4 - t3, 2),
         "of which Chroma scan s": "-", "query p50 ms": "-", "query p95 ms": "-", "memory MB": "-",
         "file MB": round(size, 1)},
        {"index": "SQLite FTS5, caught-up file (poll)", "ready in fresh process s": round(t5 - t4, 3),
         "of which Chroma scan s": "-", "query p50 ms": percentiles(new_ms)["p50"],
         "query p95 ms": percentiles(new_ms)["p95"], "memory MB": "page cache", "file MB": round(size, 1)},
    ]))
    print(f"full catch-up: {full.chunks} chunks of {len(full.indexed)} documents; poll read {poll.seen} records")
    print(f"top-{args.k} same scores rank by rank (|diff| < 1e-4): {same_order}/{n}; same chunk set (ties at "
          f"the cut may differ): {same_set}/{n}; "
          f"max |exact - in-memory| score difference {max_diff:.2e}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
