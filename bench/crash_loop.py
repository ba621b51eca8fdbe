"""kill -9 `rag ingest` of the BBC corpus at random points, then finish it,
and compare with a clean ingest: same chunk ids, same document records.

    .venv/bin/python bench/crash_loop.py [--kills 5] [--limit N] [--seed 1]

Bounded: each run is killed within --max-delay seconds; the final run and the
clean run have no time limit beyond the corpus size. (A short version of this
runs in CI as tests/test_crash_safety.py.)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

from eval.datasets import bbc_articles


def ingest(folder: Path, data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "ingest", str(folder)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def state(data_dir: Path):
    from rag.config import Config
    from rag.index.store import Store

    store = Store(Config(data_dir=data_dir, chroma_url=None, collection="documents"))
    ids = sorted(store.chunks.get(include=[])["ids"])
    return ids, sorted((r.doc_id, r.doc_hash, r.n_chunks) for r in store.documents())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-delay", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="crash-loop-"))
    folder = work / "corpus"
    folder.mkdir()
    for path, text in list(bbc_articles())[: args.limit]:
        (folder / f"{path.parent.name}-{path.name}").write_text(text)
    clean, crashed = work / "clean", work / "crashed"
    t = time.perf_counter()
    assert ingest(folder, clean).wait() == 0
    print(f"clean ingest: {time.perf_counter() - t:.0f}s")
    for i in range(args.kills):
        proc = ingest(folder, crashed)
        delay = rng.uniform(3.0, args.max_delay)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ids, docs = state(crashed)
        print(f"run {i + 1}: {'killed' if killed else 'finished'} after {delay:.1f}s -> "
              f"{len(docs)} documents committed, {len(ids)} chunk rows")
    t = time.perf_counter()
    assert ingest(folder, crashed).wait() == 0
    print(f"final run: {time.perf_counter() - t:.0f}s")
    same = state(crashed) == state(clean)
    ids, docs = state(crashed)
    print(f"final index == clean index: {same} ({len(docs)} documents, {len(ids)} chunks, "
          f"duplicates: {len(ids) - len(set(ids))})")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
