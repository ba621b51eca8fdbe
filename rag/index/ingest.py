"""Ingest: files -> Documents -> chunks -> embeddings -> Store, idempotently.

Unchanged documents (same content hash as their committed record) are
skipped before any embedding work. Documents are embedded in groups so the
embedder sees full batches; each document is then committed on its own
(see ``Store.write`` for the crash-safe write order). One ingest at a time
per data directory: a second process is refused with a clear message.
``ingest_paths`` ends by catching up the data directory's lexical index
(``rag.index.lexical_index``) with what it wrote.
"""

from __future__ import annotations

import fcntl
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from llama_index.core.schema import Document

from rag.index.chunking import chunk_document
from rag.index.embeddings import embed_texts
from rag.index.loaders import Skipped, iter_files, load_file
from rag.index import page_files
from rag.index.store import DEFAULT_COLLECTION, Store

EMBED_GROUP = 256  # chunks embedded together
PROGRESS_SLICE = 64  # chunks embedded per progress report (when one is asked for)


def _sized(doc: Document | Skipped, path: Path) -> Document | Skipped:
    """The file's size in bytes in the document's metadata (its record keeps it, for listings)."""
    if isinstance(doc, Document):
        try:
            doc.metadata["size"] = path.stat().st_size
        except OSError:
            pass
    return doc


def _pages(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _note_pages(doc: Document, report: "IngestReport") -> None:
    """Which pages of a PDF were read by OCR (with their mean confidence) and which could not be read."""
    meta, source = doc.metadata, doc.metadata["source"]
    if meta.get("ocr_pages"):
        pages = meta["ocr_pages"]
        report.notes.append(f"{source}: page{'s' if len(pages) > 1 else ''} {_pages(pages)} read by OCR "
                            f"(mean word confidence {meta.get('ocr_confidence')})")
    for page, why in meta.get("unreadable_pages") or []:
        report.notes.append(f"{source}: page {page} not indexed: {why}")


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)  # unchanged documents put in another collection
    notes: list[str] = field(default_factory=list)  # per file: pages read by OCR, pages that could not be read
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def summary(self) -> str:
        rate = self.chunks / self.seconds if self.seconds else 0.0
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
                f"{len(self.failed)} failed, {len(self.pruned)} pruned; {self.chunks} chunks embedded "
                f"in {self.seconds:.1f}s ({rate:.0f} chunks/s)"
                + (f"; {len(self.moved)} moved to another collection" if self.moved else ""))

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "failed": [{"source": s.source, "reason": s.reason} for s in self.failed],
                "pruned": self.pruned, "moved": self.moved, "notes": self.notes, "chunks": self.chunks,
                "seconds": round(self.seconds, 3)}


class IngestLocked(RuntimeError):
    """Another ingest holds the data directory's lock."""


@contextmanager
def ingest_lock(data_dir: Path):
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "ingest.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise IngestLocked(f"another ingest is running on {data_dir} (pid {holder}); "
                               "wait for it to finish") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Indexer:
    def __init__(self, store: Store):
        self.store = store

    def ingest_documents(self, docs: Iterable[Document | Skipped], report: IngestReport | None = None,
                         progress: Callable[[int], None] | None = None,
                         chunk_progress: Callable[[int, int], None] | None = None) -> IngestReport:
        """Commit documents (or record skips); unchanged ones cost a hash comparison.
        ``progress(1)`` per document; ``chunk_progress(embedded, chunked)`` as chunks are embedded."""
        report = report or IngestReport()
        counts = [0, 0]  # chunks embedded, chunks to embed (known so far)
        started = time.perf_counter()
        records = {r.doc_id: r for r in self.store.documents()}
        committed = {doc_id: r.doc_hash for doc_id, r in records.items()}
        data_dir = self.store.config.data_dir
        group: list[tuple[Document, list]] = []
        group_chunks = 0
        # One writer thread: group N is written to Chroma while group N+1 is embedded.
        # Groups are committed strictly in order, so crash safety is unchanged.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-writer")
        pending: Future | None = None

        def commit(items: list) -> None:
            for doc, _, _ in items:  # a paged document's file and word boxes, before its record commits
                paged = doc.metadata.get("paged")
                if paged is not None:
                    page_files.save(data_dir, doc.metadata["doc_id"], doc.metadata["doc_hash"], paged.data, paged.layout)
            self.store.write_many(items, {d.metadata["doc_id"] for d, _, _ in items} & set(committed))
            for doc, ns, _ in items:
                doc_id = doc.metadata["doc_id"]
                page_files.remove(data_dir, doc_id, keep_hash=doc.metadata["doc_hash"])
                (report.updated if doc_id in committed else report.added).append(doc.metadata["source"])
                committed[doc_id] = doc.metadata["doc_hash"]
                report.chunks += len(ns)
                if progress:
                    progress(1)

        def flush():
            nonlocal group, group_chunks, pending
            if not group:
                return
            nodes = [n for _, ns in group for n in ns]
            t0 = time.perf_counter()
            if chunk_progress is None:
                vectors = embed_texts([n.text for n in nodes])
            else:  # in slices, to tell how far it got
                parts = []
                for at in range(0, len(nodes), PROGRESS_SLICE):
                    parts.append(embed_texts([n.text for n in nodes[at:at + PROGRESS_SLICE]]))
                    counts[0] += len(parts[-1])
                    chunk_progress(*counts)
                vectors = np.vstack(parts) if parts else embed_texts([])
            report.embed_seconds += time.perf_counter() - t0
            items, at = [], 0
            for doc, ns in group:
                items.append((doc, ns, vectors[at : at + len(ns)]))
                at += len(ns)
            if pending is not None:
                pending.result()  # re-raises a failed write
            pending = writer.submit(commit, items)
            group, group_chunks = [], 0

        for doc in docs:
            if isinstance(doc, Skipped):
                report.failed.append(doc)
                if progress:
                    progress(1)
                continue
            doc_id = doc.metadata["doc_id"]
            old = records.get(doc_id)
            if not doc.metadata.get("collection"):  # no collection asked for: a known document keeps its own
                doc.metadata["collection"] = old.collection if old is not None else DEFAULT_COLLECTION
            _note_pages(doc, report)
            if committed.get(doc_id) == doc.metadata["doc_hash"]:
                paged = doc.metadata.get("paged")
                if paged is not None and page_files.load(data_dir, doc_id, doc.metadata["doc_hash"]) is None:
                    # indexed before page images were kept, or elsewhere: keep them now (no re-embedding)
                    page_files.save(data_dir, doc_id, doc.metadata["doc_hash"], paged.data, paged.layout)
                if old is not None and old.collection != doc.metadata["collection"]:
                    self.store.move(doc_id, doc.metadata["collection"])
                    report.moved.append(doc.metadata["source"])
                report.unchanged.append(doc.metadata["source"])
                if progress:
                    progress(1)
                continue
            nodes = chunk_document(doc)
            group.append((doc, nodes))
            if chunk_progress is not None:
                counts[1] += len(nodes)
                chunk_progress(*counts)
            group_chunks += len(nodes)
            if group_chunks >= EMBED_GROUP:
                flush()
        try:
            flush()
            if pending is not None:
                pending.result()
        finally:
            writer.shutdown(wait=True)
        report.seconds += time.perf_counter() - started
        return report

    def ingest_paths(self, paths: list[Path], prune: bool = False, show_progress: bool = False,
                     collection: str | None = None) -> IngestReport:
        """Index files and folders; ``prune`` drops documents whose files are gone. ``collection``: put
        the files in that collection (None: new files go to "default", known ones stay where they are)."""
        report = IngestReport()
        started = time.perf_counter()
        with ingest_lock(Path(self.store.config.data_dir)):
            self.store.collect_garbage()
            files = list(iter_files(paths))
            bar = None
            if show_progress:
                from tqdm import tqdm

                bar = tqdm(total=len(files), unit="file", desc="ingest", dynamic_ncols=True)
            def pages(n: int, total: int) -> None:  # a long PDF shows its pages going by
                if bar is not None and total >= 5:
                    bar.set_postfix_str(f"page {n}/{total}")

            def load(path: Path):
                doc = _sized(load_file(path, on_page=pages), path)
                if collection and isinstance(doc, Document):
                    doc.metadata["collection"] = collection
                return doc

            docs = (f if isinstance(f, Skipped) else load(f) for f in files)
            self.ingest_documents(docs, report, progress=bar.update if bar else None)
            if bar:
                bar.close()
            if prune:
                report.pruned = self.prune_missing(paths)
            self.catch_up_lexical()
        report.seconds = time.perf_counter() - started
        return report

    def catch_up_lexical(self) -> None:
        """Bring this data directory's lexical index up to date now (cost: the new documents),
        so the first question after an ingest does not pay for it."""
        from rag.index.lexical_index import LexicalIndex

        LexicalIndex.for_store(self.store).refresh(force=True)

    def prune_missing(self, roots: list[Path]) -> list[str]:
        """Delete documents from under ``roots`` whose files no longer exist (uploads are kept)."""
        roots = [r.resolve() for r in roots]
        gone = []
        for record in self.store.documents():
            if record.source.startswith("upload:"):
                continue
            path = Path(record.source).resolve()
            if any(path == r or path.is_relative_to(r) for r in roots) and not path.exists():
                self.store.delete(record.doc_id)
                page_files.remove(self.store.config.data_dir, record.doc_id)
                gone.append(record.source)
        return gone
