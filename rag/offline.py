"""Environment switches that keep every dependency on this machine.

Imported first by ``rag/__init__.py``. Each line answers one measured
offline failure (see DESIGN.md): tiktoken downloads its BPE files, the
Hugging Face hub is called by gradio_client, Gradio and Chroma send
analytics. Values the user already set are left alone.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path


def _llama_index_tiktoken_cache() -> str | None:
    spec = find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    cache = Path(list(spec.submodule_search_locations)[0]) / "_static" / "tiktoken_cache"
    return str(cache) if cache.is_dir() else None


def apply() -> None:
    defaults = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ANONYMIZED_TELEMETRY": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "DO_NOT_TRACK": "1",
    }
    cache = _llama_index_tiktoken_cache()
    if cache:
        defaults["TIKTOKEN_CACHE_DIR"] = cache
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


apply()
