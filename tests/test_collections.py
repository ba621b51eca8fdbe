"""Collections and scopes: every question can be limited to a collection or to documents, the limit
holds inside both retrieval signals and again on the answer, and API keys limited to collections
see nothing else on any route (404, as if it did not exist)."""

from __future__ import annotations

import json

import pytest

from conftest import empty_assistant
from fastapi.testclient import TestClient

from pdf_builders import report_pdf

# Two collections whose documents share most of their words: a scope leak would show.
ALPHA = ("Harbour committee minutes, alpha\n\nThe harbour committee approved a budget of 4 million euros for "
         "the Varnholm bridge. The harbour committee chair is Ines Duarte.\n")
BETA = ("Harbour committee minutes, beta\n\nThe harbour committee approved a budget of 9 million euros for "
        "the Quillbridge schools. The harbour committee chair is Marco Bellini.\n")
GAMMA = ("Harbour committee minutes, gamma\n\nThe harbour committee approved a budget of 2 million euros for "
         "the Ostravik ferry. The harbour committee chair is Lena Holm.\n")
QUESTION = "What budget did the harbour committee approve?"
FULL_KEY, ALPHA_KEY, BETA_RO_KEY = "full-key-0001", "alpha-key-0001", "beta-ro-key-01"


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from rag.assistant import Assistant
    from rag.config import Config

    root = tmp_path_factory.mktemp("collections")
    assistant = Assistant.open(Config(data_dir=root / "data", chroma_url=None, collection="documents",
                                      llm="extractive", api_key=None))
    for name, text, collection in (("alpha.txt", ALPHA, "alpha"), ("beta.txt", BETA, "beta"),
                                   ("gamma.txt", GAMMA, "gamma")):
        folder = root / collection
        folder.mkdir()
        (folder / name).write_text(text)
        assert _ingest(assistant, folder, collection).added
    (root / "alpha" / "digest.pdf").write_bytes(report_pdf(two_columns=False, table=False))
    added = _ingest(assistant, root / "alpha", "alpha").added
    assert len(added) == 1 and added[0].endswith("digest.pdf")
    return assistant


def _ingest(assistant, folder, collection):
    from rag.index.ingest import Indexer

    with assistant._write_lock:  # noqa: SLF001  (the CLI's path: rag ingest DIR --collection NAME)
        report = Indexer(assistant.store).ingest_paths([folder], collection=collection)
        assistant._read_your_writes()  # noqa: SLF001
    return report


def ids_by_collection(assistant) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in assistant.documents():
        out.setdefault(r.collection, set()).add(r.doc_id)
    return out


def test_records_know_their_collection(assistant):
    got = ids_by_collection(assistant)
    assert set(got) == {"alpha", "beta", "gamma"} and len(got["alpha"]) == 2
    assert [c["name"] for c in assistant.collections()] == ["alpha", "beta", "gamma"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_retrieval_signal_is_filtered_inside_its_search(assistant, mode):
    from rag.answer.retriever import HybridRetriever

    beta = frozenset(ids_by_collection(assistant)["beta"])
    retriever = HybridRetriever(assistant.store, assistant.embed_model, mode=mode, lexical=assistant.retriever.lexical)
    hits = retriever.search(QUESTION, 5, beta)
    assert hits and {h.node.metadata["doc_id"] for h in hits} <= beta
    assert retriever.search(QUESTION, 5, frozenset()) == []


def test_a_scoped_question_cites_only_its_scope(assistant):
    from rag.index.scope import Scope

    by = ids_by_collection(assistant)
    for collection, euros in (("alpha", "4 million"), ("beta", "9 million"), ("gamma", "2 million")):
        answer = assistant.ask(QUESTION, scope=Scope.of(collection))
        assert answer.citations and {c.doc_id for c in answer.citations} <= by[collection]
        assert euros in answer.answer
    beta_doc = next(iter(by["beta"]))
    answer = assistant.ask("Who is the harbour committee chair?", scope=Scope.of(doc_ids=[beta_doc]))
    assert "Marco Bellini" in answer.answer and {c.doc_id for c in answer.citations} == {beta_doc}


def test_unknown_collection_or_document_is_an_error_not_an_empty_answer(assistant):
    from rag.index.scope import Scope, ScopeError

    with pytest.raises(ScopeError, match="no such collection"):
        assistant.ask(QUESTION, scope=Scope.of("delta"))
    with pytest.raises(ScopeError, match="no such document"):
        assistant.ask(QUESTION, scope=Scope.of(doc_ids=["0000000000000000"]))
    with pytest.raises(ValueError):
        Scope.of("../etc")


def test_the_answer_check_drops_citations_outside_the_scope(assistant):
    """The second lock: even if retrieval let a foreign passage through, the answer leaving the
    Assistant cites nothing outside its scope."""
    by = ids_by_collection(assistant)
    answer = assistant.ask(QUESTION)
    foreign = {c.doc_id for c in answer.citations}
    allowed = frozenset(by["gamma"])
    assert foreign - allowed, "the unscoped answer should cite other collections for this test to mean anything"
    checked = assistant._checked(answer.model_copy(deep=True), allowed)  # noqa: SLF001
    assert checked.abstained and not checked.citations and not checked.claims
    for c in answer.citations:  # nothing of what lay outside: not the quote, not the sentence built on it
        assert c.quote not in checked.answer


def test_move_a_document(tmp_path):
    from rag.index.scope import Scope, ScopeError

    assistant = empty_assistant(tmp_path / "data")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "alpha.txt").write_text(ALPHA)
    _ingest(assistant, tmp_path / "a", "alpha")
    doc_id = assistant.documents()[0].doc_id
    assistant.move_document(doc_id, "archive")
    assert assistant.ask(QUESTION, scope=Scope.of("archive")).citations[0].doc_id == doc_id
    with pytest.raises(ScopeError):
        assistant.ask(QUESTION, scope=Scope.of("alpha"))
    # re-indexing the folder without --collection leaves it where it was moved to
    report = _ingest(assistant, tmp_path / "a", None)
    assert report.unchanged and assistant.documents()[0].collection == "archive"


# ------------------------------------------------------------------ HTTP


@pytest.fixture(scope="module")
def client(assistant):
    from rag.serve.app import create_app
    from rag.serve.keys import load_keys

    keys = load_keys(FULL_KEY, {"RAG_API_KEYS": f"{ALPHA_KEY}=alpha;{BETA_RO_KEY}=beta:ro"})
    with TestClient(create_app(assistant, keys=keys, upload_job_words=10**9)) as c:
        yield c


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_scoped_questions_over_http(client, assistant):
    by = ids_by_collection(assistant)
    got = client.post("/api/ask", json={"question": QUESTION, "collection": "beta"}, headers=h(FULL_KEY))
    assert got.status_code == 200 and {c["doc_id"] for c in got.json()["citations"]} <= by["beta"]
    got = client.post("/api/ask", json={"question": QUESTION, "collection": "nope"}, headers=h(FULL_KEY))
    assert got.status_code == 404 and "no such collection" in got.json()["detail"]
    got = client.post("/api/ask/stream", json={"question": QUESTION, "collection": "gamma"}, headers=h(FULL_KEY))
    assert got.status_code == 200 and "Ostravik" in got.text and "Varnholm" not in got.text
    got = client.get("/api/search", params={"q": QUESTION, "collection": "alpha"}, headers=h(FULL_KEY))
    assert {p["doc_id"] for p in got.json()["passages"]} <= by["alpha"]
    got = client.get("/api/collections", headers=h(FULL_KEY)).json()
    assert [c["name"] for c in got["collections"]] == ["alpha", "beta", "gamma"]
    # the openai form: the collection in the model name, documents as an extra body field
    got = client.post("/v1/chat/completions", headers=h(FULL_KEY), json={
        "model": "grounded-rag/beta", "messages": [{"role": "user", "content": QUESTION}]})
    assert got.status_code == 200 and got.json()["model"] == "grounded-rag/beta"
    assert {c["doc_id"] for c in got.json()["citations"]} <= by["beta"]
    gamma_doc = next(iter(by["gamma"]))
    got = client.post("/v1/chat/completions", headers=h(FULL_KEY), json={
        "model": "grounded-rag", "doc_ids": [gamma_doc], "messages": [{"role": "user", "content": QUESTION}]})
    assert {c["doc_id"] for c in got.json()["citations"]} == {gamma_doc}
    models = {m["id"] for m in client.get("/v1/models", headers=h(FULL_KEY)).json()["data"]}
    assert models == {"grounded-rag", "grounded-rag/alpha", "grounded-rag/beta", "grounded-rag/gamma"}


def test_uploads_into_collections_keep_same_named_files_apart(client, assistant):
    for collection in ("alpha", "beta"):
        got = client.post("/api/documents", params={"collection": collection}, headers=h(FULL_KEY),
                          files={"file": ("shared-name.txt", f"A note filed in {collection} about lanterns.\n")})
        assert got.status_code == 200, got.text
    docs = [d for d in client.get("/api/documents", headers=h(FULL_KEY)).json()["documents"]
            if d["source"].endswith("shared-name.txt")]
    assert sorted(d["collection"] for d in docs) == ["alpha", "beta"]
    for d in docs:
        assert client.delete(f"/api/documents/{d['doc_id']}", headers=h(FULL_KEY)).status_code == 200


def test_a_pdf_over_http_has_pages_and_page_images(client, assistant):
    pdf = next(d for d in client.get("/api/documents", headers=h(FULL_KEY)).json()["documents"] if d["type"] == "PDF")
    assert pdf["pages"] == 3
    answer = client.post("/api/ask", headers=h(FULL_KEY), json={
        "question": "How many subscribers did AOL lose in the fourth quarter?", "collection": "alpha"}).json()
    cite = answer["citations"][0]
    assert cite["page"] == 1 and cite["doc_id"] == pdf["doc_id"]
    url = f"/api/documents/{pdf['doc_id']}/pages/{cite['page']}.png"
    got = client.get(url, params={"start": cite["start"], "end": cite["end"]}, headers=h(FULL_KEY))
    assert got.status_code == 200 and got.headers["content-type"] == "image/png" and got.content[:4] == b"\x89PNG"
    assert client.get(f"/api/documents/{pdf['doc_id']}/pages/9.png", headers=h(FULL_KEY)).status_code == 404
    assert client.get(url, params={"start": 5}, headers=h(FULL_KEY)).status_code == 422
    text_doc = next(d for d in client.get("/api/documents", headers=h(FULL_KEY)).json()["documents"]
                    if d["type"] != "PDF")
    assert client.get(f"/api/documents/{text_doc['doc_id']}/pages/1.png", headers=h(FULL_KEY)).status_code == 404


def test_a_key_limited_to_a_collection_sees_nothing_else_on_any_route(client, assistant):
    by = ids_by_collection(assistant)
    beta_doc, alpha_doc = next(iter(by["beta"])), next(iter(by["alpha"]))
    pdf = next(r for r in assistant.documents() if r.pages)
    key = h(ALPHA_KEY)
    # its own collection works
    assert client.get(f"/api/documents/{alpha_doc}", headers=key).status_code == 200
    assert client.get(f"/api/documents/{pdf.doc_id}/pages/1.png", headers=key).status_code == 200
    listed = client.get("/api/documents", headers=key).json()["documents"]
    assert {d["doc_id"] for d in listed} == by["alpha"]
    assert [c["name"] for c in client.get("/api/collections", headers=key).json()["collections"]] == ["alpha"]
    answer = client.post("/api/ask", json={"question": QUESTION}, headers=key).json()
    assert answer["citations"] and {c["doc_id"] for c in answer["citations"]} <= by["alpha"]
    passages = client.get("/api/search", params={"q": QUESTION}, headers=key).json()["passages"]
    assert {p["doc_id"] for p in passages} <= by["alpha"]
    # another collection does not exist for it, on every route
    not_found = [
        client.get(f"/api/documents/{beta_doc}", headers=key),
        client.get(f"/api/documents/{beta_doc}/pages/1.png", headers=key),
        client.delete(f"/api/documents/{beta_doc}", headers=key),
        client.patch(f"/api/documents/{beta_doc}", json={"collection": "alpha"}, headers=key),
        client.patch(f"/api/documents/{alpha_doc}", json={"collection": "beta"}, headers=key),
        client.post("/api/ask", json={"question": QUESTION, "collection": "beta"}, headers=key),
        client.post("/api/ask", json={"question": QUESTION, "doc_ids": [beta_doc]}, headers=key),
        client.post("/api/ask/stream", json={"question": QUESTION, "collection": "beta"}, headers=key),
        client.get("/api/search", params={"q": QUESTION, "collection": "beta"}, headers=key),
        client.post("/api/documents", params={"collection": "beta"}, headers=key,
                    files={"file": ("x.txt", "A lantern note.\n")}),
        client.post("/v1/chat/completions", headers=key, json={
            "model": "grounded-rag/beta", "messages": [{"role": "user", "content": QUESTION}]}),
        client.post("/v1/chat/completions", headers=key, json={
            "model": "grounded-rag", "doc_ids": [beta_doc], "messages": [{"role": "user", "content": QUESTION}]}),
        client.get("/v1/models/grounded-rag/beta", headers=key),
    ]
    assert [r.status_code for r in not_found] == [404] * len(not_found), [(r.request.url, r.text) for r in not_found]
    assert beta_doc in assistant.store.manifest()  # nothing was deleted or moved
    models = {m["id"] for m in client.get("/v1/models", headers=key).json()["data"]}
    assert models == {"grounded-rag", "grounded-rag/alpha"}
    got = client.post("/v1/chat/completions", headers=key, json={
        "model": "grounded-rag", "messages": [{"role": "user", "content": QUESTION}]}).json()
    assert {c["doc_id"] for c in got["citations"]} <= by["alpha"]
    # a job of another collection is not found either
    job = client.post("/api/documents", params={"collection": "beta", "async": "true"}, headers=h(FULL_KEY),
                      files={"file": ("job.txt", "A lantern note for the job test.\n")})
    assert job.status_code == 202
    assert client.get(f"/api/jobs/{job.json()['job_id']}", headers=key).status_code == 404
    assert client.get(f"/api/jobs/{job.json()['job_id']}", headers=h(FULL_KEY)).status_code == 200
    # limited keys open the API, not the chat UI
    assert client.get("/", headers=key).status_code == 403


def test_a_read_only_key_reads_but_does_not_write(client, assistant):
    by = ids_by_collection(assistant)
    beta_doc = next(iter(by["beta"]))
    key = h(BETA_RO_KEY)
    assert client.get(f"/api/documents/{beta_doc}", headers=key).status_code == 200
    assert client.post("/api/ask", json={"question": QUESTION}, headers=key).status_code == 200
    assert client.delete(f"/api/documents/{beta_doc}", headers=key).status_code == 403
    assert client.post("/api/documents", headers=key, files={"file": ("x.txt", "A note.\n")}).status_code == 403
    assert client.get("/api/documents", headers={"Authorization": "Bearer wrong-key-000"}).status_code == 401


def test_key_spec_errors_are_clear():
    from rag.serve.keys import KeySpecError, parse_spec

    assert parse_spec("k-12345678=a,b;k-87654321=*:ro")["k-87654321"].write is False
    for bad in ("short=a", "k-12345678", "k-12345678=a:rx", "k-12345678=../x"):
        with pytest.raises(KeySpecError):
            parse_spec(bad)


def test_an_upload_never_replaces_or_moves_a_document_of_another_collection(client, assistant):
    """A document moved to another collection keeps its upload name; uploading that name again (by any
    key) is a 409 that names neither the collection nor the document, and nothing moves."""
    got = client.post("/api/documents", params={"collection": "alpha"}, headers=h(FULL_KEY),
                      files={"file": ("movable.txt", "A lantern note that will move.\n")})
    doc_id = got.json()["doc_id"]
    assert client.patch(f"/api/documents/{doc_id}", json={"collection": "beta"}, headers=h(FULL_KEY)).status_code == 200
    for key, content, replace in ((ALPHA_KEY, "A lantern note that will move.\n", False),
                                  (ALPHA_KEY, "Other words entirely.\n", True),
                                  (FULL_KEY, "A lantern note that will move.\n", False)):
        got = client.post("/api/documents", params={"collection": "alpha", "replace": str(replace).lower()},
                          headers=h(key), files={"file": ("movable.txt", content)})
        assert got.status_code == 409 and "moved to another collection" in got.json()["detail"]
        assert "beta" not in got.json()["detail"] and doc_id not in got.json()["detail"]
    record = assistant.store.document(doc_id)
    assert record.collection == "beta" and "will move" in record.text
    assert client.delete(f"/api/documents/{doc_id}", headers=h(FULL_KEY)).status_code == 200


def test_a_malformed_keys_file_stops_the_server_instead_of_granting_more(tmp_path):
    from rag.serve.keys import KeySpecError, load_keys

    for bad in ({"k-12345678": ["alpha"]}, {"k-12345678": {"collections": "alpha"}},
                {"k-12345678": {"collections": ["alpha"], "write": "false"}}, {"": {"collections": "*"}}):
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(KeySpecError):
            load_keys(None, {"RAG_API_KEYS_FILE": str(path)})
    path.write_text(json.dumps({"k-12345678": {"collections": ["alpha"]}}))
    grant = load_keys(None, {"RAG_API_KEYS_FILE": str(path)})["k-12345678"]
    assert grant.collections == {"alpha"} and grant.write is False
