"""The one error type of the HTTP API, shared by its routes (``rag.serve.app``, ``rag.serve.openai_compat``)."""

from __future__ import annotations

class APIError(Exception):
    """An error answered as ``{"detail": reason}`` with a 4xx status."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, code: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
        self.code = code  # /v1: OpenAI's error.code (default: the status)
