"""A GGUF model on llama-cpp-python, with plain-data calls (dicts and strings in, dicts out) so
that it can run in a child process (:mod:`rag.llm.worker`) as well as in this one.

Imports only llama-cpp-python and numpy: a child that holds it starts in about a second.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

from rag.llm.cpu_variant import ensure_cpu_backend


class LlamaEngine:
    """One ``llama_cpp.Llama``. Not thread-safe: callers serialise (one generation at a time)."""

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 0):
        from llama_cpp import Llama

        ensure_cpu_backend(model_path)
        self.llama = Llama(model_path=model_path, n_ctx=n_ctx, seed=seed, verbose=False,
                           n_threads=n_threads or max(1, os.cpu_count() or 1))
        self._kept: tuple[list[int], bytes] | None = None  # the last answer's prompt: tokens and KV state

    # ------------------------------------------------------------ prompts and tokens

    def render_chat(self, messages: list[dict]) -> str:
        """The prompt text the GGUF's own chat template makes of ``messages`` (generation prompt added)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self.llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("this GGUF has no chat template")
        text = llama._model.token_get_text  # noqa: SLF001  (llama-cpp-python has no public accessor)
        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = Jinja2ChatFormatter(template=template, eos_token=text(eos) if eos != -1 else "",
                                        bos_token=text(bos) if bos != -1 else "")
        return formatter(messages=messages).prompt

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def next_token_logprobs(self, prompt: str, top: int = 20) -> dict[str, float]:
        """Log-probabilities of the ``top`` likeliest next tokens after ``prompt``, by token text.

        Reads the logits of the prompt's last position directly, so it needs neither
        ``logits_all`` (1.2 GB of scores for a 151k vocabulary) nor a sampling step. The
        longest prefix shared with the previous call stays in the KV cache: claims judged
        against the same document only pay for the claim."""
        import numpy as np

        llama = self.llama
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) > llama.n_ctx():
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {llama.n_ctx()}")
        common = llama.longest_token_prefix(llama._input_ids.tolist(), tokens)  # noqa: SLF001
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

    # ------------------------------------------------------------ generation

    @staticmethod
    def _completion_params(params: dict) -> dict:
        """Plain completions take no response_format: its JSON schema becomes a grammar."""
        params = dict(params)
        fmt = params.pop("response_format", None)
        if fmt and fmt.get("schema") and "grammar" not in params:
            from llama_cpp import LlamaGrammar

            params["grammar"] = LlamaGrammar.from_json_schema(json.dumps(fmt["schema"]), verbose=False)
        params.pop("top_logprobs", None)
        return params

    # ------------------------------------------------------------ the answer prompt's KV state, kept aside
    #
    # Between two questions about the same documents the model checks claims with short prompts of
    # their own, which overwrite the KV cache. The state after each answer's prompt is kept (only the
    # cells in use: ~30 MB for 800 tokens of Qwen 1.5B) and put back before the next answer when it
    # shares more of that answer's prompt than the context does, so a follow-up pays for its question
    # only. (llama-cpp-python's LlamaRAMCache copies a 311 MB score array with every state and leaves
    # it out of its capacity count: measured +2 GB RSS after five questions.)

    def _keep(self) -> None:
        import ctypes

        import llama_cpp

        llama, ctx = self.llama, self.llama._ctx.ctx  # noqa: SLF001
        size = llama_cpp.llama_state_get_size(ctx)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_get_data(ctx, buf, size)
        self._kept = (llama.input_ids[: llama.n_tokens].tolist(), bytes(memoryview(buf)[:n]))

    def _restore_for(self, messages: list[dict]) -> None:
        if self._kept is None:
            return
        import ctypes

        import llama_cpp

        llama = self.llama
        tokens = llama.tokenize(self.render_chat(messages).encode("utf-8"), add_bos=True, special=True)
        kept_ids, data = self._kept
        if llama.longest_token_prefix(kept_ids, tokens) <= llama.longest_token_prefix(llama._input_ids.tolist(), tokens) + 16:  # noqa: SLF001,E501
            return
        state = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_set_data(llama._ctx.ctx, state, len(data)) != len(data):  # noqa: SLF001
            self._kept = None
            return
        llama.input_ids[: len(kept_ids)] = kept_ids
        llama.n_tokens = len(kept_ids)

    def chat(self, messages: list[dict], params: dict) -> dict:
        self._restore_for(messages)
        try:
            return self.llama.create_chat_completion(messages=messages, **params)
        finally:
            self._keep()

    def stream_chat(self, messages: list[dict], params: dict) -> Iterator[dict]:
        self._restore_for(messages)
        try:
            yield from self.llama.create_chat_completion(messages=messages, stream=True, **params)
        finally:
            self._keep()

    def complete(self, prompt: str, params: dict) -> dict:
        return self.llama.create_completion(prompt=prompt, **self._completion_params(params))

    def stream_complete(self, prompt: str, params: dict) -> Iterator[dict]:
        yield from self.llama.create_completion(prompt=prompt, stream=True, **self._completion_params(params))
