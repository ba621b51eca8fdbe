"""Chroma's own sparse BM25 hybrid (rag/index/chroma_sparse.py): only the request building and the
capability check can run here (embedded Chroma and `chroma run` refuse sparse indexes)."""

from __future__ import annotations

import tempfile

from rag.index import chroma_sparse as cs


def test_sparse_vectors_use_our_tokenizer():
    a, b = cs.sparse_vector("The NATO summits"), cs.sparse_vector("nato summit")
    assert a.indices == b.indices == sorted({cs.token_index("nato"), cs.token_index("summit")})
    assert all(v > 0 for v in a.values)
    twice = cs.sparse_vector("nato nato summit")
    assert twice.values[twice.indices.index(cs.token_index("nato"))] > b.values[b.indices.index(cs.token_index("nato"))]
    q = cs.query_vector("Which NATO summits?")
    assert set(q.indices) == {cs.token_index("nato"), cs.token_index("summit")} and set(q.values) == {1.0}


def _knns(node, out):
    if isinstance(node, dict):
        if "$knn" in node:
            out.append(node["$knn"])
        for v in node.values():
            _knns(v, out)
    elif isinstance(node, list):
        for v in node:
            _knns(v, out)
    return out


def test_search_request_fuses_dense_and_sparse_knn_by_weighted_rrf():
    request = cs.build_search([0.5] * 384, "NATO summits", pool=30, top_k=6, bm25_weight=0.6).to_dict()
    dense, sparse = _knns(request["rank"], [])
    assert dense["limit"] == sparse["limit"] == 30 and dense["return_rank"] and sparse["return_rank"]
    assert len(dense["query"]) == 384 and dense.get("key", "#embedding") == "#embedding"
    assert sparse["key"] == cs.SPARSE_KEY
    assert sorted(sparse["query"]["indices"]) == sorted({cs.token_index("nato"), cs.token_index("summit")})
    text = str(request["rank"])
    assert "0.4" in text and "0.6" in text and "60" in text  # weights and the RRF constant
    assert request["limit"]["limit"] == 6
    assert {"#document", "#metadata", "#score"} <= set(request["select"]["keys"])


def test_local_chroma_is_detected_once_as_not_supporting_sparse():
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=tempfile.mkdtemp(), settings=Settings(anonymized_telemetry=False))
    cs._probed.clear()
    assert cs.supports_sparse(client, "local-test") is False
    assert "not enabled in local" in cs._probed["local-test#reason"]
    assert client.list_collections() == []  # no probe left behind
    assert cs.supports_sparse(client, "local-test") is False  # cached: asked once


def test_a_supporting_server_is_detected_and_the_probe_removed():
    class Accepting:
        created, deleted = [], []

        def create_collection(self, name, schema=None, embedding_function=None):
            assert cs.SPARSE_KEY in schema.serialize_to_json()["keys"]
            self.created.append(name)

        def delete_collection(self, name):
            self.deleted.append(name)

    client = Accepting()
    cs._probed.clear()
    assert cs.supports_sparse(client, "http://cloud.example") is True
    assert client.created == client.deleted and len(client.created) == 1
    assert cs.supports_sparse(client, "http://cloud.example") is True and len(client.created) == 1


def test_the_retriever_uses_the_server_fusion_and_still_fills_both_signals():
    import numpy as np

    from rag.answer.retriever import HybridRetriever
    from rag.index.store import ChunkHit

    vec = np.zeros(384, dtype=np.float32)
    vec[0] = 1.0
    meta = {"doc_id": "d", "doc_hash": "h", "source": "s", "title": "t", "start": 0, "end": 9, "chunk_index": 0}

    class Chunks:
        def get(self, ids, include):
            return {"ids": ids, "embeddings": [vec for _ in ids]}

    class SparseStore:
        sparse, visibility, generation, chunks = True, None, 0, Chunks()

        def cosines(self, embedding, ids):
            return {i: float(vec @ np.asarray(embedding, dtype=np.float32)) for i in ids}

        def hybrid_search(self, embedding, query, pool, n):
            return [ChunkHit("d:h:0", "NATO text", dict(meta), 0.03), ChunkHit("d:h:1", "other", dict(meta), 0.01)]

    class Lexical:
        def scores_for(self, query, ids):
            return {i: 2.0 for i in ids}

        def top(self, *a):
            raise AssertionError("the local BM25 is not asked when the server fuses")

    class Embed:
        def get_query_embedding(self, q):
            return vec.tolist()

    hits = HybridRetriever(SparseStore(), Embed(), top_k=2, lexical=Lexical()).search("NATO")
    assert [h.node.id_ for h in hits] == ["d:h:0", "d:h:1"] and hits[0].score == 0.03
    assert hits[0].node.metadata["dense_score"] == 1.0 and hits[0].node.metadata["bm25_score"] == 2.0
