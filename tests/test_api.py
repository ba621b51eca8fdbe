"""The HTTP API over FastAPI's TestClient: every route, its errors, access control,
and the quote invariant on what leaves the server."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from conftest import SEED_ARTICLE, seeded_assistant

SEED_QUESTIONS = ["What did Zelenskyy say about Crimea?", "When was the NATO summit?",
                  "What does Putin consider a red line?", "What would a ceasefire require?"]
KEY = "s3cret-key"
NEW_DOC = ("Harbour Lights festival report\n\n"
           "The Harbour Lights festival in Tallinn drew 40,000 visitors in its first weekend, organisers said. "
           "The lantern parade was moved to the old harbour because of strong winds.\n")


def sse_events(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        events.append((fields.get("event", "message"), fields.get("data", "")))
    return events


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    return seeded_assistant(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(assistant):
    from rag.serve.app import create_app

    with TestClient(create_app(assistant, max_upload_bytes=64 * 1024, max_body_bytes=2 * 2**20)) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(assistant):
    from rag.serve.app import create_app

    with TestClient(create_app(assistant, api_key=KEY)) as c:
        yield c


@pytest.fixture(scope="module")
def readonly(assistant):
    from rag.serve.app import create_app

    with TestClient(create_app(assistant, read_only=True, ui=False)) as c:
        yield c


def check_invariant(client, answer: dict) -> None:
    texts = {}
    for c in answer["citations"]:
        if c["doc_id"] not in texts:
            r = client.get(f"/api/documents/{c['doc_id']}")
            assert r.status_code == 200, r.text
            texts[c["doc_id"]] = r.json()["text"]
        assert texts[c["doc_id"]][c["start"]:c["end"]] == c["quote"]
        assert f"[{c['id']}]" in answer["answer"]


# ------------------------------------------------------------------ health, docs, UI


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "documents": 1, "chunks": r.json()["chunks"], "backend": "extractive",
                        "read_only": False}
    assert r.json()["chunks"] >= 1


def test_openapi_and_docs_are_local(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/ask", "/api/ask/stream", "/api/documents", "/api/documents/{doc_id}",
                 "/v1/chat/completions", "/v1/models", "/healthz"):
        assert path in spec["paths"], path
    assert "AskRequest" in spec["components"]["schemas"] and "Answer" in spec["components"]["schemas"]
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "cdn" not in page.text and "https://" not in page.text  # assets are served by this server
    for asset in ("/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"):
        if asset in page.text:
            assert client.get(asset).status_code == 200


def test_docs_without_offline_swagger_assets_stay_local(assistant, monkeypatch):
    import rag.serve.app

    monkeypatch.setattr(rag.serve.app, "_offline_docs_dir", lambda: None)
    with TestClient(rag.serve.app.create_app(assistant, ui=False)) as c:
        page = c.get("/docs")
    assert page.status_code == 200 and "/api/ask" in page.text
    assert "https://" not in page.text and "<script" not in page.text


def test_ui_is_mounted_at_root_and_api_routes_win(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert client.get("/healthz").headers["content-type"].startswith("application/json")


# ------------------------------------------------------------------ /api/ask


@pytest.mark.parametrize("question", SEED_QUESTIONS)
def test_ask_answers_with_verified_quotes(client, question):
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) >= {"answer", "abstained", "citations", "backend", "timings_ms"}
    assert answer["backend"] == "extractive"
    check_invariant(client, answer)


def test_ask_seed_question_cites_the_seed_article(client):
    answer = client.post("/api/ask", json={"question": "What did Zelenskyy say about Crimea?", "top_k": 3}).json()
    assert not answer["abstained"] and answer["citations"]
    assert "Crimea" in answer["answer"]
    article = SEED_ARTICLE.read_text(encoding="utf-8")
    assert all(c["quote"] in article for c in answer["citations"])


def test_ask_with_history(client):
    history = [{"role": "user", "content": "What did Zelenskyy say about NATO?"},
               {"role": "assistant", "content": "He wants territory under the NATO umbrella. [1]"},
               {"role": "system", "content": "ignored"}]
    r = client.post("/api/ask", json={"question": "And what about Crimea?", "history": history})
    assert r.status_code == 200, r.text
    check_invariant(client, r.json())


def test_long_history_is_accepted_and_trimmed(client):
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(10_000)]
    r = client.post("/api/ask", json={"question": "When was the NATO summit?", "history": history})
    assert r.status_code == 200, r.text
    r = client.post("/api/ask", json={"question": "When was the NATO summit?", "history": history + history[:1]})
    assert r.status_code == 422 and "history" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    {"question": ""},
    {"question": "   \n "},
    {"question": "x" * 2001},
    {"question": "nul\x00byte"},
    {"question": 42},
    {"question": None},
    {"question": ["What?"]},
    {},
    {"question": "When?", "top_k": 0},
    {"question": "When?", "top_k": 51},
    {"question": "When?", "top_k": "3"},
    {"question": "When?", "top_k": 2.5},
    {"question": "When?", "history": "not a list"},
    {"question": "When?", "history": [{"role": "wizard", "content": "hi"}]},
    {"question": "When?", "history": [{"role": "user"}]},
    {"question": "When?", "history": [{"role": "user", "content": 5}]},
    {"question": "When?", "mode": "fast"},
    {"question": "When?", "mode": "model"},  # no model is configured on this server
    [1, 2, 3],
    "just a string",
])
def test_ask_rejects_bad_input_with_422(client, body):
    r = client.post("/api/ask", json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_quick_mode_is_the_extractive_answer(client):
    r = client.post("/api/ask", json={"question": "When was NATO's summit?", "mode": "quick"})
    assert r.status_code == 200 and r.json()["backend"] == "extractive" and r.json()["citations"]
    r = client.post("/api/ask", json={"question": "When?", "mode": "model"})
    assert r.status_code == 422 and "needs an answer model" in r.json()["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00", b'{"question": "x"', b"null"])
def test_ask_rejects_invalid_json(client, raw):
    r = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text  # 400: bytes that are not text at all
    assert isinstance(r.json()["detail"], str)


def test_oversized_body_is_413(client):
    r = client.post("/api/ask", content=b'{"question": "' + b"a" * (3 * 2**20) + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger" in r.json()["detail"]


def test_oversized_chunked_body_is_413(client):
    def chunks():
        yield b'{"question": "'
        for _ in range(40):
            yield b"a" * 100_000
        yield b'"}'

    r = client.post("/api/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_routes_and_methods(client):
    r = client.get("/api/nope")
    assert r.status_code == 404 and r.json()["detail"]
    r = client.get("/api/ask")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    r = client.put("/api/documents/abc")
    assert r.status_code == 405
    assert client.get("/v1/nothing").status_code == 404


# ------------------------------------------------------------------ /api/ask/stream


def test_stream_sends_sources_then_deltas_then_answer_then_done(client):
    with client.stream("POST", "/api/ask/stream", json={"question": "When was the NATO summit?"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["answer", "done"] and kinds.count("answer") == 1
    assert kinds[0] == "sources" and kinds[1] == "delta" and set(kinds[1:-2]) == {"delta"}
    sources = json.loads(events[0][1])
    assert sources["question_used"] == "When was the NATO summit?"
    assert sources["sources"][0]["source"].endswith(SEED_ARTICLE.name) and sources["sources"][0]["title"]
    answer = json.loads(events[-2][1])
    assert "".join(json.loads(d)["text"] for k, d in events if k == "delta") == answer["answer"]
    assert answer["citations"]
    check_invariant(client, answer)


def test_stream_refuses_bad_question_before_streaming(client):
    r = client.post("/api/ask/stream", json={"question": " "})
    assert r.status_code == 422 and r.json()["detail"] == "question is empty"
    assert client.post("/api/ask/stream", json={"question": 1}).status_code == 422


# ------------------------------------------------------------------ documents


def test_documents_list(client):
    r = client.get("/api/documents")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == len(body["documents"]) >= 1
    seed = next(d for d in body["documents"] if d["source"].endswith(SEED_ARTICLE.name))
    assert seed["chunks"] >= 1 and body["chunks"] >= seed["chunks"]
    doc = client.get(f"/api/documents/{seed['doc_id']}").json()
    assert doc["text"] == SEED_ARTICLE.read_text(encoding="utf-8").replace("\r\n", "\n")


def test_upload_ask_delete_roundtrip(client, tmp_path):
    r = client.post("/api/documents", files={"file": ("../../../etc/harbour lights.txt", NEW_DOC.encode(), "text/plain")})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["filename"] == "harbour lights.txt" and report["added"] == ["upload:harbour lights.txt"]
    assert report["chunks"] >= 1 and report["failed"] == []
    doc_id = report["doc_id"]
    listed = {d["doc_id"]: d for d in client.get("/api/documents").json()["documents"]}
    assert listed[doc_id]["source"] == "upload:harbour lights.txt" and listed[doc_id]["chunks"] >= 1
    assert client.get("/healthz").json()["documents"] == 2

    answer = client.post("/api/ask", json={"question": "How many visitors did the Harbour Lights festival draw?"}).json()
    assert any(c["doc_id"] == doc_id for c in answer["citations"]), answer
    check_invariant(client, answer)

    again = client.post("/api/documents", files={"file": ("harbour lights.txt", NEW_DOC.encode())}).json()
    assert again["unchanged"] == ["upload:harbour lights.txt"]

    r = client.delete(f"/api/documents/{doc_id}")
    assert r.status_code == 200 and r.json()["deleted"]["doc_id"] == doc_id
    assert client.delete(f"/api/documents/{doc_id}").status_code == 404
    assert client.get(f"/api/documents/{doc_id}").status_code == 404
    assert doc_id not in {d["doc_id"] for d in client.get("/api/documents").json()["documents"]}


def test_upload_never_writes_its_name_to_disk(client, assistant, tmp_path):
    data_dir = assistant.config.data_dir
    before = {p for p in data_dir.rglob("*")}
    client.post("/api/documents", files={"file": ("../escape-attempt.txt", b"Some text about escaping paths.\n")})
    after = {p for p in data_dir.rglob("*")}
    assert not any("escape-attempt" in p.name for p in after - before)
    assert not list(data_dir.parent.glob("escape-attempt*"))
    doc_id = next(d["doc_id"] for d in client.get("/api/documents").json()["documents"]
                  if d["source"] == "upload:escape-attempt.txt")
    assert client.delete(f"/api/documents/{doc_id}").status_code == 200


@pytest.mark.parametrize("name,data,status", [
    ("malware.exe", b"MZ\x90\x00", 415),
    ("noextension", b"hello", 415),
    ("empty.txt", b"", 422),
    ("blank.md", b"   \n\n", 422),
    ("binary.txt", b"\x00\x01\x02\x03" * 100, 422),
    ("fake.pdf", b"this is not a pdf", 422),
    ("fake.docx", b"not a zip", 422),
    ("broken.pdf", b"%PDF-1.4 garbage garbage", 422),
    ("...", b"hello", 422),
])
def test_unreadable_or_unsupported_uploads(client, name, data, status):
    r = client.post("/api/documents", files={"file": (name, data)})
    assert r.status_code == status, (name, r.status_code, r.text)
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_upload_size_limit_and_missing_file(client):
    r = client.post("/api/documents", files={"file": ("big.txt", b"word " * 20_000)})  # 100 KB > 64 KB limit
    assert r.status_code == 413
    assert client.post("/api/documents", data={"nofile": "x"}).status_code == 422
    assert client.post("/api/documents", json={"file": "x"}).status_code == 422


def test_delete_unknown_document_is_404(client):
    r = client.delete("/api/documents/0123456789abcdef")
    assert r.status_code == 404 and "0123456789abcdef" in r.json()["detail"]


# ------------------------------------------------------------------ /v1 (OpenAI-compatible)


def test_v1_models(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and body["data"][0]["id"] == "grounded-rag"
    assert body["data"][0]["backend"] == "extractive"
    assert client.get("/v1/models/grounded-rag").status_code == 200
    assert client.get("/v1/models/gpt-4").status_code == 404


def test_v1_chat_completion(client):
    r = client.post("/v1/chat/completions", json={"model": "grounded-rag", "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "What did Zelenskyy say about Crimea?"}]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and "Crimea" in message["content"]
    assert message["citations"] and message["citations"] == body["citations"]
    assert message["grounded_answer"]["answer"] == message["content"]
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"] is None  # no model wrote it
    check_invariant(client, message["grounded_answer"])


def test_v1_chat_completion_stream(client):
    req = {"messages": [{"role": "user", "content": "When was the NATO summit?"}], "stream": True,
           "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=req) as r:
        assert r.status_code == 200
        lines = [line[6:] for line in r.read().decode().split("\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop"]
    assert len(final) == 1
    assert final[0]["citations"] and final[0]["choices"][0]["delta"]["citations"] == final[0]["citations"]
    assert final[0]["grounded_answer"]["answer"] == text
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] is None  # the usage chunk: no model ran
    check_invariant(client, final[0]["grounded_answer"])


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": [{"role": "system", "content": "no question here"}]},
    {"messages": [{"role": "user", "content": ""}]},
    {"messages": [{"role": "alien", "content": "hi"}]},
    {"messages": "hello"},
    {},
])
def test_v1_bad_requests(client, body):
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"] == r.json()["detail"]


# ------------------------------------------------------------------ access control


def test_api_key_required_everywhere_but_healthz(keyed):
    assert keyed.get("/healthz").status_code == 200
    for method, path, kw in [("post", "/api/ask", {"json": {"question": "When?"}}), ("get", "/api/documents", {}),
                             ("post", "/api/ask/stream", {"json": {"question": "When?"}}),
                             ("delete", "/api/documents/x", {}), ("get", "/v1/models", {}),
                             ("post", "/v1/chat/completions", {"json": {"messages": []}}),
                             ("get", "/", {}), ("get", "/docs", {}), ("get", "/openapi.json", {}),
                             ("get", "/config", {}), ("get", "/gradio_api/info", {})]:
        r = getattr(keyed, method)(path, **kw)
        assert r.status_code == 401, (path, r.status_code)
        assert "API key" in r.json()["detail"]
        r = getattr(keyed, method)(path, headers={"Authorization": "Bearer wrong"}, **kw)
        assert r.status_code == 401, path


def test_api_key_accepted_as_bearer_or_header(keyed):
    q = {"question": "When was the NATO summit?"}
    assert keyed.post("/api/ask", json=q, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.post("/api/ask", json=q, headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/api/ask?key=" + KEY).status_code == 401  # keys in URLs only open the UI


def test_ui_key_in_url_sets_cookie_once(assistant):
    from rag.serve.app import create_app

    with TestClient(create_app(assistant, api_key=KEY), follow_redirects=False) as browser:
        assert browser.get("/?key=wrong").status_code == 401
        r = browser.get(f"/?key={KEY}&x=1")
        assert r.status_code == 303 and r.headers["location"] == "/?x=1"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and KEY not in cookie
        assert browser.get("/").status_code == 200  # the cookie now opens the UI and the docs
        assert browser.get("/docs").status_code == 200
        assert browser.get("/api/documents").status_code == 401  # but never the API


def test_a_browser_without_the_key_gets_a_page_that_asks_for_it(assistant):
    from rag.serve.app import create_app

    html = {"Accept": "text/html,application/xhtml+xml"}
    with TestClient(create_app(assistant, api_key=KEY), follow_redirects=False) as browser:
        page = browser.get("/", headers=html)
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert '<form method="get" action="/">' in page.text and 'name="key"' in page.text
        assert "not right" not in page.text and KEY not in page.text
        wrong = browser.get("/?key=nope", headers=html)
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert browser.get(f"/?key={KEY}", headers=html).status_code == 303  # the form's GET opens the UI
        assert browser.get("/api/documents", headers=html).headers["content-type"].startswith("application/json")


def test_read_only_forbids_writes(readonly):
    r = readonly.post("/api/documents", files={"file": ("a.txt", b"hello there")})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    assert readonly.delete("/api/documents/anything").status_code == 403
    assert readonly.get("/api/documents").status_code == 200
    assert readonly.post("/api/ask", json={"question": "When was the NATO summit?"}).status_code == 200
    assert readonly.get("/healthz").json()["read_only"] is True


def test_no_cors_headers(client):
    origin = {"Origin": "http://evil.example"}
    for r in (client.post("/api/ask", json={"question": "When was the NATO summit?"}, headers=origin),
              client.get("/", headers=origin), client.get("/config", headers=origin),
              client.options("/api/ask", headers={**origin, "Access-Control-Request-Method": "POST"}),
              client.options("/gradio_api/info", headers={**origin, "Access-Control-Request-Method": "GET"})):
        assert not any(h.lower().startswith("access-control-") for h in r.headers), dict(r.headers)


def test_junk_never_causes_a_server_error(client):
    junk = [b"", b"{}", b"[]", b"null", b"0", b'{"question": {"a": 1}}', b'{"messages": [null]}',
            b'{"question": "\\ud800"}', "{\"question\": \"\u202e\u0000\"}".encode(), b"\x00" * 10]
    paths = ["/api/ask", "/api/ask/stream", "/api/documents", "/v1/chat/completions"]
    for path in paths:
        for body in junk:
            for ctype in ("application/json", "text/plain", "multipart/form-data; boundary=x"):
                r = client.post(path, content=body, headers={"content-type": ctype})
                assert 400 <= r.status_code < 500, (path, body, ctype, r.status_code, r.text[:200])


# ------------------------------------------------------------------ what is known streams at once; system messages


@pytest.fixture
def with_canned_model(assistant):
    """The module's assistant answering with a canned 'model' (the real Generator and checks)."""
    from test_generative import UMBRELLA, claims, with_model

    model = with_model(assistant, claims((UMBRELLA, "A ceasefire needs NATO protection.")))
    yield model.generator.llm
    assistant.generator = None


def test_v1_stream_opens_with_the_role_and_the_documents_being_read(client):
    req = {"messages": [{"role": "user", "content": "When was the NATO summit?"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=req) as r:
        chunks = [json.loads(line[6:]) for line in r.read().decode().split("\n")
                  if line.startswith("data: ") and line != "data: [DONE]"]
    first = chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # content stays the answer
    assert [s["source"] for s in first["sources"]] and first["sources"][0]["title"]
    assert first["sources"][0]["source"].endswith(SEED_ARTICLE.name)


def test_model_stream_sends_sources_then_verified_claims(client, with_canned_model):
    with client.stream("POST", "/api/ask/stream", json={"question": "What did Zelenskyy say about a ceasefire?"}) as r:
        events = sse_events(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds == ["sources", "delta", "claim", "answer", "done"], kinds
    claim = json.loads(events[2][1])
    assert claim["text"].startswith("A ceasefire needs NATO protection.")
    check_invariant(client, json.loads(events[3][1]))


def test_a_cancelled_model_stream_ends_without_an_answer(assistant, with_canned_model):
    import threading

    from rag.models import Answer, SourcesEvent

    cancel = threading.Event()
    items = []
    for item in assistant.stream("What did Zelenskyy say about a ceasefire?", sources=True, cancel=cancel):
        items.append(item)
        cancel.set()  # Stop pressed once the documents are shown
    assert len(items) == 1 and isinstance(items[0], SourcesEvent)
    assert not any(isinstance(i, Answer) for i in items)


GENERIC = "You are a helpful assistant."


def test_v1_system_message_is_refused_for_a_quick_answer_except_a_generic_default(client):
    ask = [{"role": "user", "content": "When was the NATO summit?"}]
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "Answer in French."},
                                                                   *ask], "stream": stream})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "system_message_unsupported" and err["type"] == "invalid_request_error"
        assert "system message" in err["message"]
    for default in (GENERIC, "You are a helpful AI assistant", "you are helpful."):
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": default}, *ask]})
        assert r.status_code == 200, (default, r.text)
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "developer", "content": "Be brief."}, *ask]})
    assert r.status_code == 400


def test_v1_system_message_reaches_the_model_and_its_claims_are_still_checked(client, with_canned_model):
    llm = with_canned_model
    llm.prompts.clear()
    body = {"messages": [{"role": "system", "content": "Answer in French."},
                         {"role": "user", "content": "What did Zelenskyy say about a ceasefire?"}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    answer_prompt = llm.prompts[0]
    assert "Answer in French." in answer_prompt
    assert answer_prompt.index("Answer in French.") > answer_prompt.index("Question:")  # after the documents
    message = r.json()["choices"][0]["message"]
    assert message["citations"] and "NATO protection" in message["content"]
    check_invariant(client, message["grounded_answer"])
    llm.prompts.clear()
    r = client.post("/v1/chat/completions", json={**body, "messages": [{"role": "system", "content": GENERIC},
                                                                       body["messages"][1]]})
    assert r.status_code == 200 and GENERIC not in llm.prompts[0]  # a generic default is not passed on
    r = client.post("/v1/chat/completions", json={**body, "mode": "quick"})
    assert r.status_code == 400  # quick mode asked for: no model to follow it


# ------------------------------------------------------------------ the document list


def test_documents_list_type_size_and_date(client):
    data = NEW_DOC.encode()
    r = client.post("/api/documents", files={"file": ("harbour-notes.md", data)})
    assert r.status_code == 200, r.text
    docs = {d["doc_id"]: d for d in client.get("/api/documents").json()["documents"]}
    mine = docs[r.json()["doc_id"]]
    assert mine["type"] == "Markdown" and mine["size"] == len(data)
    assert mine["indexed_at"].endswith("Z") and mine["indexed_at"][:2] == "20"
    seed = next(d for d in docs.values() if d["source"].endswith(SEED_ARTICLE.name))
    assert seed["type"] == "Text" and seed["size"] == SEED_ARTICLE.stat().st_size
    client.delete(f"/api/documents/{r.json()['doc_id']}")
