from pathlib import Path

import pytest

from rag.index.ingest import IngestLocked, Indexer, ingest_lock
from rag.answer.retriever import HybridRetriever
from rag.index.store import Store

from conftest import SEED_ARTICLE


def _chunk_ids(store):
    return sorted(store.chunks.get()["ids"])


def test_ingest_is_idempotent_and_offsets_hold(config, seed_copy):
    store = Store(config)
    first = Indexer(store).ingest_paths([seed_copy])
    assert len(first.added) == 1 and first.chunks > 0
    ids = _chunk_ids(store)
    second = Indexer(store).ingest_paths([seed_copy])
    assert second.added == [] and len(second.unchanged) == 1 and second.chunks == 0
    assert _chunk_ids(store) == ids
    (record,) = store.documents()
    text = store.document(record.doc_id).text
    got = store.chunks.get(include=["documents", "metadatas"])
    for chunk, meta in zip(got["documents"], got["metadatas"]):
        assert text[meta["start"]:meta["end"]] == chunk


def test_changed_file_replaces_old_chunks_and_prune(config, seed_copy, tmp_path):
    store = Store(config)
    path = seed_copy / SEED_ARTICLE.name
    other = seed_copy / "other.txt"
    other.write_text("A short second article about the weather in Kyiv.")
    Indexer(store).ingest_paths([seed_copy])
    path.write_text("Completely new content. It talks about bananas only.")
    report = Indexer(store).ingest_paths([seed_copy])
    assert len(report.updated) == 1
    got = store.chunks.get(include=["documents"])
    assert not any("NATO" in d for d in got["documents"])
    assert any("bananas" in d for d in got["documents"])
    other.unlink()
    report = Indexer(store).ingest_paths([seed_copy], prune=True)
    assert len(report.pruned) == 1
    assert [r.source.rsplit("/", 1)[-1] for r in store.documents()] == [SEED_ARTICLE.name]
    assert store.chunk_count() == sum(r.n_chunks for r in store.documents())


def test_half_written_document_is_invisible_then_completed(config, seed_copy):
    """Simulate a crash after chunks were written but before the record (the commit point)."""
    from rag.index.chunking import chunk_document
    from rag.index.embeddings import embed_texts
    from rag.index.loaders import load_file

    store = Store(config)
    doc = load_file(seed_copy / SEED_ARTICLE.name)
    nodes = chunk_document(doc)
    store.chunks.upsert(ids=[n.id_ for n in nodes], documents=[n.text for n in nodes],
                        metadatas=[n.metadata for n in nodes], embeddings=embed_texts([n.text for n in nodes]))
    retriever = HybridRetriever(store, top_k=3)
    assert retriever.retrieve("NATO umbrella ceasefire") == []
    report = Indexer(store).ingest_paths([seed_copy])
    assert len(report.added) == 1
    assert store.chunk_count() == len(nodes)
    assert retriever.retrieve("NATO umbrella ceasefire")


def test_second_ingest_is_refused_while_one_runs(config):
    with ingest_lock(Path(config.data_dir)):
        with pytest.raises(IngestLocked, match="another ingest"):
            with ingest_lock(Path(config.data_dir)):
                pass


def test_bad_files_reported_rest_indexed(config, seed_copy):
    (seed_copy / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    (seed_copy / "empty.md").write_bytes(b"")
    report = Indexer(Store(config)).ingest_paths([seed_copy])
    assert len(report.added) == 1
    assert sorted(s.source.rsplit("/", 1)[-1] for s in report.failed) == ["broken.pdf", "empty.md"]
