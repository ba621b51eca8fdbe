"""Answer backends: one spec string names the model, the same in the CLI
(``--llm``), the environment (``RAG_LLM``), the HTTP API and the UI.

* ``extractive`` (default): no model; the answer is picked from the documents.
* ``openai:MODEL``: any OpenAI-compatible server (OpenAI itself, llama.cpp's
  ``python -m llama_cpp.server``, vLLM, Ollama ...). The base URL comes from
  ``config.llm_base_url`` (``RAG_LLM_BASE_URL``), else ``OPENAI_BASE_URL``,
  else OpenAI's; the key from ``RAG_LLM_API_KEY``, else ``OPENAI_API_KEY`` (a local
  server needs none).
* ``gguf:PATH``: a GGUF file run in this process by llama-cpp-python.
* ``qwen2.5-coder-1.5b``, ``smollm2``, ``gemma-270m`` (also ``gguf:NAME``): GGUF models
  that ship inside PyPI packages (``rag.llm.packaged_models`` finds or assembles them).

Every backend is a llama-index ``LLM`` (``OpenAILike`` or ``LlamaCppLLM``
below), so callers use ``chat`` / ``stream_chat`` and nothing else.
Failures to reach or use a model raise :class:`BackendUnavailable`.

Tuning knobs (environment): ``RAG_LLM_TIMEOUT`` (seconds, default 60),
``RAG_LLM_MAX_RETRIES`` (default 2), ``RAG_LLM_MAX_TOKENS`` (default 256),
``RAG_LLM_CTX`` (context tokens for in-process models, default 2048), ``RAG_LLM_THREADS``
(llama.cpp threads for in-process models, default: all cores).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Iterator, Sequence

from llama_index.core.base.llms.types import (ChatMessage, ChatResponse, ChatResponseGen, CompletionResponse,
                                              CompletionResponseGen, LLMMetadata, MessageRole)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from rag.llm.cpu_variant import NoCpuBackend
from rag.llm.worker import ModelError, ModelProcessDied, ModelWorker, isolated
from rag.llm.packaged_models import ALIASES, INSTALL_HINT, PACKAGED, ModelMissing, PackagedModel, packaged_path

VALID_FORMS = ("'extractive', 'openai:MODEL' (an OpenAI-compatible server), 'gguf:PATH' (a .gguf file), "
               "'qwen2.5-coder-1.5b', 'smollm2' or 'gemma-270m' (packaged models, also as 'gguf:NAME')")
OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "sk-no-key-required"


class BackendUnavailable(RuntimeError):
    """The answer model cannot be used right now; ``reason`` says why.

    ``status`` is the HTTP status the API should answer with: 503 when the
    model cannot be reached, timed out or is not installed; 502 when the model
    server answered with an error (bad key, unknown model, server error)."""

    def __init__(self, backend: str, reason: str, status: int = 503):
        super().__init__(f"{backend}: {reason}")
        self.backend, self.reason, self.status = backend, reason, status


# ------------------------------------------------------------------ specs


@dataclass(frozen=True)
class BackendSpec:
    """A parsed spec: ``kind`` is extractive|openai|gguf; ``model`` the model name,
    packaged model name or GGUF path; ``name`` what answers report as ``backend``."""

    kind: str
    model: str = ""
    name: str = "extractive"

    @property
    def packaged(self) -> PackagedModel | None:
        return PACKAGED.get(self.model) if self.kind == "gguf" else None


def parse_spec(spec: str | None) -> BackendSpec:
    """Parse an answer-backend spec; ValueError (listing the valid forms) if it is not one."""
    raw = (spec or "extractive").strip()
    low = raw.lower()
    if low in ("", "extractive"):
        return BackendSpec("extractive")
    bare = ALIASES.get(low, low)
    if bare in PACKAGED:
        return BackendSpec("gguf", bare, f"gguf:{bare}")
    kind, sep, rest = raw.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if sep and kind == "openai":
        if not rest:
            raise ValueError(f"invalid answer backend {raw!r}: 'openai:' needs a model name; valid forms: {VALID_FORMS}")
        return BackendSpec("openai", rest, f"openai:{rest}")
    if sep and kind == "gguf":
        if not rest:
            raise ValueError(f"invalid answer backend {raw!r}: 'gguf:' needs a path or a packaged model name; "
                             f"valid forms: {VALID_FORMS}")
        named = ALIASES.get(rest.lower(), rest.lower())
        if named in PACKAGED:
            return BackendSpec("gguf", named, f"gguf:{named}")
        path = Path(rest).expanduser()
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"invalid answer backend {raw!r}: {rest!r} is neither a packaged model "
                             f"({', '.join(PACKAGED)}) nor a .gguf file; valid forms: {VALID_FORMS}")
        if not path.is_file():
            raise ValueError(f"invalid answer backend {raw!r}: no such GGUF file {str(path)!r}")
        return BackendSpec("gguf", str(path.resolve()), f"gguf:{path.stem}")
    raise ValueError(f"unknown answer backend {raw!r}; valid forms: {VALID_FORMS}")


# ------------------------------------------------------------------ options


def _env_number(name: str, default: float, cast=float):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


@dataclass(frozen=True)
class LLMOptions:
    timeout: float = field(default_factory=lambda: _env_number("RAG_LLM_TIMEOUT", 60.0))
    connect_timeout: float = 5.0
    max_retries: int = field(default_factory=lambda: _env_number("RAG_LLM_MAX_RETRIES", 2, int))
    max_tokens: int = field(default_factory=lambda: _env_number("RAG_LLM_MAX_TOKENS", 256, int))
    n_ctx: int = field(default_factory=lambda: _env_number("RAG_LLM_CTX", 2048, int))
    temperature: float = 0.0
    n_threads: int | None = field(default_factory=lambda: _env_number("RAG_LLM_THREADS", 0, int) or None)

    def with_(self, **changes) -> "LLMOptions":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# ------------------------------------------------------------------ packaged GGUF files


def model_path(spec: BackendSpec) -> Path:
    """The GGUF file of a gguf spec (a packaged model is assembled on first use)."""
    if spec.packaged is None:
        return Path(spec.model)
    try:
        return packaged_path(spec.model)
    except ModelMissing as exc:
        raise BackendUnavailable(spec.name, str(exc)) from exc


# ------------------------------------------------------------------ llama.cpp models


class LlamaCppLLM(CustomLLM):
    """A GGUF model run by llama-cpp-python, as a llama-index LLM.

    The model runs in a child process (:class:`rag.llm.worker.ModelWorker`), so that a crash in
    llama.cpp costs one answer (HTTP 503 with the reason) and the next call starts it again;
    ``RAG_LLM_PROCESS=inprocess`` runs it in this process instead. ``chat_mode=True`` formats
    chats with the template stored in the GGUF (instruct models); ``False`` renders messages
    with ``messages_to_prompt`` and completes the text (base models). The model loads on first
    use; one generation runs at a time (llama.cpp contexts are not thread-safe)."""

    model_path: str = Field(description="Path of the .gguf file")
    model_name: str = Field(default="gguf", description="Name reported in metadata")
    n_ctx: int = Field(default=2048)
    max_tokens: int = Field(default=256)
    temperature: float = Field(default=0.0)
    n_threads: int | None = Field(default=None)
    chat_mode: bool = Field(default=True)
    stop: list[str] = Field(default_factory=list)
    seed: int = Field(default=0)
    silence: float = Field(default=120.0, description="Seconds a model child may stay silent before it is stopped")
    _engine: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    @classmethod
    def class_name(cls) -> str:
        return "LlamaCppLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.n_ctx, num_output=self.max_tokens, is_chat_model=self.chat_mode,
                           model_name=self.model_name)

    @property
    def backend_name(self) -> str:
        return f"gguf:{self.model_name}"

    @property
    def engine(self):
        """The model: a ``ModelWorker`` (child process, the default) or a ``LlamaEngine`` in this process."""
        with self._lock:
            if self._engine is None:
                if find_spec("llama_cpp") is None:
                    raise BackendUnavailable(self.backend_name, f"llama-cpp-python is not installed: {INSTALL_HINT}")
                args = {"model_path": self.model_path, "n_ctx": self.n_ctx, "n_threads": self.n_threads,
                        "seed": self.seed}
                if isolated():
                    self._engine = ModelWorker(args, silence=self.silence, name=self.model_name)
                else:
                    try:
                        from .llama_engine import LlamaEngine

                        self._engine = LlamaEngine(**args)
                    except NoCpuBackend as exc:
                        raise BackendUnavailable(self.backend_name, str(exc)) from exc
            return self._engine

    def _call(self, method: str, *args):
        engine = self.engine
        try:
            if isinstance(engine, ModelWorker):
                return engine.call(method, *args)
            with self._lock:
                return getattr(engine, method)(*args)
        except ModelProcessDied as exc:
            raise BackendUnavailable(self.backend_name, exc.reason, 503) from exc
        except ModelError as exc:
            raise BackendUnavailable(self.backend_name, str(exc), 503) from exc

    def _stream(self, method: str, *args) -> Iterator[dict]:
        engine = self.engine
        try:
            if isinstance(engine, ModelWorker):
                yield from engine.stream(method, *args)
            else:
                with self._lock:
                    yield from getattr(engine, method)(*args)
        except ModelProcessDied as exc:
            raise BackendUnavailable(self.backend_name, exc.reason, 503) from exc
        except ModelError as exc:
            raise BackendUnavailable(self.backend_name, str(exc), 503) from exc

    def close(self) -> None:
        """Stop the model's child process (it restarts on the next call)."""
        if isinstance(self._engine, ModelWorker):
            self._engine.close()

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the GGUF's own chat template makes of ``messages`` (generation prompt added)."""
        if not self.chat_mode:
            return self.messages_to_prompt(messages)
        try:
            return self._call("render_chat", self._dicts(messages))
        except ValueError:  # no template in the file
            return self.messages_to_prompt(messages)

    def next_token_logprobs(self, messages: Sequence[ChatMessage], top: int = 20) -> dict[str, float]:
        """Log-probabilities of the ``top`` likeliest first tokens of the reply, by token text
        (the logits of the prompt's last position; the KV prefix shared with the previous call is kept)."""
        return self._call("next_token_logprobs", self.render_chat(messages), top)

    def count_tokens(self, text: str) -> int:
        return self._call("count_tokens", text)

    def _params(self, kwargs: dict) -> dict:
        params = {"max_tokens": kwargs.get("max_tokens", self.max_tokens),
                  "temperature": kwargs.get("temperature", self.temperature),
                  "stop": list(kwargs.get("stop") or self.stop) or None, "seed": self.seed}
        for key in ("response_format", "logprobs", "top_logprobs"):
            if kwargs.get(key) is not None:
                params[key] = kwargs[key]
        return params

    @staticmethod
    def _dicts(messages: Sequence[ChatMessage]) -> list[dict]:
        return [{"role": m.role.value, "content": m.content or ""} for m in messages]

    @staticmethod
    def _usage(raw: dict | None) -> dict:
        usage = (raw or {}).get("usage") or {}
        return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens") if k in usage}

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if not self.chat_mode:
            done = self.complete(self.messages_to_prompt(messages), formatted=True, **kwargs)
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=done.text), raw=done.raw,
                                additional_kwargs=done.additional_kwargs)
        raw = self._call("chat", self._dicts(messages), self._params(kwargs))
        text = raw["choices"][0]["message"].get("content") or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=raw,
                            additional_kwargs=self._usage(raw))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        if not self.chat_mode:
            prompt = self.messages_to_prompt(messages)

            def from_completion() -> ChatResponseGen:
                for part in self.stream_complete(prompt, formatted=True, **kwargs):
                    yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=part.text),
                                       delta=part.delta, raw=part.raw, additional_kwargs=part.additional_kwargs)

            return from_completion()

        def gen() -> ChatResponseGen:
            text, n = "", 0
            for chunk in self._stream("stream_chat", self._dicts(messages), self._params(kwargs)):
                delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                if not delta:
                    continue
                text, n = text + delta, n + 1
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta,
                                   raw=chunk, additional_kwargs={"completion_tokens": n})

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raw = self._call("complete", prompt, self._params(kwargs))
        return CompletionResponse(text=raw["choices"][0]["text"], raw=raw, additional_kwargs=self._usage(raw))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text, n = "", 0
            for chunk in self._stream("stream_complete", prompt, self._params(kwargs)):
                delta = chunk["choices"][0].get("text") or ""
                if not delta:
                    continue
                text, n = text + delta, n + 1
                yield CompletionResponse(text=text, delta=delta, raw=chunk, additional_kwargs={"completion_tokens": n})

        return gen()


# ------------------------------------------------------------------ construction


def openai_endpoint(config) -> tuple[str, str]:
    """(base_url, api_key) for ``openai:MODEL``."""
    base = (getattr(config, "llm_base_url", None) or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE)
    key = os.environ.get("RAG_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""
    if not key:
        if base.rstrip("/") == OPENAI_DEFAULT_BASE:
            raise ValueError("openai:MODEL against api.openai.com needs OPENAI_API_KEY (or RAG_LLM_API_KEY); for a local "
                             "OpenAI-compatible server set RAG_LLM_BASE_URL (or --llm-base-url)")
        key = PLACEHOLDER_KEY  # local servers (llama.cpp, vLLM, Ollama) accept any key
    return base.rstrip("/"), key


def make_llm(spec: BackendSpec, config, options: LLMOptions | None = None):
    """The llama-index LLM for a parsed spec (not for ``extractive``)."""
    options = options or LLMOptions()
    if spec.kind == "openai":
        import httpx
        from llama_index.llms.openai_like import OpenAILike
        from openai import OpenAI

        base, key = openai_endpoint(config)
        timeout = httpx.Timeout(options.timeout, connect=min(options.connect_timeout, options.timeout))
        # One retry layer: the OpenAI client's own (exponential backoff with jitter, honours
        # Retry-After, retries connection errors, 408/409/429/5xx). llama-index's tenacity
        # layer on top would multiply the attempts, so it is turned off (max_retries=0 on the LLM).
        client = OpenAI(base_url=base, api_key=key, timeout=timeout, max_retries=options.max_retries)
        return OpenAILike(model=spec.model, api_base=base, api_key=key, is_chat_model=True,
                          is_function_calling_model=False, timeout=options.timeout, max_retries=0,
                          max_tokens=options.max_tokens, temperature=options.temperature,
                          context_window=32_768, tokenizer=None, openai_client=client, reuse_client=True)
    if spec.kind == "gguf":
        if find_spec("llama_cpp") is None:
            raise BackendUnavailable(spec.name, f"llama-cpp-python is not installed: {INSTALL_HINT}")
        from rag.llm.completion import COMPLETION_STOPS, completion_prompt

        path = model_path(spec)
        packaged = spec.packaged
        chat_mode = packaged.instruct if packaged else _has_chat_template(path)
        llm = LlamaCppLLM(model_path=str(path), model_name=spec.name.split(":", 1)[1], n_ctx=options.n_ctx,
                          max_tokens=options.max_tokens, temperature=options.temperature,
                          n_threads=options.n_threads, chat_mode=chat_mode,
                          stop=[] if chat_mode else list(COMPLETION_STOPS), messages_to_prompt=completion_prompt)
        return llm
    raise ValueError(f"no model for backend {spec.name!r}")


def _has_chat_template(path: Path) -> bool:
    """Whether a GGUF file declares a chat template (read from its header, without loading weights)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4 << 20)
        return b"tokenizer.chat_template" in head
    except OSError:
        return False


def iter_text(responses: Iterator[ChatResponse]) -> Iterator[str]:
    """Deltas of a llama-index chat stream."""
    for r in responses:
        if r.delta:
            yield r.delta
