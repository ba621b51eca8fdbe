"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (stream and not) and ``GET /v1/models``.

The official ``openai`` client works unchanged with ``base_url="http://HOST:PORT/v1"``.
The last user message is the question; earlier user/assistant messages are the
history. ``model`` must be the one ``GET /v1/models`` lists (404 otherwise). Sampling options
(temperature, max_tokens, ...) are accepted and ignored: the answer is made of verified quotes.

System (and developer) messages: in model mode they are the user's instructions on the form of the
answer ("Answer in French", "Be brief") and go to the model after the documents and the question;
its claims are checked as always, so an instruction cannot make an unverified claim pass. A quick
(extractive) answer has no model to follow them: a system message is then refused with 400
(``code: "system_message_unsupported"``) rather than silently ignored, except a generic default
such as "You are a helpful assistant." that many clients send on their own (accepted and ignored in
both modes).

Extras beyond the OpenAI schema:

* non-stream: ``choices[0].message.citations`` (list of Citation) and
  ``choices[0].message.grounded_answer`` (the full Answer); both also at the top level.
* stream: the first chunk (``delta.role``, empty content) comes as soon as retrieval is done and
  carries ``sources`` (the documents being read: doc_id, title, source) at its top level; then
  ``chat.completion.chunk`` lines with ``delta.content`` (each claim once it is verified); the last chunk has
  ``finish_reason: "stop"`` and carries ``citations`` in its delta and at the top level
  (plus ``grounded_answer``), then ``data: [DONE]``.

``usage`` counts the tokens the answer model read and wrote (its own tokenizer); a quick
(extractive) answer was written by no model and has no usage.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.models import Answer, ClaimEvent, SourcesEvent
from rag.index.scope import Scope
from rag.serve.errors import APIError
from rag.serve.keys import grant_of
from rag.serve.streaming import BatchedNext

MODEL_ID = "grounded-rag"
CREATED = int(time.time())


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type in ("text", "input_text"))
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "model": MODEL_ID, "messages": [{"role": "user", "content": "What did Zelenskyy say about Crimea?"}]}]})

    model: str = Field(MODEL_ID, description=f"{MODEL_ID!r} (every document) or '{MODEL_ID}/COLLECTION' (one collection), as GET /v1/models lists; another name is a 404")
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(None, ge=1, le=50, description="Extension: passages to answer from")
    mode: Literal["quick", "model"] | None = Field(
        None, description="Extension (extra_body): quick = extractive, instant; model = the configured model")
    doc_ids: list[str] | None = Field(None, max_length=1000, description=(
        "Extension (extra_body): answer only from these documents. A collection is chosen by the model name: "
        f"'{MODEL_ID}/COLLECTION'"))


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "grounded-rag"
    backend: str = Field(description="The answer backend behind this model id")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _split(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """(question, history): the last user message and the user/assistant turns before it.

    Text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON allows)
    is refused here: the tokenizer cannot encode it."""
    from rag.assistant import BadRequest

    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            history = [{"role": m.role, "content": m.text()} for m in messages[:i]
                       if m.role in ("user", "assistant")]
            question = messages[i].text()
            for text in [question, *(t["content"] for t in history)]:
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise BadRequest(f"messages contain text that is not valid Unicode "
                                     f"({exc.reason}: {exc.object[exc.start:exc.end]!r})") from None
            return question, history
    raise BadRequest("messages contain no user message (the last user message is the question)")


_ADJ = r"(?:helpful|friendly|honest|harmless|useful|polite|smart|knowledgeable|concise|precise|accurate|ai)"
# "You are a helpful assistant.", "You are helpful.", "You are a friendly, helpful AI assistant."
_GENERIC_SYSTEM = re.compile(rf"you are (?:an? )?(?:{_ADJ}(?:,? and |, | )?)*(?:{_ADJ}|(?:ai )?assistant)[.!]?")


def _instructions(messages: list[ChatMessage]) -> str | None:
    """The system and developer messages' text, without generic defaults ("You are a helpful assistant.")."""
    parts = []
    for m in messages:
        if m.role in ("system", "developer"):
            text = " ".join(m.text().split())
            if text and not _GENERIC_SYSTEM.fullmatch(text.lower()):
                parts.append(text)
    return "\n".join(parts) or None


def _usage(answer: Answer) -> dict | None:
    """Tokens the answer model read and wrote (``Answer.usage``); None for answers no model wrote."""
    if not answer.usage:
        return None
    prompt, completion = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _citations(answer: Answer) -> list[dict]:
    return [c.model_dump() for c in answer.citations]


def router(assistant, call) -> APIRouter:
    """The /v1 routes over an Assistant; ``call`` runs a blocking call in the threadpool, mapping
    refusals to 422 (see rag.serve.app.create_app)."""
    from rag.assistant import BadRequest

    r = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    def card(model_id: str = MODEL_ID) -> ModelCard:
        return ModelCard(id=model_id, created=CREATED, backend=assistant.backend)

    def model_ids(request: Request) -> list[str]:
        """grounded-rag (every document the key may read) and grounded-rag/COLLECTION for each collection."""
        names = [c["name"] for c in assistant.collections(grant_of(request).scope)]
        return [MODEL_ID] + [f"{MODEL_ID}/{name}" for name in names]

    @r.get("/models", response_model=ModelList, summary="The models this server offers: all documents, or one collection")
    async def models(request: Request) -> ModelList:
        return ModelList(data=[card(m) for m in await run_in_threadpool(model_ids, request)])

    @r.get("/models/{model_id:path}", response_model=ModelCard, summary="One model")
    async def model(model_id: str, request: Request) -> ModelCard:
        if model_id not in await run_in_threadpool(model_ids, request):
            raise APIError(404, f"no model {model_id!r}; this server offers {MODEL_ID!r} and "
                                f"{MODEL_ID + '/COLLECTION'!r} (GET /v1/models)")
        return card(model_id)

    @r.post("/chat/completions", summary="Chat completion answered with verified quotes",
            responses={200: {"description": "chat.completion, or with stream=true a text/event-stream of "
                                            "chat.completion.chunk objects ending with data: [DONE]"}})
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        if req.model != MODEL_ID and not req.model.startswith(MODEL_ID + "/"):
            raise APIError(404, f"The model {req.model!r} does not exist: this server offers {MODEL_ID!r} and "
                                f"{MODEL_ID + '/COLLECTION'!r} (GET /v1/models)", code="model_not_found")
        collection = req.model[len(MODEL_ID) + 1:] or None
        try:
            scope = Scope.of(collection, req.doc_ids) if collection or req.doc_ids else None
        except ValueError:
            raise APIError(404, f"The model {req.model!r} does not exist (GET /v1/models)", code="model_not_found") from None
        permission = grant_of(request).scope
        question, history = await call(_split, req.messages)
        instructions = _instructions(req.messages)
        mode = req.mode or ("model" if assistant.generator is not None else "quick")
        if instructions and mode == "quick":
            raise APIError(400, "system messages are followed only by an answer model, and this answer is a quick "
                                "(extractive) one made of quotes only: leave the system message out"
                                + (", or ask with mode 'model'" if assistant.generator is not None else
                                   " (the server has no answer model: rag serve --llm ...)"),
                           code="system_message_unsupported")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not req.stream:
            answer: Answer = await call(assistant.ask, question, history, req.top_k, req.mode, instructions,
                                        scope=scope, permission=permission)
            cites = _citations(answer)
            grounded = answer.model_dump()
            return {
                "id": completion_id, "object": "chat.completion", "created": created, "model": req.model,
                "system_fingerprint": answer.backend,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": answer.answer, "refusal": None,
                                         "citations": cites, "grounded_answer": grounded}}],
                "usage": _usage(answer),
                "citations": cites, "grounded_answer": grounded,
            }

        stream = iter(assistant.stream(question, history, req.top_k, req.mode, sources=True,
                                       instructions=instructions, scope=scope, permission=permission))
        end = object()
        first = await call(next, stream, end)  # a refused question is a 422, not a broken stream
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": req.model,
                    "system_fingerprint": assistant.backend,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def events():
            item, text, pull = first, [], BatchedNext(stream, end)
            if isinstance(item, SourcesEvent):  # the role chunk, at once, with the documents being read
                yield chunk({"role": "assistant", "content": ""},
                            sources=[s.model_dump() for s in item.sources])
            else:
                yield chunk({"role": "assistant", "content": ""})
            try:
                if isinstance(item, SourcesEvent):
                    item = await pull()
                while item is not end:
                    if isinstance(item, Answer):
                        cites = _citations(item)
                        # Deltas are provisional with generative backends; the final chunk says what
                        # survived the quote checks.
                        yield chunk({"citations": cites}, "stop", citations=cites,
                                    grounded_answer=item.model_dump())
                        if include_usage:
                            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                    "model": req.model, "choices": [],
                                    "usage": _usage(item)}
                            yield f"data: {json.dumps(body)}\n\n"
                        break
                    piece = item.text + " " if isinstance(item, ClaimEvent) else item
                    text.append(piece)
                    yield chunk({"content": piece})
                    item = await pull()
            except BadRequest as exc:
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'invalid_request_error'}})}\n\n"
            except Exception as exc:  # noqa: BLE001  (headers are sent: report in-band)
                yield f"data: {json.dumps({'error': {'message': f'the answer failed ({type(exc).__name__})', 'type': 'server_error'}})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r
