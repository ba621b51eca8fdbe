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

from rag.llm.cpu_variant import NoCpuBackend, ensure_cpu_backend
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


# ------------------------------------------------------------------ in-process llama.cpp


class LlamaCppLLM(CustomLLM):
    """A GGUF model run in this process by llama-cpp-python, as a llama-index LLM.

    ``chat_mode=True`` formats chats with the template stored in the GGUF
    (instruct models); ``False`` renders messages with ``messages_to_prompt``
    and completes the text (base models). The model loads on first use; one
    generation runs at a time (llama.cpp contexts are not thread-safe)."""

    model_path: str = Field(description="Path of the .gguf file")
    model_name: str = Field(default="gguf", description="Name reported in metadata")
    n_ctx: int = Field(default=2048)
    max_tokens: int = Field(default=256)
    temperature: float = Field(default=0.0)
    n_threads: int | None = Field(default=None)
    chat_mode: bool = Field(default=True)
    stop: list[str] = Field(default_factory=list)
    seed: int = Field(default=0)
    _llama: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    @classmethod
    def class_name(cls) -> str:
        return "LlamaCppLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.n_ctx, num_output=self.max_tokens, is_chat_model=self.chat_mode,
                           model_name=self.model_name)

    @property
    def llama(self):
        with self._lock:
            if self._llama is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise BackendUnavailable(f"gguf:{self.model_name}",
                                             f"llama-cpp-python is not installed: {INSTALL_HINT}") from exc
                try:
                    ensure_cpu_backend(self.model_path)
                except NoCpuBackend as exc:
                    raise BackendUnavailable(f"gguf:{self.model_name}", str(exc)) from exc
                self._llama = Llama(model_path=self.model_path, n_ctx=self.n_ctx, seed=self.seed, verbose=False,
                                    n_threads=self.n_threads or max(1, os.cpu_count() or 1))
            return self._llama

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the GGUF's own chat template makes of ``messages`` (generation prompt added)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self.llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not self.chat_mode or not template:
            return self.messages_to_prompt(messages)
        text = llama._model.token_get_text  # noqa: SLF001  (llama-cpp-python has no public accessor)
        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = Jinja2ChatFormatter(template=template, eos_token=text(eos) if eos != -1 else "",
                                        bos_token=text(bos) if bos != -1 else "")
        return formatter(messages=self._dicts(messages)).prompt

    def next_token_logprobs(self, messages: Sequence[ChatMessage], top: int = 20) -> dict[str, float]:
        """Log-probabilities of the ``top`` likeliest first tokens of the reply, by token text.

        Reads the logits of the prompt's last position directly, so it needs neither
        ``logits_all`` (1.2 GB of scores for a 151k vocabulary) nor a sampling step. The
        longest prefix shared with the previous call stays in the KV cache: claims judged
        against the same document only pay for the claim."""
        import numpy as np

        tokens = self.llama.tokenize(self.render_chat(messages).encode("utf-8"), add_bos=True, special=True)
        with self._lock:
            llama = self.llama
            if len(tokens) > llama.n_ctx():
                raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {llama.n_ctx()}")
            common = 0
            for a, b in zip(llama._input_ids, tokens):  # noqa: SLF001
                if a != b:
                    break
                common += 1
            common = min(common, len(tokens) - 1, llama.n_tokens)
            llama.n_tokens = common
            llama.eval(tokens[common:])
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)  # noqa: SLF001
        logits -= logits.max()
        logprobs = logits - np.log(np.exp(logits).sum())
        best = np.argsort(-logprobs)[:top]
        out: dict[str, float] = {}
        for i in best:
            piece = llama.detokenize([int(i)]).decode("utf-8", errors="replace")
            out[piece] = float(np.logaddexp(out[piece], logprobs[i])) if piece in out else float(logprobs[i])
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _params(self, kwargs: dict) -> dict:
        params = {"max_tokens": kwargs.get("max_tokens", self.max_tokens),
                  "temperature": kwargs.get("temperature", self.temperature),
                  "stop": list(kwargs.get("stop") or self.stop) or None, "seed": self.seed}
        for key in ("response_format", "grammar", "logprobs", "top_logprobs"):
            if kwargs.get(key) is not None:
                params[key] = kwargs[key]
        return params

    def _completion_params(self, kwargs: dict) -> dict:
        """Plain completions take no response_format: its JSON schema becomes a grammar."""
        params = self._params(kwargs)
        fmt = params.pop("response_format", None)
        if fmt and fmt.get("schema") and "grammar" not in params:
            import json

            from llama_cpp import LlamaGrammar

            params["grammar"] = LlamaGrammar.from_json_schema(json.dumps(fmt["schema"]), verbose=False)
        params.pop("top_logprobs", None)
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
        with self._lock:
            raw = self.llama.create_chat_completion(messages=self._dicts(messages), **self._params(kwargs))
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
            with self._lock:
                for chunk in self.llama.create_chat_completion(messages=self._dicts(messages), stream=True,
                                                               **self._params(kwargs)):
                    delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                    if not delta:
                        continue
                    text, n = text + delta, n + 1
                    yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta,
                                       raw=chunk, additional_kwargs={"completion_tokens": n})

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        with self._lock:
            raw = self.llama.create_completion(prompt=prompt, **self._completion_params(kwargs))
        return CompletionResponse(text=raw["choices"][0]["text"], raw=raw, additional_kwargs=self._usage(raw))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text, n = "", 0
            with self._lock:
                for chunk in self.llama.create_completion(prompt=prompt, stream=True,
                                                          **self._completion_params(kwargs)):
                    delta = chunk["choices"][0].get("text") or ""
                    if not delta:
                        continue
                    text, n = text + delta, n + 1
                    yield CompletionResponse(text=text, delta=delta, raw=chunk,
                                             additional_kwargs={"completion_tokens": n})

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
