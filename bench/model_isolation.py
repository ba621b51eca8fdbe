"""What running the local model in a child process costs against running it in-process.

    .venv/bin/python bench/model_isolation.py [--llm qwen2.5-coder-1.5b] [--questions 5] [--rounds 2]

Each mode runs in a fresh process (``RAG_LLM_PROCESS=child`` / ``inprocess``) over the seed
index; the modes alternate round by round. Prints answer latency p50 / mean per mode (the first
answer, which loads the model, apart), the answers' equality across modes, and peak RSS of the
asking process and of the model child.
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

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from rag.assistant import Assistant
from rag.config import Config
cfg = Config().with_(data_dir=Path(sys.argv[1]), llm=sys.argv[2])
a = Assistant.open(cfg)
if not a.documents():
    a.ingest([Path("seeds")])
qs = json.loads(sys.argv[3])
rows = []
for q in qs:
    t = time.perf_counter()
    ans = a.ask(q)
    rows.append({"q": q, "s": time.perf_counter() - t, "answer": ans.answer,
                 "cites": [(c.doc_id, c.start, c.end) for c in ans.citations]})
child_rss = 0
llm = getattr(a, "_generator", None)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            if int(stat[1]) == os.getpid():
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM"):
                        child_rss = max(child_rss, int(line.split()[1]) // 1024)
        except OSError:
            pass
print(json.dumps({"rows": rows, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "child_rss_mb": child_rss}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    dev = [json.loads(line) for line in (ROOT / "eval/data/seed_dev.jsonl").read_text().splitlines() if line.strip()]
    questions = [d["question"] for d in dev if not d.get("unanswerable")][: args.questions]
    from rag.llm.cpu_variant import cpu_name

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.llm}; {len(questions)} seed questions, "
          f"{args.rounds} rounds, modes alternating")
    data = Path(tempfile.mkdtemp())
    results: dict[str, list] = {"inprocess": [], "child": []}
    for r in range(args.rounds):
        for mode in (["inprocess", "child"] if r % 2 == 0 else ["child", "inprocess"]):
            env = {**os.environ, "RAG_LLM_PROCESS": mode}
            out = subprocess.run([sys.executable, "-c", CHILD, str(data / "idx"), args.llm, json.dumps(questions)],
                                 capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    same = all(a["answer"] == b["answer"] and a["cites"] == b["cites"]
               for ra, rb in zip(results["inprocess"], results["child"]) for a, b in zip(ra["rows"], rb["rows"]))
    print("\n| mode | first answer (loads the model) s | later answers p50 s | mean s | asking process peak RSS MB | model child peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for mode, runs in results.items():
        first = statistics.median(run["rows"][0]["s"] for run in runs)
        later = [row["s"] for run in runs for row in run["rows"][1:]]
        print(f"| {mode} | {first:.2f} | {statistics.median(later):.2f} | {statistics.mean(later):.2f} | "
              f"{max(run['rss_mb'] for run in runs)} | {max(run['child_rss_mb'] for run in runs) or '-'} |")
    print(f"\nsame answers and citations in both modes: {same}")


if __name__ == "__main__":
    main()
