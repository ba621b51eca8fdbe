"""Chroma's own BM25 sparse index and ``Search()`` hybrid, where the engine has them.

Chroma Cloud and distributed Chroma store sparse vectors in a collection's
schema and fuse them with dense k-NN server-side (``Search().rank(Rrf([...]))``).
Embedded Chroma and ``chroma run`` refuse the schema ("Sparse vector indexing is
not enabled in local"), so this is off unless asked for and detected:

* ``RAG_CHROMA_SPARSE=auto`` (with ``RAG_CHROMA_URL``): ``supports_sparse`` creates a
  probe collection with a sparse index once per process and server; the local refusal
  (or any other error) means "no". ``off`` (default) never probes.
* A supporting server: a *new* index's chunk collection is created with
  ``chunks_schema()`` (existing collections keep the local BM25 index); each chunk's
  metadata carries ``sparse_vector(text)`` under ``SPARSE_KEY``: our tokens (stopwords,
  plural folding, ``rag.index.lexical.tokenize``) hashed to 31-bit indices, weighted with
  BM25's tf part (k1 1.2, b 0.75, length over ``AVG_LEN``); ``bm25=True`` asks the
  server for the idf part. Queries use ``query_vector`` (1.0 per distinct token).
* ``build_search`` is the request: dense ``Knn`` and sparse ``Knn`` (both with ranks,
  ``pool`` deep) fused by weighted RRF; visibility (committed versions only) is checked
  on the returned metadata as for every other query.

Only the request building runs here (tests/test_chroma_sparse.py); nothing in this
repository has reached a server that supports it.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter

from rag.index.lexical import tokenize

SPARSE_KEY = "bm25_sparse"
AVG_LEN = 60.0  # tokens per chunk after stopwords (seed + BBC: ~55-65)
K1, B = 1.2, 0.75
_probed: dict[str, bool] = {}


def mode() -> str:
    return os.environ.get("RAG_CHROMA_SPARSE", "off").strip().lower()


def token_index(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) & 0x7FFFFFFF


def _sparse(weights: dict[int, float]):
    from chromadb import SparseVector

    indices = sorted(weights)
    return SparseVector(indices=indices, values=[float(weights[i]) for i in indices])


def sparse_vector(text: str):
    """A chunk's sparse vector: BM25 tf saturation per token (the server adds idf)."""
    tokens = tokenize(text)
    norm = K1 * (1 - B + B * len(tokens) / AVG_LEN)
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens).items():
        i = token_index(token)
        weights[i] = weights.get(i, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _sparse(weights)


def query_vector(query: str):
    return _sparse({token_index(t): 1.0 for t in set(tokenize(query))})


def chunks_schema():
    from chromadb import Schema, SparseVectorIndexConfig

    schema = Schema()
    schema.create_index(key=SPARSE_KEY, config=SparseVectorIndexConfig(bm25=True))
    return schema


def supports_sparse(client, url: str) -> bool:
    """Whether the server accepts a sparse vector index (asked once per process and url)."""
    if url in _probed:
        return _probed[url]
    name = f"rag-sparse-probe-{uuid.uuid4().hex[:8]}"
    try:
        client.create_collection(name, schema=chunks_schema(), embedding_function=None)
    except Exception as exc:  # noqa: BLE001  ("Sparse vector indexing is not enabled in local", or older servers)
        _probed[url] = False
        _probed[url + "#reason"] = str(exc)  # type: ignore[assignment]
        return False
    try:
        client.delete_collection(name)
    except Exception:  # noqa: BLE001
        pass
    _probed[url] = True
    return True


def build_search(embedding: list[float], query: str, pool: int, top_k: int, bm25_weight: float = 0.6,
                 rrf_k: int = 60):
    """Dense + sparse k-NN fused by weighted RRF, returning documents, metadata and score."""
    from chromadb import K, Knn, Rrf, Search

    dense = Knn(query=list(map(float, embedding)), limit=pool, return_rank=True)
    sparse = Knn(key=SPARSE_KEY, query=query_vector(query), limit=pool, return_rank=True)
    rank = Rrf(ranks=[dense, sparse], weights=[1 - bm25_weight, bm25_weight], k=rrf_k)
    return Search().rank(rank).limit(top_k).select(K.DOCUMENT, K.METADATA, K.SCORE)
