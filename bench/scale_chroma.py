"""Scale on a `chroma run` server: ingest rate, query latency, replica RSS, catch-up of a
fresh replica and the cost of one document write, at N synthetic chunks.

Corpus (documented, synthetic): a *base* of real chunks with their real MiniLM vectors
is read from an existing embedded index (default: the seed + 2,225 BBC index of
bench/retrieval_quality.py, ``bench/out/bbc-seed``, 7,306 chunks). Each synthetic chunk
is a base chunk's sentences with one sentence swapped for a random BBC sentence; its
vector is the base vector plus Gaussian noise (cosine ~0.95 to the base), normalised.
Four chunks make one document (record, doc_hash, offsets: the real write path,
``Store.write_many``, so records carry ``committed_at``).

Resumable: the server's data lives in ``--server-dir``; a rerun counts the committed
synthetic documents and continues (generation is seeded per document).

Then a *replica* runs in a fresh process with an empty data dir: full catch-up of its
lexical index from the server (timed), re-open (poll), RSS, hybrid / bm25 / dense
query p50/p95 over 200 questions (first words of random BBC sentences), then one
document write + read-your-writes refresh, and its delete.

    .venv/bin/python bench/scale_chroma.py --chunks 100000 [--server-dir bench/out/scale-chroma]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import current_rss_mb, free_port, percentiles, stop_process, table, wait_for_port

import rag  # noqa: F401
from rag.config import Config

COLLECTION = "scale"
PER_DOC = 4
SPLIT = re.compile(r"(?<=[.!?])\s+")


def load_base(base_dir: Path, collection: str, limit: int | None = None):
    from rag.index.store import Store

    store = Store(Config(data_dir=base_dir, chroma_url=None, collection=collection))
    texts, vecs = [], []
    total = store.chunks.count()
    for offset in range(0, total, 2000):
        got = store.chunks.get(include=["documents", "embeddings"], limit=2000, offset=offset)
        texts += got["documents"]
        vecs.append(np.asarray(got["embeddings"], dtype=np.float32))
        if limit and len(texts) >= limit:
            break
    vecs = np.vstack(vecs)
    if limit:
        texts, vecs = texts[:limit], vecs[:limit]
    sentences = [s for t in texts for s in SPLIT.split(t) if len(s.split()) >= 5]
    return texts, vecs, sentences


def synthetic_doc(d: int, texts, vecs, sentences):
    """(Document, nodes, vectors) of synthetic document number ``d`` (deterministic)."""
    from llama_index.core.schema import Document, TextNode

    rng = random.Random(d)
    nrng = np.random.default_rng(d)
    chunk_texts, chunk_vecs = [], []
    for _ in range(PER_DOC):
        i = rng.randrange(len(texts))
        parts = SPLIT.split(texts[i])
        parts[rng.randrange(len(parts))] = rng.choice(sentences)
        chunk_texts.append(" ".join(parts))
        v = vecs[i] + nrng.normal(0, 0.3 / np.sqrt(vecs.shape[1]), vecs.shape[1]).astype(np.float32)
        chunk_vecs.append(v / np.linalg.norm(v))
    text = "\n\n".join(chunk_texts)
    doc_id = f"syn{d:08d}"
    doc_hash = hashlib.sha256(text.encode()).hexdigest()
    meta = {"doc_id": doc_id, "source": f"synthetic:{d}", "title": f"Synthetic {d}", "doc_hash": doc_hash}
    doc = Document(id_=doc_id, text=text, metadata=meta)
    nodes, at = [], 0
    for index, t in enumerate(chunk_texts):
        start, end = at, at + len(t)
        nodes.append(TextNode(id_=f"{doc_id}:{doc_hash[:12]}:{index:05d}", text=t, start_char_idx=start,
                              end_char_idx=end, metadata={"doc_id": doc_id, "doc_hash": doc_hash,
                                                          "source": meta["source"], "title": meta["title"],
                                                          "chunk_index": index, "start": start, "end": end}))
        at = end + 2
    return doc, nodes, np.vstack(chunk_vecs)


def ingest(url: str, target_chunks: int, base, batch_docs: int = 256) -> dict:
    from rag.index.store import Store

    store = Store(Config(data_dir=Path(tempfile.mkdtemp(prefix="scale-writer-")), chroma_url=url,
                         collection=COLLECTION))
    have = store.docs.count()
    want = target_chunks // PER_DOC
    t0 = time.perf_counter()
    written = 0
    for start in range(have, want, batch_docs):
        items = [synthetic_doc(d, *base) for d in range(start, min(want, start + batch_docs))]
        store.write_many(items, replaces=set())
        written += len(items) * PER_DOC
        if (start // batch_docs) % 20 == 0:
            rate = written / (time.perf_counter() - t0)
            print(f"  {(start + len(items)) * PER_DOC:,} chunks committed ({rate:.0f} chunks/s)", flush=True)
    seconds = time.perf_counter() - t0
    return {"chunks before": have * PER_DOC, "chunks written": written, "seconds": round(seconds, 1),
            "chunks/s": round(written / seconds, 1) if written else None, "chunks total": store.chunks.count()}


def replica(url: str, base_dir: str, base_collection: str, questions: int) -> None:
    """One fresh replica process: catch-up, queries, one write. Prints JSON."""
    from rag.index.lexical_index import LexicalIndex
    from rag.answer.retriever import HybridRetriever
    from rag.index.store import Store

    import chromadb  # noqa: F401  (imports are timed by bench/cold_start.py, not here)

    out = {"rss start MB": round(current_rss_mb(), 0)}
    data_dir = Path(tempfile.mkdtemp(prefix="scale-replica-"))
    config = Config(data_dir=data_dir, chroma_url=url, collection=COLLECTION)
    t0 = time.perf_counter()
    store = Store(config)
    out["open store s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    lexical = LexicalIndex(store)
    report = lexical.sync()
    out["catch-up s"] = round(time.perf_counter() - t0, 1)
    out["catch-up chunks"] = report.chunks
    out["lexical file MB"] = round(sum(p.stat().st_size for p in lexical.path.parent.iterdir()) / 2**20, 0)
    other = Store(config)
    t0 = time.perf_counter()
    LexicalIndex(other).sync()
    out["re-open caught-up file (poll) ms"] = round((time.perf_counter() - t0) * 1000, 1)
    t0 = time.perf_counter()
    lexical.sync()
    out["one poll, nothing new ms"] = round((time.perf_counter() - t0) * 1000, 1)
    out["rss after catch-up MB"] = round(current_rss_mb(), 0)

    texts, vecs, sentences = load_base(Path(base_dir), base_collection, limit=3000)
    rng = random.Random(11)
    qs = []
    while len(qs) < questions:
        words = rng.choice(sentences).split()
        qs.append(" ".join(words[: rng.randint(4, 9)]))
    from rag.index.embeddings import default_embedding

    default_embedding().get_query_embedding("warm up")  # model load is not a query
    for mode in ("hybrid", "bm25", "dense"):
        retriever = HybridRetriever(store, top_k=6, mode=mode, lexical=lexical)
        retriever.search(qs[0])  # warm: model load
        ms = []
        for q in qs:
            t = time.perf_counter()
            retriever.search(q)
            ms.append((time.perf_counter() - t) * 1000)
        p = percentiles(ms)
        out[f"{mode} p50 ms"], out[f"{mode} p95 ms"] = p["p50"], p["p95"]
    out["rss after queries MB"] = round(current_rss_mb(), 0)

    writes, catch, deletes = [], [], []
    for k in range(5):  # one 4-chunk document: commit to Chroma, read-your-writes refresh, delete
        doc, nodes, v = synthetic_doc(10**9 + k, texts, vecs, sentences)
        t0 = time.perf_counter()
        store.write_many([(doc, nodes, v)], replaces=set())
        t1 = time.perf_counter()
        lexical.refresh(force=True)
        t2 = time.perf_counter()
        store.delete(doc.metadata["doc_id"])
        lexical.refresh(force=True)
        t3 = time.perf_counter()
        writes.append((t1 - t0) * 1000), catch.append((t2 - t1) * 1000), deletes.append((t3 - t2) * 1000)
    out.update({"one write: Chroma ms (median of 5)": round(statistics.median(writes), 1),
                "one write: lexical catch-up ms": round(statistics.median(catch), 1),
                "one delete + lexical ms": round(statistics.median(deletes), 1)})
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--server-dir", type=Path, default=Path("bench/out/scale-chroma"))
    ap.add_argument("--base-dir", default="bench/out/bbc-seed")
    ap.add_argument("--base-collection", default="bbcseed")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--url", help="use a running Chroma server instead of starting one")
    ap.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replica:
        return replica(args.url, args.base_dir, args.base_collection, args.questions)

    proc = None
    url = args.url
    if not url:
        port = free_port()
        args.server_dir.mkdir(parents=True, exist_ok=True)
        chroma = Path(sys.executable).parent / "chroma"
        proc = subprocess.Popen([str(chroma), "run", "--path", str(args.server_dir), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(port, 120):
            raise SystemExit("chroma run did not start")
        url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        base = load_base(Path(args.base_dir), args.base_collection)
        print(f"base: {len(base[0])} real chunks, {len(base[2])} sentences ({time.perf_counter() - t0:.0f}s)")
        got = ingest(url, args.chunks, base)
        print(table([got]))
        env = {**os.environ}
        res = subprocess.run([sys.executable, __file__, "--replica", "--url", url, "--base-dir", args.base_dir,
                              "--base-collection", args.base_collection, "--questions", str(args.questions)],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(res.stderr[-3000:])
        rep = json.loads(res.stdout.strip().splitlines()[-1])
        if proc is not None:
            rep["chroma server RSS MB"] = round(current_rss_mb(proc.pid), 0)
        print(f"\nfresh replica at {got['chunks total']:,} chunks:")
        print(table([{"what": k, "value": v} for k, v in rep.items()]))
    finally:
        if proc is not None:
            stop_process(proc)


if __name__ == "__main__":
    main()
