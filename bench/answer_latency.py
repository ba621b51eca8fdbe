"""Answer latency on the seed index and cold start of `rag ask`.

* in-process p50/p95 of Assistant.ask over 200 questions on the seed index
  (the dev-set questions, cycled; the first pass fills the sentence cache,
  so the cold and warm halves are reported separately);
* cold start: wall seconds from `rag ask` process start to printed answer,
  median of 5 runs, next to a bare `python -c "import rag"` as the baseline.
(BBC-index answer latency is printed by bench/ingest_bbc.py.)

    .venv/bin/python bench/answer_latency.py
"""

from __future__ import annotations

import json
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


def main():
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
