"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (stream and not) and ``GET /v1/models``.

The official ``openai`` client works unchanged with ``base_url="http://HOST:PORT/v1"``.
The last user message is the question; earlier user/assistant messages are the
history. ``model`` must be the one ``GET /v1/models`` lists (404 otherwise). System and developer
messages are not followed: an answer is made of verified quotes, which no instruction restyles.
Sampling options (temperature, max_tokens, ...) are accepted and ignored: the
answer is made of verified quotes.

Extras beyond the OpenAI schema:

* non-stream: ``choices[0].message.citations`` (list of Citation) and
  ``choices[0].message.grounded_answer`` (the full Answer); both also at the top level.
* stream: ``chat.completion.chunk`` lines with ``delta.content``; the last chunk has
  ``finish_reason: "stop"`` and carries ``citations`` in its delta and at the top level
  (plus ``grounded_answer``), then ``data: [DONE]``.

``usage`` counts the tokens the answer model read and wrote (its own tokenizer); a quick
(extractive) answer was written by no model and has no usage.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.models import Answer, ClaimEvent
from rag.serve.errors import APIError
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

    model: str = Field(MODEL_ID, description=f"{MODEL_ID!r}, the one model GET /v1/models lists; another name is a 404")
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(None, ge=1, le=50, description="Extension: passages to answer from")
    mode: Literal["quick", "model"] | None = Field(
        None, description="Extension (extra_body): quick = extractive, instant; model = the configured model")


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

    def card() -> ModelCard:
        return ModelCard(id=MODEL_ID, created=CREATED, backend=assistant.backend)

    @r.get("/models", response_model=ModelList, summary="The one model this server offers")
    async def models() -> ModelList:
        return ModelList(data=[card()])

    @r.get("/models/{model_id}", response_model=ModelCard, summary="One model")
    async def model(model_id: str) -> ModelCard:
        if model_id != MODEL_ID:
            raise APIError(404, f"no model {model_id!r}; this server offers {MODEL_ID!r}")
        return card()

    @r.post("/chat/completions", summary="Chat completion answered with verified quotes",
            responses={200: {"description": "chat.completion, or with stream=true a text/event-stream of "
                                            "chat.completion.chunk objects ending with data: [DONE]"}})
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        if req.model != MODEL_ID:
            raise APIError(404, f"The model {req.model!r} does not exist: this server offers {MODEL_ID!r} "
                                "(GET /v1/models)")
        question, history = await call(_split, req.messages)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not req.stream:
            answer: Answer = await call(assistant.ask, question, history, req.top_k, req.mode)
            cites = _citations(answer)
            grounded = answer.model_dump()
            return {
                "id": completion_id, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "system_fingerprint": answer.backend,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": answer.answer, "refusal": None,
                                         "citations": cites, "grounded_answer": grounded}}],
                "usage": _usage(answer),
                "citations": cites, "grounded_answer": grounded,
            }

        stream = iter(assistant.stream(question, history, req.top_k, req.mode))
        end = object()
        first = await call(next, stream, end)  # a refused question is a 422, not a broken stream
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                    "system_fingerprint": assistant.backend,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            item, text, pull = first, [], BatchedNext(stream, end)
            try:
                while item is not end:
                    if isinstance(item, Answer):
                        cites = _citations(item)
                        # Deltas are provisional with generative backends; the final chunk says what
                        # survived the quote checks.
                        yield chunk({"citations": cites}, "stop", citations=cites,
                                    grounded_answer=item.model_dump())
                        if include_usage:
                            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                    "model": MODEL_ID, "choices": [],
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
