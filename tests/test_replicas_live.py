"""Two `rag serve` replicas (own data dirs, own lexical indexes) on one `chroma run` server:
a document uploaded through one is answerable through the other within 2 s, and a delete
through one disappears from the other within 2 s (both catch up from Chroma's records and
tombstones, rag/lexical_index.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port, stop_process
from rag.localhost import wait_for_port

pytestmark = pytest.mark.slow

DOC = (b"The Zorbulon lantern festival is held every March in the harbour town of Quixville. "
       b"Its organisers say that forty thousand paper lanterns were lit there last spring.\n")
QUESTION = "Where is the Zorbulon lantern festival held?"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(tmp_path_factory.mktemp("chroma-replicas")),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_port(port, 60):
        proc.kill()
        pytest.fail("chroma run did not start")
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


@contextmanager
def replica(data_dir: Path, chroma_url: str, timeout: float = 180.0):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEY", "RAG_LLM")}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "--chroma-url",
                                 chroma_url, "--collection", "replicas", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"replica exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica not ready after {timeout}s:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            stop_process(proc, 15)


def _cited_docs(url: str) -> set[str]:
    answer = httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=30).json()
    return {c["doc_id"] for c in answer["citations"]}


def _within(seconds: float, condition) -> float | None:
    """Seconds until ``condition()`` held (polled), or None if it did not within ``seconds``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            return None
        time.sleep(0.05)


def test_upload_and_delete_through_one_replica_reach_the_other_within_2s(chroma_url, tmp_path):
    with replica(tmp_path / "a", chroma_url) as a, replica(tmp_path / "b", chroma_url) as b:
        assert httpx.get(f"{b}/healthz").json()["documents"] == 1  # the seeds indexed once, by a
        _cited_docs(b)  # b has answered before: its index is warm, not built by the next question
        assert list((tmp_path / "b" / "lexical").glob("replicas-*.sqlite")), "b keeps its own lexical index"

        r = httpx.post(f"{a}/api/documents", files={"file": ("zorbulon.txt", DOC)}, timeout=60)
        assert r.status_code == 200, r.text
        doc_id = r.json()["doc_id"]
        seen = _within(2.0, lambda: doc_id in _cited_docs(b))
        assert seen is not None, "the upload through a was not answerable through b within 2 s"
        answer = httpx.post(f"{b}/api/ask", json={"question": QUESTION}, timeout=30).json()
        text = httpx.get(f"{b}/api/documents/{doc_id}").json()["text"]
        for c in answer["citations"]:
            if c["doc_id"] == doc_id:
                assert text[c["start"]:c["end"]] == c["quote"]
        assert "Quixville" in answer["answer"]

        assert httpx.delete(f"{a}/api/documents/{doc_id}", timeout=60).status_code == 200
        gone = _within(2.0, lambda: doc_id not in _cited_docs(b))
        assert gone is not None, "the delete through a still answered through b after 2 s"
        print(f"upload visible on the other replica after {seen:.2f}s, delete after {gone:.2f}s")
