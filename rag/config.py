"""Configuration: one frozen dataclass read from the environment.

Every field has an environment variable and a CLI option (``rag --help``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATA_DIR = ".rag"
DEFAULT_SEEDS_DIR = "seeds"


@dataclass(frozen=True)
class Config:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("RAG_DATA_DIR", DEFAULT_DATA_DIR)))
    chroma_url: str | None = field(default_factory=lambda: os.environ.get("RAG_CHROMA_URL") or None)
    collection: str = field(default_factory=lambda: os.environ.get("RAG_COLLECTION", "documents"))
    llm: str = field(default_factory=lambda: os.environ.get("RAG_LLM", "extractive"))
    llm_base_url: str | None = field(default_factory=lambda: os.environ.get("RAG_LLM_BASE_URL") or None)
    api_key: str | None = field(default_factory=lambda: os.environ.get("RAG_API_KEY") or None)
    top_k: int = field(default_factory=lambda: int(os.environ.get("RAG_TOP_K", "6")))

    def with_(self, **changes) -> "Config":
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
