"""A persistent, incremental BM25 index in SQLite (FTS5), kept in step with Chroma.

One file per process data directory and index:
``DATA_DIR/lexical/<collection>-<local|server hash>.sqlite``. With a Chroma
server (``RAG_CHROMA_URL``) every replica keeps its own file in its own
``DATA_DIR`` and catches up from Chroma; the file is a cache that can be
deleted at any time (the next reader rebuilds it from Chroma).

Tokens are ours (``rag.index.lexical.tokenize``: stopwords, plural folding): each
chunk is stored pre-tokenized and FTS5 (``ascii`` tokenizer) only splits on
the spaces between them. FTS5's own ``bm25()`` uses a different idf
(``log((N-df+0.5)/(df+0.5))``, clamped near 0 for common terms), so it only
*proposes* candidates (a deep pool); every returned score is our exact Okapi
BM25 (k1 1.2, b 0.75, idf ``log(1+(N-df+0.5)/(df+0.5))``) from the stored
tokens, df from ``fts5vocab`` and N / total length kept in ``meta``.

Catch-up (``sync``): Chroma holds the truth. Each document record carries
``committed_at`` (writer's clock, stamped at the commit point) and each delete
leaves a tombstone in ``<name>_deletes`` (see ``rag.index.store``). A replica reads
only the records and tombstones stamped at or after its watermark minus
``SYNC_SLACK`` seconds (writers' clocks and the stamp-to-visible delay may
differ by that much), and reconciles each named document against the current
records: a new ``doc_hash`` -> its chunks are fetched and replace the old ones
in one transaction; no record -> its chunks leave. A record is applied only when
Chroma holds all of its chunks (``n_chunks``), so a half-written document is
invisible here too. A fresh file, a different Chroma collection (recreated
index) or a replica idle for longer than half the tombstone lifetime does one
full pass over the records instead. Nothing is rebuilt wholesale in normal
operation: the cost of a write is the cost of its document.

The index also answers "which version of a document is committed?" for the
dense side (``visible``), so both signals read the same snapshot and no
process scans the whole docs collection to learn it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag.index.lexical import tokenize

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
K1, B = 1.2, 0.75
SYNC_SLACK = float(os.environ.get("RAG_SYNC_SLACK", "15"))  # seconds re-read behind the watermark
TOMBSTONE_TTL = 7 * 24 * 3600.0  # tombstones older than this are purged (rag/index/store.py collect_garbage)
DOC_BATCH = 64  # documents whose chunks are fetched from Chroma in one request
CANDIDATES = 3  # FTS5 proposes CANDIDATES * n (at least MIN_CANDIDATES) rows; exact BM25 picks n
MIN_CANDIDATES = 60


def bm25_idf(n: int, df: int) -> float:
    """Okapi BM25 idf with the +1 inside the log (never negative), as in ``rag.index.lexical.BM25``."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def index_path(config) -> Path:
    where = "local" if not config.chroma_url else hashlib.sha256(config.chroma_url.encode()).hexdigest()[:12]
    return Path(config.data_dir) / "lexical" / f"{config.collection}-{where}.sqlite"


@dataclass
class SyncReport:
    mode: str = "poll"  # poll | full
    seen: int = 0  # records and tombstones read from Chroma
    indexed: list[str] = field(default_factory=list)  # doc ids (re)indexed
    removed: list[str] = field(default_factory=list)  # doc ids dropped
    pending: list[str] = field(default_factory=list)  # records whose chunks are not all in Chroma yet
    chunks: int = 0
    seconds: float = 0.0


class Idf(Mapping):
    """term -> BM25 idf over the current index, looked up on demand (the old in-memory
    ``BM25.idf`` dict, same meaning). Terms that occur nowhere are missing, as before.

    ``values()`` returns only the largest idf, that of a term in one chunk (the rarest
    possible; every real corpus has such terms): that is all callers use
    (``max(idf.values())``), and listing the vocabulary's df is a scan of every posting."""

    def __init__(self, index: "LexicalIndex"):
        self._index = index

    def __getitem__(self, term: str) -> float:
        n, df = self._index._n_df([term])
        if not df.get(term):
            raise KeyError(term)
        return bm25_idf(n, df[term])

    def get(self, term, default=None):
        try:
            return self[term]
        except KeyError:
            return default

    def __contains__(self, term) -> bool:
        return self.get(term) is not None

    def __iter__(self):
        conn = self._index._conn()
        return iter([row[0] for row in conn.execute("SELECT term FROM vocab")])

    def __len__(self) -> int:
        return self._index._conn().execute("SELECT count(*) FROM vocab").fetchone()[0]

    def values(self):
        return self._index._max_idf()


class LexicalIndex:
    """BM25 over the store's committed chunks, persistent in SQLite, caught up from Chroma.

    ``top`` and ``scores_for`` first call ``refresh``: at most every ``check_every``
    seconds (at once after a write through the same ``Store``) it reads what changed in
    Chroma since the last look and applies it. Attaches itself to the store as its
    catalog of committed versions (``store.visibility``)."""

    def __init__(self, store, check_every: float = 1.0, path: Path | None = None):
        self.store = store
        self.check_every = check_every
        self.path = Path(path) if path else index_path(store.config)
        self._local = threading.local()
        self._sync_lock = threading.Lock()
        self._checked = float("-inf")
        self._generation = None
        self._identity_checked = False
        self._cache_version = None
        self._df_cache: dict[str, int] = {}
        self.idf = Idf(self)
        self.last_sync: SyncReport | None = None
        store.visibility = self.visible

    @classmethod
    def for_store(cls, store, **kwargs) -> "LexicalIndex":
        """The index already attached to ``store``, else a new one (one catalog per store)."""
        attached = getattr(store.visibility, "__self__", None)
        if isinstance(attached, cls) and not kwargs:
            return attached
        return cls(store, **kwargs)

    # ------------------------------------------------------------ sqlite

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._create(conn)
            self._local.conn = conn
        return conn

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        have = conn.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone()
        if have:
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row and int(row[0]) == SCHEMA_VERSION:
                return
        conn.executescript(f"""
            BEGIN IMMEDIATE;
            DROP TABLE IF EXISTS vocab; DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS chunks;
            DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS meta;
            CREATE TABLE meta(key TEXT PRIMARY KEY, value);
            CREATE TABLE docs(doc_id TEXT PRIMARY KEY, doc_hash TEXT NOT NULL, committed_at REAL,
                              n_chunks INTEGER NOT NULL);
            CREATE TABLE chunks(id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
                                length INTEGER NOT NULL, tokens TEXT NOT NULL, text TEXT NOT NULL,
                                meta TEXT NOT NULL);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            CREATE VIRTUAL TABLE fts USING fts5(tokens, content='chunks', content_rowid='id', tokenize='ascii');
            CREATE VIRTUAL TABLE vocab USING fts5vocab(fts, 'row');
            INSERT INTO meta VALUES ('schema', {SCHEMA_VERSION}), ('n', 0), ('total_len', 0), ('version', 0);
            COMMIT;
        """)

    def _meta(self, conn, *keys):
        rows = dict(conn.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})", keys))
        return [rows.get(k) for k in keys]

    @staticmethod
    def _set_meta(conn, **values) -> None:
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    # ------------------------------------------------------------ reading

    @property
    def bm25(self) -> "LexicalIndex":
        """Compatibility: ``lexical.bm25.idf`` (and ``.n``) as with the old in-memory BM25."""
        return self

    @property
    def n(self) -> int:
        return int(self._meta(self._conn(), "n")[0] or 0)

    def __len__(self) -> int:
        return self.n

    def _stats(self, conn) -> tuple[int, float]:
        n, total, version = self._meta(conn, "n", "total_len", "version")
        if version != self._cache_version:
            self._cache_version, self._df_cache = version, {}
        n = int(n or 0)
        return n, (float(total or 0) / n if n else 1.0)

    def _n_df(self, terms) -> tuple[int, dict[str, int]]:
        conn = self._conn()
        n, _ = self._stats(conn)
        cache = self._df_cache
        if len(cache) > 100_000:
            cache.clear()
        for t in set(terms):
            if t not in cache:  # one seek per term (fts5vocab plans "term = ?", not IN lists)
                row = conn.execute("SELECT doc FROM vocab WHERE term = ?", (t,)).fetchone()
                cache[t] = int(row[0]) if row else 0
        return n, {t: cache.get(t, 0) for t in terms}

    def _max_idf(self) -> list[float]:
        conn = self._conn()
        n, _ = self._stats(conn)
        return [bm25_idf(n, 1)] if n else []

    def _exact(self, conn, terms: list[str], rows) -> list[tuple[tuple, float]]:
        """Exact BM25 of ``rows`` (tuples whose [1] is length and [2] tokens)."""
        n, avgdl = self._stats(conn)
        _, df = self._n_df(terms)
        idf = [(t, bm25_idf(n, df[t])) for t in terms if df[t]]
        out = []
        for row in rows:
            tokens = row[2].split()
            norm = K1 * (1 - B + B * row[1] / max(avgdl, 1e-9))
            score = 0.0
            for t, w in idf:
                tf = tokens.count(t)  # a C loop per query term: cheaper than a Counter of the chunk
                if tf:
                    score += w * tf * (K1 + 1) / (tf + norm)
            out.append((row, score))
        return out

    def top(self, query: str, n: int, doc_ids: frozenset[str] | None = None) -> list[tuple[str, str, dict, float]]:
        """(chunk_id, text, metadata, score) of the best ``n`` chunks with a positive score; only
        chunks of ``doc_ids`` when given (a scope)."""
        self.refresh()
        terms = sorted(set(tokenize(query)))
        if not terms or n <= 0 or (doc_ids is not None and not doc_ids):
            return []
        conn = self._conn()
        depth = max(CANDIDATES * n, MIN_CANDIDATES)
        total, df = self._n_df(terms)
        # Terms in more than half the chunks have idf <= 0 in FTS5's bm25 (it clamps them to ~0), so
        # they do not order its candidates, yet walking their postings is most of the query's cost.
        # Match on the other terms; a chunk holding only common terms scores at most ``bound``, so
        # the result is exact whenever the n-th best candidate beats that (else: match all terms).
        rare = [t for t in terms if 0 < df[t] <= total / 2]
        common = [t for t in terms if df[t] > total / 2]
        bound = sum(bm25_idf(total, df[t]) * (K1 + 1) for t in common)
        scope = None if doc_ids is None else json.dumps(sorted(doc_ids))
        best = self._best(conn, rare, terms, n, depth, scope) if rare and common else None
        if best is None or len(best) < n or best[-1][1] <= bound:
            best = self._best(conn, terms, terms, n, depth, scope)
        if not best:
            return []
        got = {r[0]: r[1:] for r in conn.execute(
            f"SELECT id, chunk_id, text, meta FROM chunks WHERE id IN ({','.join('?' * len(best))})",
            [rowid for rowid, _ in best])}
        return [(got[rowid][0], got[rowid][1], json.loads(got[rowid][2]), float(s))
                for rowid, s in best if rowid in got]

    def _best(self, conn, match_terms, terms, n, depth, scope: str | None = None) -> list[tuple[int, float]]:
        """(rowid, exact score) of the best ``n`` among FTS5's top ``depth`` for ``match_terms``
        (among the chunks of the doc_ids in the JSON list ``scope``, when given)."""
        match = " OR ".join(f'"{t}"' for t in match_terms)
        if scope is None:
            rows = conn.execute(
                "SELECT c.id, c.length, c.tokens FROM "
                "(SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?) AS hit "
                "JOIN chunks AS c ON c.id = hit.rowid", (match, depth)).fetchall()
        else:  # the scope's chunks (by the doc_id index), then FTS5's order among them
            rows = conn.execute(
                "SELECT c.id, c.length, c.tokens FROM fts JOIN chunks AS c ON c.id = fts.rowid "
                "WHERE fts MATCH ? AND c.doc_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY bm25(fts) LIMIT ?", (match, scope, depth)).fetchall()
        scored = [(row[0], s) for row, s in self._exact(conn, terms, rows) if s > 0]
        scored.sort(key=lambda rs: (-rs[1], rs[0]))
        return scored[:n]

    def scores_for(self, query: str, chunk_ids: list[str]) -> dict[str, float]:
        """Exact BM25 scores of given chunks (0 for chunks not in the index)."""
        terms = sorted(set(tokenize(query)))
        out = {cid: 0.0 for cid in chunk_ids}
        if not terms or not chunk_ids:
            return out
        conn = self._conn()
        rows = []
        for start in range(0, len(chunk_ids), 500):
            part = chunk_ids[start : start + 500]
            rows += conn.execute(f"SELECT chunk_id, length, tokens FROM chunks WHERE chunk_id IN "
                                 f"({','.join('?' * len(part))})", part).fetchall()
        for row, score in self._exact(conn, terms, rows):
            out[row[0]] = float(score)
        return out

    def visible(self, pairs) -> set[tuple[str, str]]:
        """The (doc_id, doc_hash) pairs among ``pairs`` that are committed (as of the last catch-up)."""
        self.refresh()
        ids = sorted({d for d, _ in pairs})
        if not ids:
            return set()
        conn = self._conn()
        have = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            have |= set(conn.execute(f"SELECT doc_id, doc_hash FROM docs WHERE doc_id IN "
                                     f"({','.join('?' * len(part))})", part).fetchall())
        return {p for p in pairs if p in have}

    def manifest(self) -> dict[str, str]:
        """doc_id -> doc_hash of every indexed document (a full read of the local file)."""
        return dict(self._conn().execute("SELECT doc_id, doc_hash FROM docs"))

    # ------------------------------------------------------------ catching up

    def refresh(self, force: bool = False) -> None:
        """Catch up with Chroma: now if ``force`` or the store saw a write since the last look,
        else at most every ``check_every`` seconds. Never blocks a reader behind another sync."""
        now = time.monotonic()
        generation = getattr(self.store, "generation", None)
        due = force or generation != self._generation or now - self._checked >= self.check_every
        if not due:
            return
        if not self._sync_lock.acquire(blocking=force or generation != self._generation):
            return
        try:
            self._generation = generation
            try:
                self.last_sync = self._sync()
            except Exception:  # noqa: BLE001  (a reader keeps answering from the last good state)
                if force:
                    raise
                log.exception("lexical index: catch-up from Chroma failed; answering from the last state")
            self._checked = time.monotonic()
        finally:
            self._sync_lock.release()

    def sync(self, full: bool = False) -> SyncReport:
        """Catch up now (``full``: compare every record instead of reading only the new ones)."""
        with self._sync_lock:
            self._generation = getattr(self.store, "generation", None)
            self.last_sync = self._sync(full)
            self._checked = time.monotonic()
            return self.last_sync

    def _sync(self, full: bool = False) -> SyncReport:
        started = time.perf_counter()
        conn = self._conn()
        store = self.store
        if not self._identity_checked:
            identity = json.dumps(store.collection_ids())
            if self._meta(conn, "identity")[0] != identity:
                self._reset(conn, identity)
            self._identity_checked = True
        watermark, last_poll, pending = self._meta(conn, "watermark", "last_poll", "pending")
        pending = set(json.loads(pending or "[]"))
        full = full or watermark is None or (time.time() - float(last_poll or 0)) > TOMBSTONE_TTL / 2
        report = SyncReport(mode="full" if full else "poll")
        polled_at = time.time()
        if full:
            records = {r.doc_id: r for r in store.all_records()}
            report.seen = len(records)
            local = dict(conn.execute("SELECT doc_id, doc_hash FROM docs"))
            gone = set(local) - set(records)
            changed = [r for r in records.values() if local.get(r.doc_id) != r.doc_hash]
            marks = [r.committed_at or 0.0 for r in records.values()]
        else:
            since = float(watermark) - SYNC_SLACK
            fresh = store.records_since(since)
            tombs = store.tombstones_since(since)
            report.seen = len(fresh) + len(tombs)
            marks = [r.committed_at or 0.0 for r in fresh] + list(tombs.values())
            records = {r.doc_id: r for r in fresh}
            recheck = (set(tombs) | pending) - set(records)
            if recheck:
                records.update({r.doc_id: r for r in store.records(sorted(recheck))})
            named = sorted(set(records) | recheck)
            local = self._local_hashes(conn, named)
            gone = {d for d in recheck if d not in records and d in local}
            changed = [r for r in records.values() if local.get(r.doc_id) != r.doc_hash]
        if gone:
            self._remove(conn, sorted(gone))
            report.removed = sorted(gone)
        still_pending = set()
        for start in range(0, len(changed), DOC_BATCH):
            batch = changed[start : start + DOC_BATCH]
            chunks = store.committed_chunks([(r.doc_id, r.doc_hash) for r in batch])
            ready = []
            for r in batch:
                got = chunks.get(r.doc_id, [])
                if len(got) == r.n_chunks:
                    ready.append((r, got))
                else:  # replaced or deleted meanwhile (the next look sees that), or not yet all visible
                    still_pending.add(r.doc_id)
            self._apply(conn, ready)
            report.indexed += [r.doc_id for r, _ in ready]
            report.chunks += sum(len(g) for _, g in ready)
        report.pending = sorted(still_pending)
        new_mark = max([float(watermark or 0.0), *marks])
        with _transaction(conn):
            self._set_meta(conn, watermark=new_mark, last_poll=polled_at, pending=json.dumps(report.pending))
        report.seconds = time.perf_counter() - started
        if report.indexed or report.removed:
            log.info("lexical index: %s, %d documents indexed (%d chunks), %d removed in %.2fs", report.mode,
                     len(report.indexed), report.chunks, len(report.removed), report.seconds)
        return report

    @staticmethod
    def _local_hashes(conn, ids: list[str]) -> dict[str, str]:
        out = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            out.update(conn.execute(f"SELECT doc_id, doc_hash FROM docs WHERE doc_id IN "
                                    f"({','.join('?' * len(part))})", part))
        return out

    def _reset(self, conn, identity: str) -> None:
        """A different Chroma collection than the one this file was built from: start over."""
        with _transaction(conn):
            conn.execute("INSERT INTO fts(fts) VALUES ('delete-all')")
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM docs")
            conn.execute("DELETE FROM meta WHERE key IN ('watermark', 'last_poll', 'pending')")
            self._set_meta(conn, n=0, total_len=0, identity=identity)
            self._bump(conn)

    @staticmethod
    def _bump(conn) -> None:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")

    @staticmethod
    def _drop_doc(conn, doc_id: str) -> tuple[int, int]:
        rows = conn.execute("SELECT id, tokens, length FROM chunks WHERE doc_id = ?", (doc_id,)).fetchall()
        conn.executemany("INSERT INTO fts(fts, rowid, tokens) VALUES ('delete', ?, ?)", [r[:2] for r in rows])
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM docs WHERE doc_id = ?", (doc_id,))
        return len(rows), sum(r[2] for r in rows)

    def _remove(self, conn, doc_ids: list[str]) -> None:
        with _transaction(conn):
            dn = dlen = 0
            for doc_id in doc_ids:
                n, length = self._drop_doc(conn, doc_id)
                dn, dlen = dn + n, dlen + length
            self._adjust(conn, -dn, -dlen)

    def _apply(self, conn, ready: list) -> None:
        """(Re)index documents: each one's old chunks out, its committed chunks in, one transaction."""
        if not ready:
            return
        prepared = []
        for record, chunks in ready:
            rows = []
            for chunk_id, text, meta in chunks:
                tokens = tokenize(text)
                rows.append((chunk_id, record.doc_id, len(tokens), " ".join(tokens), text,
                             json.dumps(meta, ensure_ascii=False)))
            prepared.append((record, rows))
        with _transaction(conn):
            dn = dlen = 0
            for record, rows in prepared:
                row = conn.execute("SELECT committed_at FROM docs WHERE doc_id = ?", (record.doc_id,)).fetchone()
                if row and row[0] is not None and record.committed_at is not None and row[0] > record.committed_at:
                    continue  # another process already indexed a newer version
                n, length = self._drop_doc(conn, record.doc_id)
                dn, dlen = dn - n, dlen - length
                for r in rows:
                    cur = conn.execute("INSERT INTO chunks(chunk_id, doc_id, length, tokens, text, meta) "
                                       "VALUES (?, ?, ?, ?, ?, ?)", r)
                    conn.execute("INSERT INTO fts(rowid, tokens) VALUES (?, ?)", (cur.lastrowid, r[3]))
                    dn, dlen = dn + 1, dlen + r[2]
                conn.execute("INSERT INTO docs VALUES (?, ?, ?, ?)",
                             (record.doc_id, record.doc_hash, record.committed_at, record.n_chunks))
            self._adjust(conn, dn, dlen)

    def _adjust(self, conn, dn: int, dlen: int) -> None:
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'n'", (dn,))
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'total_len'", (dlen,))
        self._bump(conn)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
