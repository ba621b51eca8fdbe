"""The Chroma index: chunk vectors plus one record per document.

Two collections per index name:

* ``<name>_chunks``: one entry per chunk (id ``doc_id:hash:index``), its
  embedding, its text, and metadata ``doc_id, doc_hash, source, title,
  chunk_index, start, end``.
* ``<name>_docs``: one entry per document (id ``doc_id``) holding the full
  document text (citations are checked against it), metadata ``source,
  title, doc_hash, n_chunks, committed_at`` (+ ``size`` in bytes, when known) and the mean of its chunk vectors.
  ``committed_at`` is the writer's clock at the commit point: replicas read
  only the records newer than their watermark (``rag.index.lexical_index``).
* ``<name>_deletes``: one tombstone per deleted document (id ``doc_id``,
  metadata ``deleted_at``), written *before* the record is removed, so every
  replica learns of a delete from Chroma; purged after a week by
  ``collect_garbage``.

Write order makes ingest crash-safe and atomic for readers: a document's
chunks are written first, its record last (the commit point), and only then
are chunks of older versions deleted. Readers only see chunks whose
``doc_hash`` equals the hash in the document's record, so a half-written
document is invisible and a re-run upserts the same ids (no duplicates).
The same code runs on an embedded ``PersistentClient`` and on a Chroma
server (``RAG_CHROMA_URL``): nothing here depends on local files.

Which version of a document is committed is asked of ``visibility`` when a
catalog is attached (``rag.index.lexical_index.LexicalIndex`` attaches itself: both
retrieval signals then read one snapshot, with no full read of the docs
collection per process); without one, of a manifest re-read once a second.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rag.config import Config

DEFAULT_COLLECTION = "default"
WRITE_BATCH = 1024
RECORD_BATCH = 64  # records committed (and stamped) per request


def _clean(meta: dict) -> dict:
    """Chunk metadata as callers know it (without Chroma's sparse vector, when one is stored)."""
    if "bm25_sparse" in meta:
        meta = {k: v for k, v in meta.items() if k != "bm25_sparse"}
    return meta


@dataclass
class DocRecord:
    doc_id: str
    source: str
    title: str
    doc_hash: str
    n_chunks: int
    text: str | None = None
    committed_at: float | None = None
    size: int | None = None  # bytes of the file as read or uploaded (None: indexed before sizes were kept)
    collection: str = "default"
    page_starts: list[int] | None = None  # paged documents (PDFs): where each page begins in the text

    @property
    def pages(self) -> int | None:
        return len(self.page_starts) if self.page_starts else None

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "source": self.source, "title": self.title,
                "doc_hash": self.doc_hash, "n_chunks": self.n_chunks}


@dataclass
class ChunkHit:
    chunk_id: str
    text: str
    metadata: dict
    score: float


def _record_extras(meta: dict) -> dict:
    """A document's collection and page map as record metadata (Chroma holds scalars only)."""
    out = {"collection": meta.get("collection") or DEFAULT_COLLECTION}
    if meta.get("page_starts"):
        out["page_starts"] = json.dumps(meta["page_starts"])
    return out


def _record(doc_id: str, m: dict, text: str | None = None) -> DocRecord:
    at = m.get("committed_at")
    size = m.get("size")
    return DocRecord(doc_id=doc_id, source=m["source"], title=m["title"], doc_hash=m["doc_hash"],
                     n_chunks=int(m["n_chunks"]), text=text, committed_at=None if at is None else float(at),
                     size=None if size is None else int(size),
                     collection=m.get("collection") or DEFAULT_COLLECTION,
                     page_starts=json.loads(m["page_starts"]) if m.get("page_starts") else None)


def _client(config: Config):
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if config.chroma_url:
        url = urlparse(config.chroma_url if "://" in config.chroma_url else f"http://{config.chroma_url}")
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                   ssl=url.scheme == "https", settings=settings)
    path = Path(config.data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class Store:
    """Documents and their chunk vectors in Chroma (embedded or server)."""

    class DoesNotExist(KeyError):
        """No document with that id."""

    def __init__(self, config: Config):
        self.config = config
        self.client = _client(config)
        name = config.collection
        self.sparse = False  # Chroma's own sparse BM25 + Search() hybrid (rag/index/chroma_sparse.py)
        extra = {}
        if config.chroma_url:
            from rag.index import chroma_sparse

            if chroma_sparse.mode() in ("auto", "on") and chroma_sparse.supports_sparse(self.client, config.chroma_url):
                extra = {"schema": chroma_sparse.chunks_schema()}
        self.chunks = self.client.get_or_create_collection(
            f"{name}_chunks", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, **extra)
        if extra:
            from rag.index.chroma_sparse import SPARSE_KEY

            schema = getattr(self.chunks, "schema", None)
            self.sparse = bool(schema is not None and SPARSE_KEY in getattr(schema, "keys", {}))
        self.docs = self.client.get_or_create_collection(f"{name}_docs", embedding_function=None)
        self._text_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._manifest: dict[str, str] | None = None
        self._manifest_at = 0.0
        self._lock = threading.RLock()
        self._deletes = None
        self._counted: tuple[int, int, float] | None = None
        self.generation = 0  # bumped by every write through this object (read-your-writes for catalogs)
        self.visibility = None  # (pairs) -> the committed (doc_id, doc_hash) among them; see LexicalIndex

    @property
    def deletes(self):
        """The tombstone collection (created on first use)."""
        if self._deletes is None:
            self._deletes = self.client.get_or_create_collection(f"{self.config.collection}_deletes",
                                                                 embedding_function=None)
        return self._deletes

    def collection_ids(self) -> list[str]:
        """Ids of the chunk and record collections (a recreated index gets new ones)."""
        return [str(self.chunks.id), str(self.docs.id)]

    # ------------------------------------------------------------ reading

    def documents(self) -> list[DocRecord]:
        """All committed documents (metadata only), sorted by source."""
        got = self.docs.get(include=["metadatas"])
        records = [_record(i, m) for i, m in zip(got["ids"], got["metadatas"])]
        return sorted(records, key=lambda r: r.source)

    def catalog(self, max_age: float = 1.0) -> list[DocRecord]:
        """``documents()`` re-read at most every ``max_age`` s and after every write through this
        object (scopes resolve against it on every question)."""
        now = time.monotonic()
        cached = getattr(self, "_records", None)
        if cached is None or cached[1] != self.generation or now - cached[2] > max_age:
            cached = self._records = (self.documents(), self.generation, now)
        return cached[0]

    def all_records(self, page: int = 5000) -> list[DocRecord]:
        """Every committed record (metadata only), read in pages."""
        out: list[DocRecord] = []
        offset = 0
        while True:
            got = self.docs.get(include=["metadatas"], limit=page, offset=offset)
            out += [_record(i, m) for i, m in zip(got["ids"], got["metadatas"])]
            if len(got["ids"]) < page:
                return out
            offset += page

    def records(self, doc_ids: list[str]) -> list[DocRecord]:
        """The current records of these documents (missing ones are absent)."""
        out: list[DocRecord] = []
        for start in range(0, len(doc_ids), 1000):
            got = self.docs.get(ids=doc_ids[start : start + 1000], include=["metadatas"])
            out += [_record(i, m) for i, m in zip(got["ids"], got["metadatas"])]
        return out

    def records_since(self, since: float) -> list[DocRecord]:
        """Records committed at or after ``since`` (writer's clock, seconds since the epoch)."""
        got = self.docs.get(where={"committed_at": {"$gte": float(since)}}, include=["metadatas"])
        return [_record(i, m) for i, m in zip(got["ids"], got["metadatas"])]

    def tombstones_since(self, since: float) -> dict[str, float]:
        """doc_id -> deleted_at of the deletes at or after ``since``."""
        got = self.deletes.get(where={"deleted_at": {"$gte": float(since)}}, include=["metadatas"])
        return {i: float(m["deleted_at"]) for i, m in zip(got["ids"], got["metadatas"])}

    def committed_chunks(self, versions: list[tuple[str, str]]) -> dict[str, list[tuple[str, str, dict]]]:
        """doc_id -> [(chunk_id, text, metadata)] of the given (doc_id, doc_hash) versions, in chunk order."""
        want = dict(versions)
        out: dict[str, list] = {d: [] for d in want}
        if not want:
            return out
        ids = sorted(want)
        where = {"doc_id": ids[0]} if len(ids) == 1 else {"doc_id": {"$in": ids}}
        got = self.chunks.get(where=where, include=["documents", "metadatas"])
        for i, t, m in zip(got["ids"], got["documents"], got["metadatas"]):
            if want.get(m["doc_id"]) == m["doc_hash"]:
                out[m["doc_id"]].append((i, t, _clean(m)))
        for chunks in out.values():
            chunks.sort(key=lambda c: int(c[2].get("chunk_index", 0)))
        return out

    def manifest(self, max_age: float = 1.0) -> dict[str, str]:
        """doc_id -> committed doc_hash; re-read at most every ``max_age`` seconds."""
        with self._lock:
            now = time.monotonic()
            if self._manifest is None or now - self._manifest_at > max_age:
                self._manifest = {r.doc_id: r.doc_hash for r in self.documents()}
                self._manifest_at = now
            return self._manifest

    def invalidate(self) -> None:
        with self._lock:
            self._manifest = None
            self.generation += 1

    def document(self, doc_id: str) -> DocRecord:
        """One document with its full text."""
        got = self.docs.get(ids=[doc_id], include=["metadatas", "documents"])
        if not got["ids"]:
            raise Store.DoesNotExist(doc_id)
        return _record(doc_id, got["metadatas"][0], got["documents"][0])

    def document_text(self, doc_id: str, doc_hash: str) -> str:
        """Full text of one version of a document (cached); DoesNotExist if that version is gone."""
        key = (doc_id, doc_hash)
        with self._lock:
            if key in self._text_cache:
                self._text_cache.move_to_end(key)
                return self._text_cache[key]
        record = self.document(doc_id)
        if record.doc_hash != doc_hash:
            raise Store.DoesNotExist(f"{doc_id} changed while answering")
        with self._lock:
            self._text_cache[key] = record.text
            while len(self._text_cache) > 256:
                self._text_cache.popitem(last=False)
        return record.text

    def chunk_count(self) -> int:
        return self.chunks.count()

    def is_empty(self) -> bool:
        """No committed document (one count, not a read of every record as ``documents()``)."""
        return self.docs.count() == 0

    def _count(self, max_age: float = 1.0) -> int:
        """Chunk count for query sizing, re-read at most every ``max_age`` s (a round trip on a server)."""
        now = time.monotonic()
        if self._counted is None or self._counted[1] != self.generation or now - self._counted[2] > max_age:
            self._counted = (self.chunks.count(), self.generation, now)
        return self._counted[0]

    def query(self, embedding: list[float], n: int, doc_ids: frozenset[str] | None = None) -> list[ChunkHit]:
        """Nearest visible chunks by cosine similarity (score in [-1, 1]); only chunks of ``doc_ids``
        when given (a scope: Chroma filters on the chunk's ``doc_id``)."""
        if doc_ids is not None and not doc_ids:
            return []
        total = self._count()
        if total == 0:
            return []
        where = None if doc_ids is None else {"doc_id": {"$in": sorted(doc_ids)}}
        want = min(total, max(n * 2, n + 8))
        while True:
            got = self.chunks.query(query_embeddings=[embedding], n_results=want, where=where,
                                    include=["documents", "metadatas", "distances"])
            visible = self._committed([(m["doc_id"], m["doc_hash"]) for m in got["metadatas"][0]])
            hits = [ChunkHit(i, t, _clean(m), 1.0 - float(d)) for i, t, m, d in
                    zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])
                    if (m["doc_id"], m["doc_hash"]) in visible]
            if len(hits) >= n or want >= total or len(got["ids"][0]) < want:
                return hits[:n]
            want = min(total, want * 4)

    def cosines(self, embedding: list[float], chunk_ids: list[str]) -> dict[str, float]:
        """Exact cosine of the query to given chunks (absent ids are left out). The vectors are
        fetched: a query filtered to these ids took 150-190 ms on a 100k-chunk server, the get 7-14."""
        out: dict[str, float] = {}
        if not chunk_ids:
            return out
        got = self.chunks.get(ids=chunk_ids, include=["embeddings"])
        q = np.asarray(embedding, dtype=np.float32)
        for i, emb in zip(got["ids"], got["embeddings"]):
            out[i] = float(np.asarray(emb, dtype=np.float32) @ q)
        return out

    def hybrid_search(self, embedding: list[float], query: str, pool: int, n: int) -> list[ChunkHit]:
        """Chroma's dense + sparse RRF (only when ``self.sparse``); score = fused RRF score."""
        from rag.index.chroma_sparse import SPARSE_KEY, build_search

        got = self.chunks.search(build_search(embedding, query, pool, max(n * 2, n + 8)))
        rows = got.rows()[0] if hasattr(got, "rows") else []
        metas = [dict(r.get("metadata") or {}) for r in rows]
        visible = self._committed([(m.get("doc_id"), m.get("doc_hash")) for m in metas])
        hits = []
        for r, m in zip(rows, metas):
            m.pop(SPARSE_KEY, None)
            if (m.get("doc_id"), m.get("doc_hash")) in visible:
                hits.append(ChunkHit(r["id"], r.get("document") or "", m, -float(r.get("score") or 0.0)))
        return hits[:n]

    def _committed(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if self.visibility is not None:
            return self.visibility(pairs)
        manifest = self.manifest()
        return {p for p in pairs if manifest.get(p[0]) == p[1]}

    def visible_chunks(self) -> tuple[list[str], list[str], list[dict]]:
        """Every committed chunk: ids, texts, metadatas (used to build the lexical index)."""
        manifest = self.manifest(max_age=0)
        ids, texts, metas = [], [], []
        total = self.chunks.count()
        for offset in range(0, total, 5000):
            got = self.chunks.get(include=["documents", "metadatas"], limit=5000, offset=offset)
            for i, t, m in zip(got["ids"], got["documents"], got["metadatas"]):
                if manifest.get(m["doc_id"]) == m["doc_hash"]:
                    ids.append(i)
                    texts.append(t)
                    metas.append(m)
        return ids, texts, metas

    def state_token(self) -> tuple:
        """Changes whenever a document is committed or deleted (for cache invalidation)."""
        manifest = self.manifest(max_age=0.5)
        return (len(manifest), hash(frozenset(manifest.items())))

    # ------------------------------------------------------------ writing

    def write(self, doc, nodes, embeddings: np.ndarray, replaces: bool = True) -> None:
        """Commit one document version: chunks, then the record, then drop stale chunks."""
        self.write_many([(doc, nodes, embeddings)], {doc.metadata["doc_id"]} if replaces else set())

    def write_many(self, items: list, replaces: set[str]) -> None:
        """Commit several documents: all their chunks, then all their records (the commit
        point), then stale chunks of the documents in ``replaces`` (ids that had a record)."""
        nodes = [n for _, ns, _ in items for n in ns]
        vectors = np.vstack([v for _, ns, v in items if len(ns)]) if nodes else np.zeros((0, 384))
        for start in range(0, len(nodes), WRITE_BATCH):
            part = nodes[start : start + WRITE_BATCH]
            metadatas = [n.metadata for n in part]
            if self.sparse:
                from rag.index.chroma_sparse import SPARSE_KEY, sparse_vector

                metadatas = [{**m, SPARSE_KEY: sparse_vector(n.text)} for m, n in zip(metadatas, part)]
            self.chunks.upsert(ids=[n.id_ for n in part], documents=[n.text for n in part],
                               metadatas=metadatas,
                               embeddings=vectors[start : start + len(part)])
        for start in range(0, len(items), RECORD_BATCH):
            ids, texts, means, metas = [], [], [], []
            # the commit point's clock, stamped right before the records become visible (replicas
            # read records stamped after their watermark minus a slack; small batches keep the
            # stamp-to-visible delay well inside it)
            committed_at = time.time()
            for doc, ns, v in items[start : start + RECORD_BATCH]:
                meta = doc.metadata
                mean = v.mean(axis=0) if len(v) else np.zeros(384)
                means.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
                ids.append(meta["doc_id"])
                texts.append(doc.text)
                metas.append({"source": meta["source"], "title": meta["title"], "doc_hash": meta["doc_hash"],
                              "n_chunks": len(ns), "committed_at": committed_at,
                              **({"size": int(meta["size"])} if meta.get("size") is not None else {}),
                              **_record_extras(meta)})
            self.docs.upsert(ids=ids, documents=texts, embeddings=np.vstack(means), metadatas=metas)
        for doc, _, _ in items:
            if doc.metadata["doc_id"] in replaces:
                self._drop_chunks(doc.metadata["doc_id"], keep_hash=doc.metadata["doc_hash"])
        self.invalidate()

    def move(self, doc_id: str, collection: str) -> DocRecord:
        """Put a document in another collection: its record changes (and is stamped, so replicas
        see it); its chunks stay (scopes filter by doc_id)."""
        got = self.docs.get(ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            raise Store.DoesNotExist(doc_id)
        meta = {**got["metadatas"][0], "collection": collection, "committed_at": time.time()}
        self.docs.update(ids=[doc_id], metadatas=[meta])
        self.invalidate()
        return _record(doc_id, meta)

    def delete(self, doc_id: str) -> DocRecord:
        """Remove a document: a tombstone (replicas learn of it), its record (readers stop seeing
        it), then its chunks. A crash after the tombstone leaves the document in place everywhere:
        replicas check the record itself when they see a tombstone."""
        got = self.docs.get(ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            raise Store.DoesNotExist(doc_id)
        record = _record(doc_id, got["metadatas"][0])
        self.deletes.upsert(ids=[doc_id], embeddings=[[1.0]], metadatas=[{"deleted_at": time.time()}])
        self.docs.delete(ids=[doc_id])
        self.invalidate()
        self._drop_chunks(doc_id)
        return record

    def _drop_chunks(self, doc_id: str, keep_hash: str | None = None) -> None:
        where: dict = {"doc_id": doc_id}
        if keep_hash is not None:
            where = {"$and": [{"doc_id": doc_id}, {"doc_hash": {"$ne": keep_hash}}]}
        self.chunks.delete(where=where)

    def collect_garbage(self) -> int:
        """Delete chunks no committed record points to (left by an interrupted run), and
        tombstones older than a week (a replica idle that long compares every record)."""
        from rag.index.lexical_index import TOMBSTONE_TTL

        self.deletes.delete(where={"deleted_at": {"$lt": time.time() - TOMBSTONE_TTL}})
        manifest = self.manifest(max_age=0)
        expected = sum(r.n_chunks for r in self.documents())
        if self.chunks.count() == expected:
            return 0
        stale = []
        total = self.chunks.count()
        for offset in range(0, total, 5000):
            got = self.chunks.get(include=["metadatas"], limit=5000, offset=offset)
            stale += [i for i, m in zip(got["ids"], got["metadatas"])
                      if manifest.get(m["doc_id"]) != m["doc_hash"]]
        for start in range(0, len(stale), WRITE_BATCH):
            self.chunks.delete(ids=stale[start : start + WRITE_BATCH])
        return len(stale)
