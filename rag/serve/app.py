"""The HTTP API and the chat UI in one FastAPI app: ``create_app(assistant)``.

Routes (OpenAPI at ``/docs``):

* ``POST /api/ask`` -> Answer; ``POST /api/ask/stream`` -> server-sent events
  (``sources`` first, then ``delta`` {"text"} ..., then ``answer`` (the Answer), then ``done``;
  ``error`` {"detail"}).
* ``GET /api/search?q=...&top_k=5``: the best passages with scores and offsets, no answer.
* ``GET/POST /api/documents``, ``GET/DELETE /api/documents/{doc_id}`` (GET gives the full text);
  a long upload is a job (202): ``GET /api/jobs/{job_id}`` (``rag.serve.jobs``).
* ``POST /v1/chat/completions``, ``GET /v1/models`` (OpenAI-compatible, ``rag.serve.openai_compat``).
* ``GET /healthz`` (never needs a key).
* The Gradio chat UI at ``/`` (mounted last, so every route above wins).

Errors are JSON ``{"detail": "reason"}`` with a 4xx status: 401 missing/wrong key,
403 read-only, 404 unknown document or route, 405 wrong method, 413 body too large,
415 unsupported file type, 422 invalid input (unusable question, bad JSON, wrong
types, unreadable file; 400 for a body that cannot even be decoded). Only a fault of the server itself (e.g. the Chroma server
being down) gives a 5xx: 503 with a JSON detail.

Access: with an API key (``RAG_API_KEY`` / ``--api-key``) every route except
``/healthz`` needs ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. A browser
opens the UI once as ``/?key=KEY``: the server answers with a redirect that sets an
HttpOnly, SameSite=Strict cookie (holding a hash of the key, not the key) and
drops the key from the address. The cookie opens the UI, ``/docs`` and
``/openapi.json``, never ``/api`` or ``/v1`` (those need the header, so a
cross-site page cannot ride on the cookie). No CORS headers are sent on any route
(Gradio's own are removed too): browsers on other origins cannot read responses.

Limits: question <= 2000 characters; ``history`` accepts up to 10,000 turns and
only the last 50 are used (more than 10,000 -> 422); unknown fields in an ``/api/ask``
body -> 422 (``/v1`` accepts and ignores OpenAI options and any ``model`` name);
JSON bodies <= ``RAG_MAX_BODY_MB`` (default 8); uploads <= ``RAG_MAX_UPLOAD_MB``
(default 20). Uploaded bytes are parsed in memory and indexed into the data
directory's store; no file is written under the uploaded name anywhere (Starlette
spools a multipart part over 1 MB to an anonymous temporary file while the request
runs and removes it afterwards). A successful upload or delete rebuilds the lexical
index before it returns, so the next question sees the change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import re
import threading
import time
import unicodedata
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, AsyncIterator, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.llm.backends import BackendUnavailable
from rag.models import Answer, ClaimEvent, SourcesEvent, Turn, file_type
from rag.serve.errors import APIError
from rag.serve.keys import FULL, Grant, grant_of, load_keys
from rag.index.scope import Scope, ScopeError, check_name
from rag.serve.jobs import JobInfo, Jobs
from rag.serve.streaming import BatchedNext

log = logging.getLogger("rag.serve.app")

MAX_UPLOAD_BYTES = int(float(os.environ.get("RAG_MAX_UPLOAD_MB", "20")) * 1024 * 1024)
MAX_BODY_BYTES = int(float(os.environ.get("RAG_MAX_BODY_MB", "8")) * 1024 * 1024)
UPLOAD_JOB_WORDS = int(os.environ.get("RAG_UPLOAD_JOB_WORDS", "20000"))  # longer texts are indexed as a job
MAX_HISTORY_ACCEPTED = 10_000
KEY_COOKIE = "rag_key"
KEY_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Grounded document chat: key needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1f2937}
input{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;margin:.5rem 0}
button{font-size:1rem;padding:.5rem 1rem}.wrong{color:#b91c1c}</style></head>
<body><h1>Grounded document chat</h1><p>This server needs its API key (the one it was started with,
<code>RAG_API_KEY</code>). Your browser keeps it in a cookie for this site only.</p>{note}
<form method="get" action="/"><label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open the chat</button></form></body></html>"""
DOCS_STATIC = "/docs-static"


# ------------------------------------------------------------------ models


class AskRequest(BaseModel):
    # Unknown fields are refused (422), not silently ignored: a client sending {"llm": ...} or a
    # misspelt "topk" learns that it did not get what it asked for.
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"question": "What did Zelenskyy say about Crimea?", "history": [], "top_k": 6}]})

    question: str = Field(max_length=2000, description="The question (1-2000 characters)")
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_ACCEPTED,
                                description="Earlier turns, oldest first. Up to 10,000 accepted; "
                                            "the last 50 are used; system turns are ignored")
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to answer from (default from config)")
    mode: Literal["quick", "model"] | None = Field(
        None, description="quick: extractive, instant; model: the configured answer model (the default when "
                          "one is configured; 422 when none is)")
    collection: str | None = Field(None, max_length=64, description="Answer only from this document collection "
                                                                     "(404 when there is no such collection)")
    doc_ids: list[str] | None = Field(None, max_length=1000, description="Answer only from these documents "
                                                                       "(with collection: those of them in it)")


class Passage(BaseModel):
    rank: int
    score: float = Field(description="Fused score (0.6 x BM25 / max + 0.4 x cosine)")
    dense_score: float
    bm25_score: float
    doc_id: str
    source: str
    title: str
    start: int = Field(description="document_text[start:end] == text")
    end: int
    text: str


class SearchResult(BaseModel):
    query: str
    passages: list[Passage]


class DocumentInfo(BaseModel):
    doc_id: str
    source: str = Field(description="Path of the file, or upload:NAME for uploads")
    title: str
    chunks: int = Field(description="Number of indexed chunks")
    doc_hash: str = Field(description="sha256 of the document text")
    type: str = Field("", description="The file type, from its name: Text, Markdown, HTML, PDF, Word")
    size: int | None = Field(None, description="Bytes of the file as read or uploaded (None: indexed before sizes "
                                               "were recorded)")
    indexed_at: str | None = Field(None, description="When this version was indexed (ISO 8601, UTC)")
    collection: str = Field("default", description="The document collection it belongs to")
    pages: int | None = Field(None, description="Pages of a PDF (citations carry their page); None for other types")


class DocumentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                            description="The collection to move the document to")


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class DocumentText(DocumentInfo):
    text: str = Field(description="The full indexed text; citations index into it: text[start:end] == quote")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    count: int
    chunks: int = Field(description="Chunks over all documents")


class Failure(BaseModel):
    source: str
    reason: str


class IngestResult(BaseModel):
    doc_id: str | None = Field(None, description="Id of the uploaded document")
    filename: str | None = Field(None, description="The sanitised file name it was indexed under")
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    failed: list[Failure] = Field(default_factory=list)
    pruned: list[str] = Field(default_factory=list)
    moved: list[str] = Field(default_factory=list, description="Unchanged documents put in another collection")
    notes: list[str] = Field(default_factory=list, description="PDF pages read by OCR (with their mean confidence) "
                                                                "and pages that could not be read")
    chunks: int = Field(0, description="Chunks embedded by this request")
    seconds: float = 0.0


class Deleted(BaseModel):
    deleted: DocumentInfo


class Health(BaseModel):
    status: str = "ok"
    documents: int
    chunks: int
    backend: str
    read_only: bool = False


class ErrorBody(BaseModel):
    detail: str


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422)}


def _doc_info(record) -> DocumentInfo:
    from datetime import datetime, timezone

    at = getattr(record, "committed_at", None)
    return DocumentInfo(doc_id=record.doc_id, source=record.source, title=record.title,
                        chunks=record.n_chunks, doc_hash=record.doc_hash, type=file_type(record.source),
                        size=getattr(record, "size", None), collection=record.collection, pages=record.pages,
                        indexed_at=None if at is None else datetime.fromtimestamp(at, timezone.utc)
                        .isoformat(timespec="seconds").replace("+00:00", "Z"))


# ------------------------------------------------------------------ helpers


def safe_filename(name: str | None) -> str:
    """The base name of an uploaded file with path parts, control and shell-special characters
    removed; raises APIError(422) if nothing usable is left."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*\x00').strip()
    name = re.sub(r"\s+", " ", name).lstrip(".").strip()
    if len(name) > 200:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: 200 - len(suffix) - 1] + dot + suffix) if dot and len(suffix) <= 10 else name[:200]
    if not name or name in (".", ".."):
        raise APIError(422, "invalid file name")
    return name


def _sse(event: str, data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n"


def _validation_message(errors) -> str:
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "extra_forbidden":
            hint = (" (the answer backend is chosen when the server starts: rag serve --llm)"
                    if loc in ("llm", "backend", "model") else "")
            parts.append(f"{loc}: unknown field{hint}")
            continue
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _key_digest(key: str) -> str:
    return hashlib.sha256(f"rag-ui-cookie:{key}".encode()).hexdigest()


# ------------------------------------------------------------------ ASGI middleware


class GuardMiddleware:
    """Access key, read-only mode, body size limit and no CORS, for every route.

    Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched.
    """

    def __init__(self, app, api_key: str | None, read_only: bool, max_body: int, max_upload: int,
                 keys: dict[str, Grant] | None = None):
        self.app = app
        self.keys = {k.encode(): g for k, g in (keys if keys is not None else load_keys(api_key, {})).items()}
        self.api_key = bool(self.keys)  # is a key needed at all
        # the UI's cookie holds a hash of a full key (limited keys are for the API only)
        self.cookies = {_key_digest(k.decode()).encode(): g for k, g in self.keys.items() if g.full}
        self.read_only = read_only
        self.max_body = max_body
        self.max_upload = max_upload

    @staticmethod
    async def _reply(send, status: int, detail: str, headers: dict[str, str] | None = None,
                     path: str = "") -> None:
        body = {"detail": detail}
        if path.startswith("/v1/"):
            body["error"] = {"message": detail, "type": "invalid_request_error", "code": status}
        raw = json.dumps(body).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": raw})

    @staticmethod
    async def _key_page(send, wrong: bool) -> None:
        """401 as a page that asks for the key (GET /?key=... then sets the HttpOnly cookie)."""
        note = '<p class="wrong" role="alert">That key is not right. Try again.</p>' if wrong else ""
        raw = KEY_PAGE.replace("{note}", note).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(raw)).encode()),
            (b"www-authenticate", b"Bearer"), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": raw})

    @staticmethod
    def _match(given: bytes, table: dict[bytes, Grant]) -> Grant | None:
        found = None
        for key, grant in table.items():  # every key compared, in constant time each
            if hmac.compare_digest(given, key):
                found = grant
        return found

    def _authorized(self, headers: dict[bytes, bytes], path: str) -> Grant | None:
        """The grant of the key the request carries, or None."""
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and (grant := self._match(auth[7:].strip(), self.keys)):
            return grant
        if (grant := self._match(headers.get(b"x-api-key", b"").strip(), self.keys)) is not None:
            return grant
        if path.startswith(("/api/", "/v1/")) or path in ("/api", "/v1"):
            return None  # the API needs the header: a cookie would let other sites ride on it
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # noqa: BLE001  (a malformed cookie header is just "no cookie")
            return None
        got = cookie.get(KEY_COOKIE)
        return self._match(got.value.encode(), self.cookies) if got else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.api_key:
                headers = dict(scope.get("headers") or [])
                grant = self._authorized(headers, scope.get("path", ""))
                if grant is None or not grant.full:  # the UI's sockets: full keys only, like its pages
                    await send({"type": "websocket.close", "code": 1008})
                    return
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k.lower(), v)

        grant = FULL if not self.api_key or path == "/healthz" else self._authorized(headers, path)
        if grant is None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.pop("key", None)
            api_path = path.startswith(("/api/", "/v1/"))
            given_grant = self._match(given.encode(), self.keys) if given is not None else None
            if given_grant is not None and given_grant.full and not api_path and method in ("GET", "HEAD"):
                location = path + ("?" + urlencode(query) if query else "")
                cookie = f"{KEY_COOKIE}={_key_digest(given)}; Path=/; HttpOnly; SameSite=Strict"
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                        (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            if not api_path and method == "GET" and b"text/html" in headers.get(b"accept", b""):
                await self._key_page(send, wrong=given is not None)  # a person in a browser: ask for the key
                return
            await self._reply(send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                                         "'X-API-Key: KEY' (browsers: open /?key=KEY once)",
                              {"WWW-Authenticate": "Bearer"}, path)
            return

        if self.read_only and method in ("POST", "PUT", "PATCH", "DELETE") and (
                path == "/api/documents" or path.startswith("/api/documents/")):
            await self._reply(send, 403, "the server is read-only: uploading and deleting documents are disabled")
            return
        if not grant.full:
            if not (path.startswith(("/api/", "/v1/")) or path in ("/docs", "/openapi.json")
                    or path.startswith(DOCS_STATIC)):
                await self._reply(send, 403, "this key is limited to some collections: it opens the API "
                                             "(/api, /v1), not the chat UI", path=path)
                return
            if not grant.write and method in ("POST", "PUT", "PATCH", "DELETE") and (
                    path == "/api/documents" or path.startswith("/api/documents/")):
                await self._reply(send, 403, "this key may read, not upload, move or delete documents", path=path)
                return
        scope.setdefault("state", {})["grant"] = grant

        ctype = headers.get(b"content-type", b"").lower()
        limit = self.max_upload + 1024 * 1024 if ctype.startswith(b"multipart/") else self.max_body
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                await self._reply(send, 400, "invalid Content-Length", path=path)
                return
            if too_big:
                await self._reply(send, 413, f"request body is larger than {limit // 2**20} MB", path=path)
                return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body is larger than {limit // 2**20} MB")
            return message

        async def no_cors_send(message):
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if not k.lower().startswith(b"access-control-")]
            await send(message)

        await self.app(scope, limited_receive, no_cors_send)


# ------------------------------------------------------------------ the app


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer RAG_API_KEY (when the server has a key)")
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="RAG_API_KEY (when the server has a key)")


def _documented_auth(_b=Depends(_bearer), _k=Depends(_header_key)) -> None:
    """Declares the two key schemes in OpenAPI; GuardMiddleware does the checking."""


def _offline_docs_dir() -> Path | None:
    """Swagger UI assets shipped by the ``fastapi-offline`` package, if installed."""
    from importlib.util import find_spec

    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def _docs_routes(app: FastAPI) -> None:
    """/docs served from local assets: no page of this server loads anything from outside."""
    from fastapi.openapi.docs import get_swagger_ui_html

    static = _offline_docs_dir()
    if static is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount(DOCS_STATIC, StaticFiles(directory=str(static)), name="docs-static")

        @app.get("/docs", include_in_schema=False)
        async def swagger() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API docs",
                                       swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
                                       swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
                                       swagger_favicon_url=f"{DOCS_STATIC}/favicon.png")
        return

    @app.get("/docs", include_in_schema=False)
    async def plain_docs() -> HTMLResponse:
        # Without local Swagger assets: a self-contained page (no CDN) listing the routes.
        rows = []
        for path, ops in sorted(app.openapi().get("paths", {}).items()):
            for method, op in ops.items():
                rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{path}</code></td>"
                            f"<td>{_html(op.get('summary', ''))}</td></tr>")
        return HTMLResponse(f"<!doctype html><title>{_html(app.title)} - API</title>"
                            f"<h1>{_html(app.title)}</h1><p>OpenAPI schema: <a href='/openapi.json'>/openapi.json</a>"
                            f" (install <code>fastapi-offline</code> for the interactive Swagger UI)</p>"
                            f"<table>{''.join(rows)}</table>")


def _html(text: str) -> str:
    import html

    return html.escape(str(text), quote=True)


def create_app(assistant, *, read_only: bool = False, api_key: str | None = None, ui: bool = True,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES,
               upload_job_words: int = UPLOAD_JOB_WORDS, keys: dict[str, Grant] | None = None) -> FastAPI:
    """The FastAPI app over an open ``Assistant``: API routes, OpenAI-compatible routes, then the UI.
    ``keys``: every accepted key and its grant (default: ``api_key`` plus RAG_API_KEYS/RAG_API_KEYS_FILE)."""
    keys = load_keys(api_key) if keys is None else keys
    from rag.assistant import BadRequest, CollectionClash, DocumentExists
    from rag.index.loaders import SUPPORTED, LoadError
    from rag.index.pdf import pages_to_ocr
    from rag.index.store import Store

    app = FastAPI(
        title="Grounded document chat",
        version="0.1.0",
        summary="Answers whose every claim is a verbatim quote checked against the indexed documents.",
        description=(__doc__ or "").split("\n\n", 1)[1],
        docs_url=None, redoc_url=None,
    )
    app.state.assistant = assistant
    app.state.read_only = read_only
    jobs = app.state.jobs = Jobs()  # large uploads, indexed in the background

    # ---------------------------------------------------------- errors

    def error(request: Request, status: int, detail: str, headers=None, code: str | None = None,
              **extra) -> JSONResponse:
        body = {"detail": detail, **extra}
        if request.url.path.startswith("/v1/"):  # what OpenAI clients read
            body["error"] = {"message": detail, "type": "invalid_request_error", "code": code or status}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return error(request, exc.status, exc.detail, exc.headers, exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        raw = exc.errors()
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in raw]
        for e, r in zip(errors, raw):
            if e["type"] == "json_invalid":
                e["ctx"] = {"error": str((r.get("ctx") or {}).get("error", "decode error"))}
        return error(request, 422, _validation_message(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error(request, exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(BackendUnavailable)
    async def backend_unavailable(request: Request, exc: BackendUnavailable):
        # the answer model is down, slow, or refused us: 503/502 with the reason, never a hang
        return error(request, exc.status, f"answer backend unavailable: {exc}")

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception):
        log.exception("unexpected error")
        return error(request, 503, f"the server could not complete the request ({type(exc).__name__})")

    async def call(fn, *args, **kwargs):
        """A blocking Assistant call in the threadpool, its refusals mapped to 4xx."""
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except BadRequest as exc:
            raise APIError(422, str(exc)) from None
        except ScopeError as exc:
            raise APIError(404, str(exc)) from None

    def asked_scope(collection: str | None, doc_ids: list[str] | None) -> Scope | None:
        try:
            return Scope.of(collection, doc_ids) if collection or doc_ids else None
        except ValueError as exc:
            raise APIError(422, f"collection: {exc}") from None

    def upload_collection(request: Request, collection: str | None) -> str | None:
        """The collection an upload goes to; a key limited to collections must name one of its own
        (or have only one)."""
        if collection is not None:
            try:
                check_name(collection)
            except ValueError as exc:
                raise APIError(422, f"collection: {exc}") from None
        scope = grant_of(request).scope
        if scope is None:
            return collection
        if collection is None and len(scope.collections) == 1:
            return next(iter(scope.collections))
        if collection not in scope.collections:
            raise APIError(404 if collection else 422, f"no such collection: {collection}" if collection else
                           f"this key writes to several collections: name one ({', '.join(sorted(scope.collections))})")
        return collection

    def visible_record(request: Request, doc_id: str, text: bool = False):
        """The document's record (with its full text only when ``text``: a page image, a move or a
        delete needs the metadata alone), or 404 when it does not exist or the key may not read it."""
        if text:
            try:
                record = assistant.store.document(doc_id)
            except Store.DoesNotExist:
                record = None
        else:
            record = next(iter(assistant.store.records([doc_id])), None)
        scope = grant_of(request).scope
        if record is None or (scope is not None and not scope.allows(record)):
            raise APIError(404, f"no document with id {doc_id!r}")
        return record

    # ---------------------------------------------------------- /api

    api = APIRouter(prefix="/api", dependencies=[Depends(_documented_auth)], responses=ERRORS,
                    tags=["Answers and documents"])

    @api.post("/ask", response_model=Answer, summary="Answer a question with verified quotes")
    async def ask(req: AskRequest, request: Request) -> Answer:
        """The Answer object: text with [n] markers and one citation per marker, each an exact
        substring of its document (`document_text[start:end] == quote`)."""
        return await call(assistant.ask, req.question, [t.model_dump() for t in req.history], req.top_k, req.mode,
                          scope=asked_scope(req.collection, req.doc_ids), permission=grant_of(request).scope)

    @api.post("/ask/stream", summary="Answer a question, streamed as server-sent events",
              response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "`event: sources` data {sources: [{doc_id, title, source}], "
                                              "question_used} first, as soon as retrieval is done; then `event: delta` "
                                              "data {\"text\"} (repeated; with a model each verified "
                                              "claim is also an `event: claim` data {text, citation}), then `event: answer` "
                                              "data = Answer, then `event: done`; failures as `event: error` "
                                              "data {\"detail\"}"}})
    async def ask_stream(req: AskRequest, request: Request):
        stream = iter(assistant.stream(req.question, [t.model_dump() for t in req.history], req.top_k, req.mode,
                                       sources=True, scope=asked_scope(req.collection, req.doc_ids),
                                       permission=grant_of(request).scope))
        end = object()
        first = await call(next, stream, end)  # validation errors become a 422 before the stream starts

        async def events() -> AsyncIterator[str]:
            item, pull = first, BatchedNext(stream, end)
            try:
                while item is not end:
                    if isinstance(item, Answer):
                        yield _sse("answer", item.model_dump_json())
                        break
                    if isinstance(item, SourcesEvent):  # the documents being read, before any answer text
                        yield _sse("sources", item.model_dump_json())
                    elif isinstance(item, ClaimEvent):  # a verified claim of a model answer
                        yield _sse("delta", {"text": item.text + " "})
                        yield _sse("claim", item.model_dump_json())
                    else:
                        yield _sse("delta", {"text": item})
                    item = await pull()
            except BadRequest as exc:
                yield _sse("error", {"detail": str(exc)})
            except BackendUnavailable as exc:
                yield _sse("error", {"detail": f"answer backend unavailable: {exc}", "status": exc.status})
            except Exception as exc:  # noqa: BLE001  (headers are sent: report in-band)
                log.exception("stream failed")
                yield _sse("error", {"detail": f"the answer failed ({type(exc).__name__})"})
            yield _sse("done", {})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/search", response_model=SearchResult, summary="The passages that best match a query",
             description="Hybrid retrieval (BM25 + MiniLM), no answer: each passage with its scores and its exact "
                         "offsets in its document.")
    async def search(request: Request, q: str = Query(..., min_length=1, max_length=2000, description="The query"),
                     top_k: int = Query(5, ge=1, le=100),
                     collection: str | None = Query(None, description="Only this document collection"),
                     doc_id: list[str] | None = Query(None, description="Only these documents (repeat the parameter)"),
                     ) -> SearchResult:
        if not q.strip():
            raise APIError(422, "the query is empty")
        allowed = await call(assistant.allowed_docs, asked_scope(collection, doc_id), grant_of(request).scope)
        hits = await call(assistant.retrieve, q, top_k, allowed)
        return SearchResult(query=q, passages=[
            Passage(rank=i + 1, score=round(h.score, 5), dense_score=h.node.metadata["dense_score"],
                    bm25_score=h.node.metadata["bm25_score"], doc_id=h.node.metadata["doc_id"],
                    source=h.node.metadata["source"], title=h.node.metadata["title"], start=h.node.start_char_idx,
                    end=h.node.end_char_idx, text=h.node.text) for i, h in enumerate(hits)])

    @api.get("/documents", response_model=DocumentList, summary="Indexed documents with chunk counts")
    async def list_documents(request: Request, collection: str | None = Query(
            None, description="Only this collection's documents")) -> DocumentList:
        scope = grant_of(request).scope
        docs = [_doc_info(r) for r in await call(assistant.documents)
                if (scope is None or scope.allows(r)) and (collection is None or r.collection == collection)]
        return DocumentList(documents=docs, count=len(docs), chunks=sum(d.chunks for d in docs))

    @api.post("/documents", response_model=IngestResult, summary="Upload and index one file",
              status_code=200, responses={202: {"model": JobInfo, "description": "Indexing as a job: GET its "
                                                                              "status_url for progress and result"}},
              description=f"Multipart field `file`. Supported: {', '.join(sorted(SUPPORTED))}; at most "
                          f"{max_upload_bytes // 2**20} MB (RAG_MAX_UPLOAD_MB). Indexed as source "
                          f"`upload:NAME`. The same file again is `unchanged`; a different file under a name already "
                          f"indexed is refused with 409 unless `replace=true`. 415 for other types, "
                          f"413 when too large, 422 when the file cannot be read (the reason is the detail). "
                          f"A file whose text is over {upload_job_words:,} words (RAG_UPLOAD_JOB_WORDS), or any file "
                          f"with `async=true`, is indexed as a job: 202 with `job_id` and `status_url` "
                          f"(`GET /api/jobs/{{job_id}}`); `async=false` always waits.")
    async def upload_document(request: Request, file: UploadFile = File(..., description="The document"),
                              replace: bool = Query(False, description="Replace a different document of the same "
                                                                       "name (else 409)"),
                              collection: str | None = Query(None, description=(
                                  "The collection to put it in (default: 'default', or the key's only "
                                  "collection)")),
                              run_async: bool | None = Query(None, alias="async", description=(
                                  "true: answer 202 with a job at once; false: wait for the index; default: "
                                  "a job when the text is long"))):
        name = safe_filename(file.filename)
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED:
            raise APIError(415, f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise APIError(413, f"file is larger than {max_upload_bytes // 2**20} MB (RAG_MAX_UPLOAD_MB)")
        target = upload_collection(request, collection)

        def conflict(doc) -> None:
            """409 at once for a name taken in another collection or, without replace=true, by other content."""
            clash = assistant.upload_clash(doc, replace)
            if clash is not None:
                raise APIError(409, str(clash))

        def index(progress=None, doc=None) -> IngestResult:
            try:  # checked again under the write lock: another upload may have taken the name meanwhile
                report = assistant.index_upload(doc, replace, progress)
            except (DocumentExists, CollectionClash) as exc:
                raise APIError(409, str(exc)) from None
            if report.failed:
                raise APIError(422, f"cannot read {name}: {report.failed[0].reason}")
            return IngestResult(doc_id=doc.metadata["doc_id"], filename=name, **report.to_dict())

        if suffix == ".pdf" and run_async is not False and (await run_in_threadpool(pages_to_ocr, data)):
            # scanned pages take seconds each to read (OCR): reading is part of the job, its pages counted
            def read_and_index(progress) -> dict:
                try:
                    read = assistant.read_upload(data, name, target,
                                                 on_page=lambda n, total: progress(n, total, pages=True))
                except LoadError as exc:
                    raise APIError(422, f"cannot read {name}: {exc}") from None
                return index(progress, read).model_dump()  # (index_upload checks the name under the write lock)

            job = jobs.submit(name, len(data), read_and_index, collection=target or "default")
            return JSONResponse(job.info().model_dump(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
        try:  # reading is quick: a file that cannot be read is refused at once, never as a job
            doc = await call(assistant.read_upload, data, name, target)
        except LoadError as exc:
            raise APIError(422, f"cannot read {name}: {exc}") from None
        await run_in_threadpool(conflict, doc)

        if run_async or (run_async is None and len(doc.text.split()) > upload_job_words):
            job = jobs.submit(name, len(data), lambda progress: index(progress, doc).model_dump(),
                              collection=doc.metadata.get("collection"))
            return JSONResponse(job.info().model_dump(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
        return await run_in_threadpool(index, None, doc)

    @api.get("/jobs/{job_id}", response_model=JobInfo, summary="An upload job: state, progress, result")
    async def get_job(job_id: str, request: Request) -> JobInfo:
        job = jobs.get(job_id)
        scope = grant_of(request).scope
        if job is not None and scope is not None and job.collection not in scope.collections:
            job = None
        if job is None:
            raise APIError(404, f"no job with id {job_id!r} (finished jobs are kept for an hour)")
        return job.info()

    @api.get("/documents/{doc_id}", response_model=DocumentText, summary="One document with its full text")
    async def get_document(doc_id: str, request: Request) -> DocumentText:
        record = await run_in_threadpool(visible_record, request, doc_id, True)
        return DocumentText(**_doc_info(record).model_dump(), text=record.text)

    @api.patch("/documents/{doc_id}", response_model=DocumentInfo, summary="Move a document to another collection")
    async def move_document(doc_id: str, change: DocumentChange, request: Request) -> DocumentInfo:
        await run_in_threadpool(visible_record, request, doc_id)
        scope = grant_of(request).scope
        if scope is not None and change.collection not in scope.collections:
            raise APIError(404, f"no such collection: {change.collection}")
        try:
            record = await run_in_threadpool(assistant.move_document, doc_id, change.collection)
        except Store.DoesNotExist:
            raise APIError(404, f"no document with id {doc_id!r}") from None
        return _doc_info(record)

    @api.get("/collections", response_model=CollectionList, summary="Document collections with their sizes")
    async def list_collections(request: Request) -> CollectionList:
        found = await call(assistant.collections, grant_of(request).scope)
        return CollectionList(collections=[CollectionInfo(**c) for c in found])

    @api.get("/documents/{doc_id}/pages/{page}.png", summary="A page of a PDF, the quote highlighted on it",
             response_class=Response, responses={200: {"content": {"image/png": {}}}},
             description="Renders page `page` (1-based) of a PDF and highlights the boxes of the characters "
                         "`start`..`end` of the document's text that lie on that page (a citation's offsets; a "
                         "quote over two pages: ask for both). At most 1400 pixels wide; cached.")
    async def page_image(doc_id: str, page: int, request: Request,
                         start: int | None = Query(None, ge=0), end: int | None = Query(None, ge=0)) -> Response:
        record = await run_in_threadpool(visible_record, request, doc_id)
        if (start is None) != (end is None) or (start is not None and end <= start):
            raise APIError(422, "give both start and end, with start < end (or neither)")
        try:
            png = await run_in_threadpool(assistant.page_image, record, page, start, end)
        except LookupError as exc:
            raise APIError(404, str(exc)) from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @api.delete("/documents/{doc_id}", response_model=Deleted, summary="Remove a document and its chunks")
    async def delete_document(doc_id: str, request: Request) -> Deleted:
        await run_in_threadpool(visible_record, request, doc_id)
        try:
            record = await run_in_threadpool(assistant.delete_document, doc_id)
        except Store.DoesNotExist:
            raise APIError(404, f"no document with id {doc_id!r}") from None
        return Deleted(deleted=_doc_info(record))

    app.include_router(api)

    @app.get("/page-images/{doc_id}/{page}.png", include_in_schema=False)
    async def ui_page_image(doc_id: str, page: int, request: Request, start: int | None = Query(None, ge=0),
                            end: int | None = Query(None, ge=0)) -> Response:
        """The page image for the chat UI's citation cards: the same as the API route, outside /api so
        the UI's cookie opens it (only a full key's cookie exists; limited keys never reach this path)."""
        return await page_image(doc_id, page, request, start, end)

    # ---------------------------------------------------------- /v1 (OpenAI-compatible)

    from rag.serve.openai_compat import router as openai_router

    app.include_router(openai_router(assistant, call), dependencies=[Depends(_documented_auth)])

    # ---------------------------------------------------------- health, docs

    @app.get("/healthz", response_model=Health, summary="Liveness and index size (no key needed)", tags=["Health"])
    async def healthz() -> Health:
        docs = await run_in_threadpool(assistant.documents)
        return Health(documents=len(docs), chunks=sum(d.n_chunks for d in docs), backend=assistant.backend,
                      read_only=read_only)

    _docs_routes(app)

    # Unknown /api and /v1 paths answer in JSON here instead of falling through to the UI.
    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    async def no_such_route(request: Request, rest: str):
        path = request.url.path
        for pattern, ops in app.openapi().get("paths", {}).items():
            methods = {m.upper() for m in ops}
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", pattern), path) and methods:
                raise APIError(405, f"{request.method} is not allowed on {path}; use {', '.join(sorted(methods))}",
                               {"Allow": ", ".join(sorted(methods))})
        raise APIError(404, f"no such endpoint: {path}")

    # ---------------------------------------------------------- UI (last: every route above wins)

    if ui:
        from rag.serve.ui import mount_ui

        mount_ui(app, assistant, read_only=read_only, max_upload_bytes=max_upload_bytes, jobs=jobs)

    app.add_middleware(GuardMiddleware, api_key=api_key, read_only=read_only, max_body=max_body_bytes,
                       max_upload=max_upload_bytes, keys=keys)
    return app


# ------------------------------------------------------------------ run


class PortBusy(RuntimeError):
    """The port to serve on is taken (checked before anything is loaded or announced)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or PortBusy saying who to ask."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server there? "
                       "choose another with --port)") from None
    sock.set_inheritable(True)
    return sock


def run(config, host: str = "127.0.0.1", port: int = 7860, read_only: bool = False,
        api_key: str | None = None) -> None:
    """Take the port, open the index (indexing seeds/ when it is empty), print the URL once the server
    can answer, and serve until stopped. Raises PortBusy when the port is taken and
    ownership.DataDirBusy when another process owns the local index."""
    from rag.index.ownership import own

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{shown}:{port}/"
    load_keys(api_key or config.api_key)  # a malformed RAG_API_KEYS stops the start here (KeySpecError)
    sock = bind(host, port)
    try:
        if config.chroma_url:
            return _serve(config, sock, host, url, read_only, api_key)
        # A local index belongs to one process: this server, for as long as it runs (see rag/index/ownership.py).
        with own(Path(config.data_dir), "serve", url):
            # Gradio keeps uploads in GRADIO_TEMP_DIR: keep them in the data dir too
            os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(config.data_dir).resolve() / "gradio-tmp"))
            return _serve(config, sock, host, url, read_only, api_key)
    finally:
        sock.close()


def _serve(config, sock: socket.socket, host: str, url: str, read_only: bool, api_key: str | None) -> None:
    import uvicorn

    from rag.assistant import Assistant
    from rag.config import DEFAULT_SEEDS_DIR

    started = time.perf_counter()
    api_key = api_key or config.api_key
    assistant = Assistant.open(config)
    if not assistant.documents():
        seeds = Path(DEFAULT_SEEDS_DIR)
        log.info("index is empty: indexing %s/ ...", seeds)
        report = assistant.ingest([seeds], show_progress=True)
        for skipped in report.failed:
            log.warning("%s", skipped)
        log.info("%s", report.summary())
    docs = assistant.documents()
    log.info("%d documents, %d chunks; answer backend: %s", len(docs), sum(d.n_chunks for d in docs),
             assistant.backend)
    app = create_app(assistant, read_only=read_only, api_key=api_key)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=3))

    def announce_when_serving():  # "ready" only once uvicorn has started on the socket
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"Grounded document chat ready in {time.perf_counter() - started:.1f}s: {url}  "
                  f"(API docs {url}docs{', read-only' if read_only else ''})", flush=True)

    threading.Thread(target=announce_when_serving, daemon=True, name="announce").start()
    if api_key or load_keys(None):
        print(f"An API key is required: send 'Authorization: Bearer KEY'; in a browser open {url}?key=KEY once.",
              flush=True)
    elif host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s without an API key: anyone who can reach this port can use it "
                    "(set RAG_API_KEY)", host)
    # Open browser tabs keep Gradio's event streams alive: do not wait for them on shutdown (3 s).
    server.run(sockets=[sock])
