"""Model answers on the seed index: a first question, then follow-ups on the same document,
streamed as the UI gets them, with the whole document in the prompt (cache-augmented: the KV
state of system prompt + document is reused) against the compact evidence
(``RAG_WHOLE_SCOPE_WORDS=0``), each in a fresh process with the model loaded before the clock starts.

    .venv/bin/python bench/cag_latency.py [--llm qwen2.5-coder-1.5b] [--rounds 2]

Prints, per mode: the first question's full answer and first verified claim, the follow-ups'
p50 / p95, prompt tokens per answer, and the answers themselves (so a reader sees what changed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONVERSATION = ["When was the NATO summit?", "Who interviewed Zelenskyy?", "What did he say about Crimea?",
                "Which territory did he mention?", "What did the alliance say about membership?",
                "What did the Kremlin say about a ceasefire?"]

CHILD = r"""
import json, sys, time
from pathlib import Path
from rag.assistant import Assistant
from rag.config import Config
from rag.models import Answer, ClaimEvent
a = Assistant.open(Config().with_(data_dir=Path(sys.argv[1]), llm=sys.argv[2]))
if not a.documents():
    a.ingest([Path("seeds")])
a.generator.llm.count_tokens("warm up")  # the model child is loaded before the clock starts
history, rows = [], []
for q in json.loads(sys.argv[3]):
    t0, first, final = time.perf_counter(), None, None
    for item in a.stream(q, history=history):
        if isinstance(item, ClaimEvent) and first is None:
            first = time.perf_counter() - t0
        if isinstance(item, Answer):
            final = item
    rows.append({"q": q, "s": time.perf_counter() - t0, "first_claim_s": first, "answer": final.answer,
                 "prompt_tokens": a.generator.last.prompt_tokens,
                 "cites": [c.quote[:60] for c in final.citations]})
    history += [{"role": "user", "content": q}, {"role": "assistant", "content": final.answer}]
print(json.dumps(rows))
"""


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from rag.llm.cpu_variant import cpu_name

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.llm}; 1 first question + "
          f"{len(CONVERSATION) - 1} follow-ups, {args.rounds} rounds, modes alternating")
    data = Path(tempfile.mkdtemp())
    modes = {"compact evidence (before)": "0", "whole document, cached prefix": "800"}
    runs: dict[str, list] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in (list(modes) if r % 2 == 0 else list(reversed(modes))):
            env = {**os.environ, "RAG_WHOLE_SCOPE_WORDS": modes[mode]}
            out = subprocess.run([sys.executable, "-c", CHILD, str(data / "idx"), args.llm, json.dumps(CONVERSATION)],
                                 capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\n| mode | first question s | its first claim s | follow-ups p50 s | p95 s | follow-up first claim p50 s | prompt tokens p50 |")
    print("|---|---|---|---|---|---|---|")
    for mode, rs in runs.items():
        first = [run[0] for run in rs]
        later = [row for run in rs for row in run[1:]]
        claims = [row["first_claim_s"] for row in later if row["first_claim_s"] is not None]
        print(f"| {mode} | {statistics.median(r['s'] for r in first):.1f} | "
              f"{statistics.median(r['first_claim_s'] or r['s'] for r in first):.1f} | "
              f"{statistics.median(r['s'] for r in later):.1f} | {pct([r['s'] for r in later], 95):.1f} | "
              f"{statistics.median(claims) if claims else float('nan'):.1f} | "
              f"{statistics.median(r['prompt_tokens'] for run in rs for r in run):.0f} |")
    for mode, rs in runs.items():
        print(f"\n{mode}:")
        for row in rs[-1]:
            print(f"  {row['q']} -> {row['answer'][:110]!r}")


if __name__ == "__main__":
    main()
