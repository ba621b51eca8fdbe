"""kill -9 during `rag ingest`: the next run completes the index, with exactly
the chunks of a clean ingest (no duplicates, none missing)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _corpus(folder, n=120):
    from eval.datasets import bbc_articles

    folder.mkdir()
    for i, (path, text) in enumerate(bbc_articles()):
        if i >= n:
            break
        (folder / f"{path.parent.name}-{path.name}").write_text(text)
    return folder


def _ingest(folder, data_dir, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "ingest", str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _state(data_dir):
    from rag.config import Config
    from rag.index.store import Store

    store = Store(Config(data_dir=data_dir, chroma_url=None, collection="documents"))
    got = store.chunks.get(include=["metadatas"])
    return sorted(got["ids"]), sorted((r.doc_id, r.doc_hash, r.n_chunks) for r in store.documents())


def test_kill_9_mid_ingest_then_rerun_equals_clean_ingest(tmp_path):
    folder = _corpus(tmp_path / "corpus")
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    assert _ingest(folder, clean_dir).wait(timeout=600) == 0

    codes = []
    for delay in (4.0, 7.0):  # two kills at different points of the run
        proc = _ingest(folder, crash_dir)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        codes.append(proc.wait(timeout=30))
    assert -signal.SIGKILL in codes, "no run was actually killed mid-way"
    killed_state = _state(crash_dir)
    assert killed_state != _state(clean_dir), "the killed runs had already finished"
    final = _ingest(folder, crash_dir)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    assert _state(crash_dir) == _state(clean_dir)
