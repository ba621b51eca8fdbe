"""Answer latency on the seed index and cold start of `rag ask`.

* in-process p50/p95 of Assistant.ask over 200 questions on the seed index
  (the dev-set questions, cycled; the first pass fills the sentence cache,
  so the cold and warm halves are reported separately);
* cold start: wall seconds from `rag ask` process start to printed answer,
  median of 5 runs, next to a bare `python -c "import rag"` as the baseline.
* with ``--bbc N``: the same on an index of the first N BBC articles (plus the BBC
  dev set's named ones), asking the BBC dev-set questions, with the share of the
  time spent ranking sentences (``timings_ms["rank"]``: sentence scoring, typed
  spans, abstention; the rest of "answer" is composing, premise checks, citations).

    .venv/bin/python bench/answer_latency.py
    .venv/bin/python bench/answer_latency.py --bbc 600 --skip-seed --skip-cold
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, percentiles, table

import rag  # noqa: F401
from rag.assistant import Assistant
from rag.config import Config


def timed(assistant: Assistant, questions: list[tuple[str, list | None]]) -> dict[str, list[float]]:
    """Per question: total wall ms of ``ask`` and the answer's retrieve / answer / rank timings."""
    out = {"total": [], "retrieve": [], "answer": [], "rank": []}
    for q, h in questions:
        t = time.perf_counter()
        answer = assistant.ask(q, history=h)
        out["total"].append((time.perf_counter() - t) * 1000)
        for k in ("retrieve", "answer", "rank"):
            out[k].append(answer.timings_ms.get(k, 0.0))
    return out


def bbc(n: int, data_dir: Path | None) -> None:
    from eval.datasets import bbc_articles
    from eval.runner import BBC_DEV, read_jsonl
    from rag.index.ingest import Indexer
    from rag.index.loaders import make_document

    rows = read_jsonl(BBC_DEV)
    named = {r["article"] for r in rows if r.get("article")}
    docs = []
    for i, (path, text) in enumerate(bbc_articles()):
        rel = f"{path.parent.name}/{path.name}"
        if i < n or rel in named:
            docs.append(make_document(text, f"bbc:{rel}"))
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="bbc-latency-"))
    assistant = Assistant.open(Config(data_dir=data_dir, chroma_url=None, collection=f"bbc{n}"))
    t = time.perf_counter()
    Indexer(assistant.store).ingest_documents(docs)
    assistant._read_your_writes()  # noqa: SLF001
    print(f"indexed {len(docs)} BBC articles in {time.perf_counter() - t:.0f} s ({assistant.store.chunk_count()} chunks)")
    questions = [(r["question"], r.get("history")) for r in rows]
    assistant.ask("warm up")
    first = timed(assistant, questions)
    again = timed(assistant, (questions * (200 // len(questions) + 1))[: 200 - len(questions)])
    table_rows = []
    for name, t in (("first time each question", first), ("repeated questions", again)):
        for k in ("total", "retrieve", "answer", "rank"):
            table_rows.append({"what": f"ask, BBC {len(docs)} articles, {name}: {k}", **percentiles(t[k])})
        share = sum(t["rank"]) / max(sum(t["total"]), 1e-9)
        table_rows.append({"what": f"  ranking share of ask time ({name})", "p50": round(share, 3)})
    table_rows.append({"what": "baseline, same run: the bare embedder on 8 of these sentences (ms)",
                       **percentiles(embedder_baseline(assistant, rows))})
    table_rows.append({"what": "load average (1 min) at the end", "p50": round(os.getloadavg()[0], 2)})
    print(table(table_rows))


def embedder_baseline(assistant: Assistant, rows: list[dict], n: int = 15) -> list[float]:
    """Wall ms of embed_texts on 8 dev-set support sentences (what a first ask embeds), ``n`` times, each time
    made new so that no cache answers: the machine's speed at this moment, to read the figures above against."""
    from rag.index.embeddings import embed_texts

    sentences = [r["support"] for r in rows if r.get("support")][:8]
    out = []
    for i in range(n):
        t = time.perf_counter()
        embed_texts([f"{s} ({i})" for s in sentences])
        out.append((time.perf_counter() - t) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bbc", type=int, default=0, help="also time asks on an index of the first N BBC articles")
    ap.add_argument("--bbc-data-dir", type=Path, default=None, help="reuse this data dir for the BBC index")
    ap.add_argument("--skip-seed", action="store_true")
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args()
    if args.bbc:
        bbc(args.bbc, args.bbc_data_dir)
    if args.skip_seed:
        return
    data_dir = Path(tempfile.mkdtemp(prefix="seed-index-"))
    assistant = Assistant.open(Config(data_dir=data_dir, chroma_url=None))
    assistant.ingest([ROOT / "seeds"])
    dev = [json.loads(l) for l in (ROOT / "eval/data/seed_dev.jsonl").read_text().splitlines() if l.strip()]
    questions = [(r["question"], r.get("history")) for r in dev]
    questions = (questions * (200 // len(questions) + 1))[:200]
    assistant.ask("warm up")
    first, rest = [], []
    seen = set()
    for q, h in questions:
        t = time.perf_counter()
        assistant.ask(q, history=h)
        (rest if q in seen else first).append((time.perf_counter() - t) * 1000)
        seen.add(q)
    print(table([{"what": "ask, seed index, first time each question", **percentiles(first)},
                 {"what": "ask, seed index, repeated questions", **percentiles(rest)},
                 {"what": "ask, seed index, all 200", **percentiles(first + rest)}]))
    if args.skip_cold:
        return

    rag_bin = Path(sys.executable).parent / "rag"
    env_dir = ["--data-dir", str(data_dir)]
    cold, base = [], []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import rag"], check=True, cwd=ROOT)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([str(rag_bin), *env_dir, "ask", "When was NATO's summit?"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        cold.append(time.perf_counter() - t)
    print()
    print(table([{"what": "rag ask cold start (s), median of 5", "seconds": round(statistics.median(cold), 2)},
                 {"what": "python -c 'import rag' (s), median of 5", "seconds": round(statistics.median(base), 2)}]))


if __name__ == "__main__":
    main()
