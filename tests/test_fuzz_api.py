"""Bad requests against the real server (uvicorn on 127.0.0.1): the OpenAPI spec fuzzed
by schemathesis, explicit hostile requests, and access control.

* Schemathesis (its CLI, run inside this process so the loopback-only socket guard
  applies) runs its examples, coverage, fuzzing and stateful phases, positive and
  negative data, on every operation of /openapi.json, bounded by --max-examples and
  --max-time. The server records the status of every response it sends: zero 5xx,
  and the server is still healthy afterwards.
* Explicit cases on /api/ask, /api/ask/stream and /v1/chat/completions: empty,
  whitespace-only, 1 MB and binary questions, invalid JSON, wrong types, 10,000 turns
  of history, unknown backend fields and model names: each a 4xx with a reason, or a
  sensible answer, within the documented limits.
* Access: the key is required on /api, /v1 and the UI; `rag serve` binds 127.0.0.1 by
  default; CORS is closed; --read-only turns off upload and delete.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections import Counter

import httpx
import pytest

from test_reliability import SEED_QUESTIONS, open_assistant, serve_app

pytestmark = pytest.mark.slow

KEY = "fuzz-test-key"
QUESTION = SEED_QUESTIONS[0]


class StatusRecorder:
    """ASGI wrapper counting the status of every response the server starts."""

    def __init__(self, app):
        self.app = app
        self.statuses: Counter = Counter()
        self.server_errors: list[str] = []

    async def __call__(self, scope, receive, send):
        async def recording_send(message):
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
                if message["status"] >= 500:
                    self.server_errors.append(f"{scope.get('method')} {scope.get('path')} -> {message['status']}")
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    return open_assistant(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def server(assistant):
    from rag.serve.app import create_app

    recorder = StatusRecorder(create_app(assistant, ui=False, max_upload_bytes=2 * 2**20))
    with serve_app(recorder) as url:
        yield url, recorder


@pytest.fixture(scope="module")
def url(server):
    return server[0]


# ------------------------------------------------------------------ schemathesis


@pytest.fixture
def fuzzed_server(tmp_path):
    """A server of its own: the stateful phase uploads and deletes documents."""
    from rag.serve.app import create_app

    recorder = StatusRecorder(create_app(open_assistant(tmp_path / "fuzzed"), ui=False, max_upload_bytes=2 * 2**20))
    with serve_app(recorder) as url:
        yield url, recorder


def test_schemathesis_finds_no_server_error(fuzzed_server, tmp_path):
    from click.testing import CliRunner
    from schemathesis.cli import schemathesis as st

    url, recorder = fuzzed_server
    before = sum(recorder.statuses.values())
    result = CliRunner().invoke(st, [
        "run", f"{url}/openapi.json", "--checks", "not_a_server_error", "--mode", "all",
        "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "25", "--max-time", "60",
        "--request-timeout", "30", "--seed", "20241127", "--generation-database", "none",
        "--no-color", "--report", "ndjson", "--report-dir", str(tmp_path / "report")], catch_exceptions=False)
    output = result.output
    assert result.exit_code == 0, output[-6000:]
    tested = re.search(r"(\d+) generated, (\d+) passed", output)
    assert tested and tested.group(1) == tested.group(2), output[-3000:]
    sent = sum(recorder.statuses.values()) - before
    assert sent >= 300, (sent, output[-2000:])  # the fuzzer really reached the server (time-bound: fewer on a busy machine)
    assert not recorder.server_errors, recorder.server_errors[:20]
    assert httpx.get(f"{url}/healthz").status_code == 200
    print(f"\nschemathesis: {tested.group(0)}; server statuses {dict(sorted(recorder.statuses.items()))}")


# ------------------------------------------------------------------ explicit hostile requests


def body_for(path: str, question, **extra) -> dict:
    if path.startswith("/v1/"):
        return {"model": "grounded-rag", "messages": [{"role": "user", "content": question}], **extra}
    return {"question": question, **extra}


ASK_PATHS = ["/api/ask", "/api/ask/stream", "/v1/chat/completions"]


def assert_refused(r: httpx.Response, status: int | tuple = 422, reason: str | None = None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    if reason:
        assert reason.lower() in detail.lower(), detail
    if str(r.request.url.path).startswith("/v1/"):
        assert r.json()["error"]["message"] == detail


@pytest.mark.parametrize("path", ASK_PATHS)
@pytest.mark.parametrize("question,reason", [
    ("", "empty"),
    ("   \n\t  ", "empty"),
    ("\u3000\u2003\n", "empty"),                       # Unicode spaces only
    ("x" * (1 << 20), "2000"),                        # 1 MB question
    ("nul\x00byte", "NUL"),
])
def test_unusable_questions_are_422_with_reason(url, path, question, reason):
    r = httpx.post(f"{url}{path}", json=body_for(path, question), timeout=30)
    assert_refused(r, 422, reason)


@pytest.mark.parametrize("path", ASK_PATHS)
def test_binary_like_questions_are_answered_or_refused(url, path):
    """Control characters, lone surrogates and random code points: never a 5xx; an answer
    that is given is well-formed (here: nothing to quote, so it abstains or cites verified text)."""
    questions = ["".join(chr(c) for c in range(1, 256)),
                 bytes(range(256)).decode("latin-1").replace("\x00", ""),
                 "\ufffd" * 500, "\U0001F600" * 300, "\u202e\u200b\u2066 Crimea?"]
    for q in questions:
        r = httpx.post(f"{url}{path}", json=body_for(path, q), timeout=30)
        assert r.status_code in (200, 422), (q[:20], r.status_code, r.text[:200])
    raw = '{"question": "\\ud800\\udfff\\ud800"}' if not path.startswith("/v1/") else \
        '{"messages": [{"role": "user", "content": "\\ud800"}]}'
    r = httpx.post(f"{url}{path}", content=raw.encode(), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code in (200, 422), r.text[:200]


@pytest.mark.parametrize("path", ASK_PATHS)
@pytest.mark.parametrize("raw,ctype", [
    (b"", "application/json"),
    (b"{not json", "application/json"),
    (b'{"question": "x"', "application/json"),
    (bytes(range(256)) * 64, "application/json"),     # binary body
    (b"\xff\xfe\x00\x00garbage", "application/json"),
    (b'{"question": "When?"}', "text/plain"),
    (b'{"question": "When?"}', "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data; name=question\r\n\r\nWhen?\r\n--x--\r\n",
     "multipart/form-data; boundary=x"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b"1e999999", "application/json"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),   # deeply nested JSON
])
def test_invalid_bodies_are_4xx(url, path, raw, ctype):
    r = httpx.post(f"{url}{path}", content=raw, headers={"content-type": ctype}, timeout=30)
    assert_refused(r, (400, 415, 422))


@pytest.mark.parametrize("path", ["/api/ask", "/api/ask/stream"])
@pytest.mark.parametrize("body,reason", [
    ({"question": 42}, "question"),
    ({"question": ["When?"]}, "question"),
    ({"question": {"text": "When?"}}, "question"),
    ({"question": True}, "question"),
    ({"question": "When?", "top_k": "5"}, "top_k"),
    ({"question": "When?", "top_k": 1e9}, "top_k"),
    ({"question": "When?", "top_k": -1}, "top_k"),
    ({"question": "When?", "history": {"role": "user"}}, "history"),
    ({"question": "When?", "history": [["user", "hi"]]}, "history"),
    ({"question": "When?", "history": [{"role": "root", "content": "hi"}]}, "history"),
    ({"question": "When?", "llm": "nope"}, "llm: unknown field"),
    ({"question": "When?", "backend": "openai:gpt-4"}, "backend: unknown field"),
    ({"question": "When?", "topk": 3}, "topk: unknown field"),
])
def test_wrong_types_and_unknown_fields_are_422(url, path, body, reason):
    assert_refused(httpx.post(f"{url}{path}", json=body, timeout=30), 422, reason)


@pytest.mark.parametrize("body,reason", [
    ({"model": "grounded-rag", "messages": "hi"}, "messages"),
    ({"model": "grounded-rag", "messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"model": 5, "messages": [{"role": "user", "content": QUESTION}]}, "model"),
    ({"model": "grounded-rag", "messages": [{"role": "user", "content": QUESTION}], "stream": "maybe"}, "stream"),
    ({"model": "grounded-rag", "messages": [{"role": "user", "content": QUESTION}], "top_k": 0}, "top_k"),
    ({"model": "grounded-rag", "messages": [{"role": "assistant", "content": "no question"}]}, "user message"),
])
def test_v1_wrong_types_are_422(url, body, reason):
    for stream in (False, True):
        r = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": body.get("stream", stream)}, timeout=30)
        assert_refused(r, 422, reason)


@pytest.mark.parametrize("path", ASK_PATHS)
def test_history_of_10000_turns_is_accepted_and_10001_refused(url, path):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} about nothing"}
             for i in range(10_000)]
    if path.startswith("/v1/"):
        ok = {"messages": turns[:9_999] + [{"role": "user", "content": QUESTION}]}
        too_many = {"messages": turns + [{"role": "user", "content": QUESTION}]}
    else:
        ok = {"question": QUESTION, "history": turns}
        too_many = {"question": QUESTION, "history": turns + turns[:1]}
    r = httpx.post(f"{url}{path}", json=ok, timeout=60)
    assert r.status_code == 200, r.text[:300]
    if path == "/api/ask":
        assert r.json()["citations"] and not r.json()["abstained"]
    assert_refused(httpx.post(f"{url}{path}", json=too_many, timeout=60), 422)


def raw_http(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes as they are over one connection; (status, response bytes)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:  # the request says Connection: close, so the server ends the response with EOF
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_body_size_limit_is_413_before_reading(url):
    # 500 MB announced, 100 bytes sent: refused at once, without waiting for (or reading) the body
    status, data = raw_http(url, b"POST /api/ask HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 524288000\r\n\r\n" + b"x" * 100)
    assert status == 413 and b"larger" in data, data[:300]
    status, data = raw_http(url, b"POST /api/ask HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 12abc\r\n\r\n{}")
    assert 400 <= status < 500, data[:300]
    big = json.dumps({"question": "a" * (9 * 2**20)}).encode()  # over the default 8 MB body limit
    assert_refused(httpx.post(f"{url}/api/ask", content=big, headers={"content-type": "application/json"},
                              timeout=60), 413)


def test_unknown_model_names_are_refused_in_the_openai_shape(url):
    """/v1 answers for the one model /v1/models lists; any other name (odd ones included) is a 404
    whose OpenAI-shaped error names the model on offer, never a 5xx."""
    for model in ("nope", "gpt-4o", "", "../../etc/passwd", "x" * 5000):
        r = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                       json={"model": model, "messages": [{"role": "user", "content": QUESTION}]})
        assert r.status_code == 404, (model[:20], r.text[:200])
        assert "grounded-rag" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                   json={"model": "grounded-rag", "messages": [{"role": "user", "content": QUESTION}]})
    body = r.json()
    assert body["model"] == "grounded-rag" and body["system_fingerprint"] == "extractive"
    assert body["choices"][0]["message"]["citations"]
    assert_refused(httpx.get(f"{url}/v1/models/nope"), 404, "grounded-rag")
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["backend"] == "extractive"


def test_server_survived_everything(server):
    url, recorder = server
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    r = httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=30)
    assert r.status_code == 200 and r.json()["citations"]
    assert not recorder.server_errors, recorder.server_errors[:20]


# ------------------------------------------------------------------ access


def test_key_cors_and_read_only_on_the_real_server(assistant):
    from rag.serve.app import create_app

    with serve_app(create_app(assistant, api_key=KEY, read_only=True)) as url:
        key = {"X-API-Key": KEY}
        assert httpx.get(f"{url}/healthz").status_code == 200  # liveness needs no key
        for method, path, kw in [("POST", "/api/ask", {"json": {"question": QUESTION}}),
                                 ("POST", "/api/ask/stream", {"json": {"question": QUESTION}}),
                                 ("GET", "/api/documents", {}), ("GET", "/v1/models", {}),
                                 ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "q"}]}}),
                                 ("GET", "/", {}), ("GET", "/docs", {}), ("GET", "/openapi.json", {}),
                                 ("GET", "/gradio_api/info", {}), ("GET", "/config", {})]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"}, {"Cookie": "rag_key=x"}):
                r = httpx.request(method, f"{url}{path}", headers=headers, timeout=30, **kw)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert "API key" in r.json()["detail"]
        assert httpx.post(f"{url}/api/ask", json={"question": QUESTION}, headers=key, timeout=30).status_code == 200
        assert httpx.get(f"{url}/", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).status_code == 200

        # CORS closed: a cross-origin preflight and request get no Access-Control-* header
        origin = {"Origin": "http://evil.example", **key}
        for r in (httpx.options(f"{url}/api/ask", headers={**origin, "Access-Control-Request-Method": "POST",
                                                           "Access-Control-Request-Headers": "content-type,x-api-key"}),
                  httpx.options(f"{url}/v1/chat/completions", headers={**origin, "Access-Control-Request-Method": "POST"}),
                  httpx.options(f"{url}/", headers={**origin, "Access-Control-Request-Method": "GET"}),
                  httpx.post(f"{url}/api/ask", json={"question": QUESTION}, headers=origin, timeout=30),
                  httpx.get(f"{url}/", headers=origin)):
            assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)

        # read-only: no upload, no delete (even with the key); reading still works
        seed = httpx.get(f"{url}/api/documents", headers=key).json()["documents"][0]["doc_id"]
        r = httpx.post(f"{url}/api/documents", files={"file": ("a.txt", b"hello there")}, headers=key)
        assert_refused(r, 403, "read-only")
        assert_refused(httpx.delete(f"{url}/api/documents/{seed}", headers=key), 403, "read-only")
        assert httpx.get(f"{url}/api/documents/{seed}", headers=key).status_code == 200


def test_serve_binds_loopback_by_default(monkeypatch, tmp_path):
    """`rag serve --help` shows 127.0.0.1 as the default, run() defaults to it, and a bare
    `rag serve` serves on a socket bound to 127.0.0.1 (uvicorn.Server.run is replaced to capture it)."""
    import uvicorn
    from click.testing import CliRunner

    import rag.serve.app
    from conftest import ROOT
    from rag.cli import cli

    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert re.search(r"--host\s+TEXT.*\[default:\s*127\.0\.0\.1\]", " ".join(help_text.split())), help_text
    assert inspect.signature(rag.serve.app.run).parameters["host"].default == "127.0.0.1"

    captured = {}

    def fake_run(server, sockets=None):
        captured["host"], captured["port"] = sockets[0].getsockname()[:2]

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.chdir(ROOT)  # `rag serve` indexes seeds/ (relative to the working directory) when empty
    for var in ("RAG_API_KEY", "RAG_CHROMA_URL", "RAG_LLM", "RAG_READ_ONLY", "RAG_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "serve", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert captured["host"] == "127.0.0.1" and captured["port"] == 7999, captured
    assert os.environ.get("RAG_API_KEY") is None
