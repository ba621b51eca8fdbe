"""The real server (`rag serve` in a subprocess on a free loopback port) driven by real
clients: httpx, the official `openai` client, and `gradio_client`."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, SEED_ARTICLE, free_port
from live_servers import rag_server

pytestmark = pytest.mark.slow

QUESTION = "What did Zelenskyy say about Crimea?"
KEY = "live-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with rag_server(tmp_path_factory.mktemp("live") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def url(server):
    return server[0]


def assert_verified(url: str, answer: dict, headers: dict | None = None) -> None:
    assert answer["citations"], answer
    for c in answer["citations"]:
        text = httpx.get(f"{url}/api/documents/{c['doc_id']}", headers=headers).json()["text"]
        assert text[c["start"]:c["end"]] == c["quote"]


def test_first_start_indexes_seeds(server):
    url, _proc, log_path = server
    health = httpx.get(f"{url}/healthz").json()
    assert health["status"] == "ok" and health["documents"] == 1 and health["chunks"] >= 1
    assert health["backend"] == "extractive"
    log = log_path.read_text()
    assert "index is empty" in log and url in log


def test_ask_with_httpx(url):
    r = httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert not answer["abstained"]
    assert all(c["quote"] in SEED_ARTICLE.read_text(encoding="utf-8") for c in answer["citations"])
    assert_verified(url, answer)
    assert httpx.post(f"{url}/api/ask", json={"question": ""}).status_code == 422


def test_stream_with_httpx(url):
    events, deltas = [], []
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": QUESTION}, timeout=30) as r:
        assert r.status_code == 200
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append(event)
                if event == "delta":
                    deltas.append(json.loads(line[6:])["text"])
                elif event == "answer":
                    answer = json.loads(line[6:])
    assert events[-2:] == ["answer", "done"] and len(deltas) > 1
    assert "".join(deltas) == answer["answer"]
    assert_verified(url, answer)


def test_openai_client(url):
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0)
    assert "grounded-rag" in [m.id for m in client.models.list()]
    resp = client.chat.completions.create(model="grounded-rag", messages=[
        {"role": "system", "content": "You are a helpful assistant."},  # a generic default: accepted
        {"role": "user", "content": QUESTION}])
    with pytest.raises(BadRequestError) as refused:  # a quick answer cannot follow instructions: said, not ignored
        client.chat.completions.create(model="grounded-rag", messages=[
            {"role": "system", "content": "Answer in French."}, {"role": "user", "content": QUESTION}])
    assert refused.value.code == "system_message_unsupported"
    message = resp.choices[0].message
    assert "Crimea" in message.content and resp.choices[0].finish_reason == "stop"
    citations = message.model_extra["citations"]
    assert citations and citations == resp.model_extra["citations"]
    assert_verified(url, {"citations": citations})


def test_openai_client_stream(url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0)
    text, final = [], None
    for chunk in client.chat.completions.create(model="grounded-rag", stream=True,
                                                messages=[{"role": "user", "content": QUESTION}]):
        choice = chunk.choices[0]
        if choice.delta.content:
            text.append(choice.delta.content)
        if choice.finish_reason == "stop":
            final = chunk
    assert final is not None
    citations = final.model_extra["citations"]
    assert citations and final.choices[0].delta.model_extra["citations"] == citations
    assert "".join(text) == final.model_extra["grounded_answer"]["answer"]
    assert_verified(url, {"citations": citations})


def test_gradio_client_chat_endpoint(url):
    from gradio_client import Client

    client = Client(f"{url}/", verbose=False)
    chat, cleared, answer = client.predict(QUESTION, api_name="/chat")
    assert cleared == ""
    assert answer["citations"] and "Crimea" in answer["answer"]
    last = chat[-1]
    content = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    assert last["role"] == "assistant" and "<mark>" in content and "cite-card" in content
    assert_verified(url, answer)


def test_concurrent_requests(url):
    questions = ["What did Zelenskyy say about Crimea?", "When was the NATO summit?",
                 "What does Putin consider a red line?", "What is the victory plan?"] * 4

    def ask(q):
        return httpx.post(f"{url}/api/ask", json={"question": q}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(ask, questions))
    assert [r.status_code for r in responses] == [200] * len(questions)
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_api_key_with_real_clients(tmp_path):
    from gradio_client import Client
    from openai import AuthenticationError, OpenAI

    with rag_server(tmp_path / "data", "--read-only", api_key=KEY) as (url, _proc, _log):
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.post(f"{url}/api/ask", json={"question": QUESTION}).status_code == 401
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        resp = client.chat.completions.create(model="grounded-rag", messages=[{"role": "user", "content": QUESTION}])
        assert resp.choices[0].message.model_extra["citations"]
        headers = {"X-API-Key": KEY}
        r = httpx.post(f"{url}/api/documents", files={"file": ("a.txt", b"hello")}, headers=headers)
        assert r.status_code == 403
        _chat, _q, answer = Client(f"{url}/", headers=headers, verbose=False).predict(QUESTION, api_name="/chat")
        assert answer["citations"]


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_served_local_index_has_one_owner(tmp_path):
    """`rag ingest` or a second `rag serve` on the data dir of a running server is refused with a message
    that says how to add files instead; the server keeps answering, including about uploaded files; once it
    stops, `rag ingest` works again. (Before this rule, an outside ingest made the server's queries fail
    with Chroma's "Error finding id".)"""
    data_dir = tmp_path / "data"
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "mars.txt").write_text("Mars Colony Report\n\nThe Ares Habitat on Mars opened its greenhouse dome "
                                     "in March 2031, growing potatoes for the 14 residents.\n", encoding="utf-8")
    with rag_server(data_dir) as (url, proc, _):
        refused = run_cli(data_dir, "ingest", str(folder))
        assert refused.returncode == 1 and "served by `rag serve`" in refused.stderr
        assert f"{url}/api/documents" in refused.stderr and str(proc.pid) in refused.stderr
        second = subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve", "--port",
                                 str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and "already served by" in second.stderr
        with open(folder / "mars.txt", "rb") as fh:
            assert httpx.post(f"{url}/api/documents", files={"file": ("mars.txt", fh)}, timeout=60).status_code == 200
        answer = httpx.post(f"{url}/api/ask", json={"question": "When did the Ares Habitat greenhouse open?"},
                            timeout=60).json()
        assert_verified(url, answer)
        assert "March 2031" in answer["answer"]
        # reading commands open the files without owning them
        assert run_cli(data_dir, "search", "Ares Habitat greenhouse").returncode == 0
    after = run_cli(data_dir, "ingest", str(folder))
    assert after.returncode == 0, after.stderr
