"""The Chroma index: chunk vectors plus one record per document.

Two collections per index name:

* ``<name>_chunks``: one entry per chunk (id ``doc_id:hash:index``), its
  embedding, its text, and metadata ``doc_id, doc_hash, source, title,
  chunk_index, start, end``.
* ``<name>_docs``: one entry per document (id ``doc_id``) holding the full
  document text (citations are checked against it), metadata ``source,
  title, doc_hash, n_chunks`` and the mean of its chunk vectors.

Write order makes ingest crash-safe and atomic for readers: a document's
chunks are written first, its record last (the commit point), and only then
are chunks of older versions deleted. Readers only see chunks whose
``doc_hash`` equals the hash in the document's record, so a half-written
document is invisible and a re-run upserts the same ids (no duplicates).
The same code runs on an embedded ``PersistentClient`` and on a Chroma
server (``RAG_CHROMA_URL``): nothing here depends on local files.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .config import Config

WRITE_BATCH = 1024


@dataclass
class DocRecord:
    doc_id: str
    source: str
    title: str
    doc_hash: str
    n_chunks: int
    text: str | None = None

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "source": self.source, "title": self.title,
                "doc_hash": self.doc_hash, "n_chunks": self.n_chunks}


@dataclass
class ChunkHit:
    chunk_id: str
    text: str
    metadata: dict
    score: float


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
        self.chunks = self.client.get_or_create_collection(
            f"{name}_chunks", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
        self.docs = self.client.get_or_create_collection(f"{name}_docs", embedding_function=None)
        self._text_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._manifest: dict[str, str] | None = None
        self._manifest_at = 0.0
        self._lock = threading.RLock()

    # ------------------------------------------------------------ reading

    def documents(self) -> list[DocRecord]:
        """All committed documents (metadata only), sorted by source."""
        got = self.docs.get(include=["metadatas"])
        records = [DocRecord(doc_id=i, source=m["source"], title=m["title"], doc_hash=m["doc_hash"],
                             n_chunks=int(m["n_chunks"])) for i, m in zip(got["ids"], got["metadatas"])]
        return sorted(records, key=lambda r: r.source)

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

    def document(self, doc_id: str) -> DocRecord:
        """One document with its full text."""
        got = self.docs.get(ids=[doc_id], include=["metadatas", "documents"])
        if not got["ids"]:
            raise Store.DoesNotExist(doc_id)
        m = got["metadatas"][0]
        return DocRecord(doc_id=doc_id, source=m["source"], title=m["title"], doc_hash=m["doc_hash"],
                         n_chunks=int(m["n_chunks"]), text=got["documents"][0])

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

    def query(self, embedding: list[float], n: int) -> list[ChunkHit]:
        """Nearest visible chunks by cosine similarity (score in [-1, 1])."""
        total = self.chunks.count()
        if total == 0:
            return []
        manifest = self.manifest()
        want = min(total, max(n * 2, n + 8))
        while True:
            got = self.chunks.query(query_embeddings=[embedding], n_results=want,
                                    include=["documents", "metadatas", "distances"])
            hits = [ChunkHit(i, t, m, 1.0 - float(d)) for i, t, m, d in
                    zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])
                    if manifest.get(m["doc_id"]) == m["doc_hash"]]
            if len(hits) >= n or want >= total:
                return hits[:n]
            want = min(total, want * 4)

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
            self.chunks.upsert(ids=[n.id_ for n in part], documents=[n.text for n in part],
                               metadatas=[n.metadata for n in part],
                               embeddings=vectors[start : start + len(part)])
        ids, texts, means, metas = [], [], [], []
        for doc, ns, v in items:
            meta = doc.metadata
            mean = v.mean(axis=0) if len(v) else np.zeros(384)
            means.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            ids.append(meta["doc_id"])
            texts.append(doc.text)
            metas.append({"source": meta["source"], "title": meta["title"], "doc_hash": meta["doc_hash"],
                          "n_chunks": len(ns)})
        if ids:
            self.docs.upsert(ids=ids, documents=texts, embeddings=np.vstack(means), metadatas=metas)
        for doc, _, _ in items:
            if doc.metadata["doc_id"] in replaces:
                self._drop_chunks(doc.metadata["doc_id"], keep_hash=doc.metadata["doc_hash"])
        self.invalidate()

    def delete(self, doc_id: str) -> DocRecord:
        """Remove a document: its record first (readers stop seeing it), then its chunks."""
        got = self.docs.get(ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            raise Store.DoesNotExist(doc_id)
        m = got["metadatas"][0]
        record = DocRecord(doc_id, m["source"], m["title"], m["doc_hash"], int(m["n_chunks"]))
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
        """Delete chunks no committed record points to (left by an interrupted run)."""
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
