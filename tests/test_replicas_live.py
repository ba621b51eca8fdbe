"""Two `rag serve` replicas (own data dirs, own lexical indexes) on one `chroma run` server:
a document uploaded through one is answerable through the other within 2 s, and a delete
through one disappears from the other within 2 s (both catch up from Chroma's records and
tombstones, rag/index/lexical_index.py)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from live_servers import chroma_server, rag_server

pytestmark = pytest.mark.slow

DOC = (b"The Zorbulon lantern festival is held every March in the harbour town of Quixville. "
       b"Its organisers say that forty thousand paper lanterns were lit there last spring.\n")
QUESTION = "Where is the Zorbulon lantern festival held?"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma-replicas")) as url:
        yield url


@contextmanager
def replica(data_dir: Path, chroma_url: str, timeout: float = 180.0):
    """A `rag serve` with its own data dir (and lexical index) on the shared Chroma server."""
    with rag_server(data_dir, options=("--chroma-url", chroma_url, "--index", "replicas"),
                    timeout=timeout) as (url, _proc, _log):
        yield url


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
