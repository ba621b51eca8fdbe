"""Cold start of `rag ask` on an existing index: wall time and where it goes.

Runs, each ``--runs`` times in a fresh process (median reported):

* ``python -c pass`` and ``python -c "import rag"`` (interpreter baseline);
* the real command, ``rag --data-dir DIR --collection NAME ask QUESTION`` (as
  ``python -m rag.cli`` from this checkout's root), wall time;
* a child that does what `rag ask` does, phase by phase: imports (the modules
  `rag ask` loads), open store (Chroma client + collections), assistant (embedder
  object, retriever), lexical (catch-up of the persistent index from Chroma),
  documents (the CLI's "is the index empty?" check), retrieve (query embedding:
  model load + dense + BM25 + fusion), answer (extractive + quote check).

Build an index first, e.g. the seed + 2,225 BBC articles of bench/retrieval_quality.py
(``bench/out/bbc-seed``, collection ``bbcseed``) or ``bench/ingest_bbc.py --data-dir DIR``.

    .venv/bin/python bench/cold_start.py --data-dir bench/out/bbc-seed --collection bbcseed [--runs 5]
    .venv/bin/python bench/cold_start.py ... --importtime    # the 15 slowest imports of one run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "When was NATO's summit?"


def child(data_dir: str, collection: str, question: str) -> None:
    sys.path.insert(0, str(ROOT))  # this checkout's rag/, not the one installed in the venv
    t = [time.perf_counter()]
    import rag  # noqa: F401
    from rag.assistant import Assistant
    from rag.config import Config
    from rag.index.store import Store

    t.append(time.perf_counter())
    config = Config().with_(data_dir=Path(data_dir), collection=collection)
    store = Store(config)
    t.append(time.perf_counter())
    assistant = Assistant(config, store)
    t.append(time.perf_counter())
    assistant.retriever.lexical.refresh(force=True)
    t.append(time.perf_counter())
    assistant.documents()
    t.append(time.perf_counter())
    nodes = assistant.retrieve(question)
    t.append(time.perf_counter())
    answer = assistant._checked(assistant._extractive(question, nodes))  # noqa: SLF001
    t.append(time.perf_counter())
    names = ["imports", "open store", "assistant", "lexical", "documents", "retrieve", "answer"]
    out = {n: round((b - a) * 1000, 1) for n, a, b in zip(names, t, t[1:])}
    out["total in process"] = round((t[-1] - t[0]) * 1000, 1)
    out["modules"] = len(sys.modules)
    out["heavy modules loaded"] = sorted(m for m in ("gradio", "fastapi", "uvicorn", "llama_cpp", "openai",
                                                     "torch", "transformers") if m in sys.modules)
    out["answer text"] = answer.answer[:80]
    print(json.dumps(out))


def _wall(cmd: list[str], env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--collection", default="documents")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.data_dir, args.collection, args.question)
    py = sys.executable
    env = {**os.environ, "RAG_LLM": "extractive"}
    env.pop("RAG_CHROMA_URL", None)
    if args.importtime:
        proc = subprocess.run([py, "-X", "importtime", "-c", "import rag.cli, rag.assistant"], cwd=ROOT,
                              capture_output=True, text=True, env=env)
        rows = []
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                rows.append((int(parts[1]), parts[2].rstrip()))
        top = [r for r in rows if r[1].startswith(" ") and not r[1].startswith("  ")]  # top-level imports
        for us, name in sorted(top, reverse=True)[:15]:
            print(f"{us / 1000:8.1f} ms  {name.strip()}")
        return
    # `python -m rag.cli` from this checkout's root is the `rag` command of this checkout
    ask = [py, "-m", "rag.cli", "--data-dir", args.data_dir, "--collection", args.collection, "ask", args.question]
    subprocess.run(ask, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)  # warm the page cache once
    walls = {"python -c pass": [], "python -c 'import rag'": [], "rag ask (wall)": []}
    phases: list[dict] = []
    for _ in range(args.runs):
        walls["python -c pass"].append(_wall([py, "-c", "pass"], env))
        walls["python -c 'import rag'"].append(_wall([py, "-c", "import rag"], env))
        walls["rag ask (wall)"].append(_wall(ask, env))
        got = subprocess.run([py, __file__, "--child", "--data-dir", args.data_dir, "--collection",
                              args.collection, "--question", args.question], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        phases.append(json.loads(got.stdout.strip().splitlines()[-1]))
    print(f"median of {args.runs} runs, index {args.data_dir} ({args.collection})")
    for name, values in walls.items():
        print(f"  {name:28s} {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    print("  phases of the same work in one process (ms, median):")
    for key in ["imports", "open store", "assistant", "lexical", "documents", "retrieve", "answer",
                "total in process"]:
        print(f"    {key:18s} {statistics.median(p[key] for p in phases):8.1f}")
    print(f"  modules loaded: {phases[-1]['modules']}; heavy: {phases[-1]['heavy modules loaded'] or 'none'}")
    print(f"  answer: {phases[-1]['answer text']!r}")


if __name__ == "__main__":
    main()
