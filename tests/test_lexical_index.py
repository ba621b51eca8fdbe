"""The persistent lexical index (rag/index/lexical_index.py): exact BM25 against the in-memory
reference, incremental updates, catch-up of a second replica from Chroma records and
tombstones, crash-safety (a half-written document stays invisible)."""

from __future__ import annotations

import math
import random
import time

import pytest

from rag.config import Config
from rag.index.lexical import BM25, tokenize
from rag.index.lexical_index import LexicalIndex
from rag.index.store import DocRecord

WORDS = ("nato summit ukraine russia crimea border treaty article ceasefire victory plan election minister "
         "bank market shares growth football league cup player coach film award actor music album chart "
         "phone mobile broadband software virus games console court judge police tax budget").split()


class FakeStore:
    """The slice of rag.index.store.Store the index reads, in memory (records, chunks, tombstones)."""

    def __init__(self, config):
        self.config = config
        self.visibility = None
        self.generation = 0
        self.recs: dict[str, DocRecord] = {}
        self.chunk_rows: dict[str, tuple[str, dict]] = {}
        self.tombs: dict[str, float] = {}
        self.identity = ["chunks-1", "docs-1"]
        self.calls: list[str] = []

    # writer side, in the real store's order: chunks, record (commit point), stale chunks out
    def put(self, doc_id: str, texts: list[str], version: str = "v1", commit: bool = True, at: float | None = None):
        for i, text in enumerate(texts):
            self.chunk_rows[f"{doc_id}:{version}:{i}"] = (text, {"doc_id": doc_id, "doc_hash": version,
                                                                 "chunk_index": i, "start": 0, "end": len(text),
                                                                 "source": doc_id, "title": doc_id})
        if commit:
            self.recs[doc_id] = DocRecord(doc_id, doc_id, doc_id, version, len(texts),
                                          committed_at=time.time() if at is None else at)
            for cid in [c for c, (_, m) in self.chunk_rows.items() if m["doc_id"] == doc_id and m["doc_hash"] != version]:
                del self.chunk_rows[cid]
        self.generation += 1

    def delete(self, doc_id: str, crash_after_tombstone: bool = False):
        self.tombs[doc_id] = time.time()
        if crash_after_tombstone:
            return
        del self.recs[doc_id]
        for cid in [c for c, (_, m) in self.chunk_rows.items() if m["doc_id"] == doc_id]:
            del self.chunk_rows[cid]
        self.generation += 1

    # reader side
    def collection_ids(self):
        return list(self.identity)

    def all_records(self):
        self.calls.append("all_records")
        return list(self.recs.values())

    def records(self, ids):
        return [self.recs[i] for i in ids if i in self.recs]

    def records_since(self, since):
        self.calls.append("records_since")
        return [r for r in self.recs.values() if r.committed_at is not None and r.committed_at >= since]

    def tombstones_since(self, since):
        return {d: t for d, t in self.tombs.items() if t >= since}

    def committed_chunks(self, versions):
        want = dict(versions)
        out = {d: [] for d in want}
        for cid, (text, m) in self.chunk_rows.items():
            if want.get(m["doc_id"]) == m["doc_hash"]:
                out[m["doc_id"]].append((cid, text, m))
        return out


def _texts(rng, n, length=(5, 40)):
    return [" ".join(rng.choice(WORDS) + ("s" if rng.random() < 0.2 else "") for _ in range(rng.randint(*length)))
            for _ in range(n)]


@pytest.fixture
def fake(tmp_path):
    return FakeStore(Config(data_dir=tmp_path / "a", chroma_url=None, collection="lex"))


def _reference(store: FakeStore) -> tuple[list[str], BM25]:
    ids = sorted(store.chunk_rows, key=lambda c: c)
    ids = [c for c in ids if store.recs.get(store.chunk_rows[c][1]["doc_id"])
           and store.recs[store.chunk_rows[c][1]["doc_id"]].doc_hash == store.chunk_rows[c][1]["doc_hash"]]
    return ids, BM25([store.chunk_rows[c][0] for c in ids])


def _assert_matches_reference(index: LexicalIndex, store: FakeStore, queries: list[str]):
    ids, ref = _reference(store)
    assert index.n == ref.n
    for q in queries:
        scores = ref.scores(q)
        want = {ids[i]: float(scores[i]) for i in range(len(ids))}
        got = index.scores_for(q, ids)
        for cid in ids:
            assert got[cid] == pytest.approx(want[cid], rel=1e-4, abs=1e-4)
        top = index.top(q, 10)
        ref_top = ref.top(q, 10)
        # same scores in the same order (ties may come in another order)
        assert [round(s, 3) for *_, s in top] == [round(s, 3) for _, s in ref_top]
        for term in set(tokenize(q)):
            if term in ref.idf:
                assert index.bm25.idf[term] == pytest.approx(ref.idf[term], rel=1e-9)
            else:
                assert term not in index.bm25.idf
    if ref.idf:  # the rarest possible term's idf (df 1): what callers use as the weight of unseen words
        assert max(index.bm25.idf.values()) == pytest.approx(math.log(1 + (ref.n - 0.5) / 1.5))
        assert max(index.bm25.idf.values()) >= max(ref.idf.values())


QUERIES = ["nato summit in crimea", "football players and coaches", "budget tax court", "zebra", "the of and",
           "mobile phones software viruses", "election ministers growth market shares bank"]


def test_exact_bm25_matches_in_memory_reference_through_adds_replaces_deletes(fake):
    rng = random.Random(7)
    index = LexicalIndex(fake)
    for d in range(40):
        fake.put(f"doc{d}", _texts(rng, rng.randint(1, 6)))
    index.refresh(force=True)
    _assert_matches_reference(index, fake, QUERIES)
    for d in range(0, 40, 5):  # replace
        fake.put(f"doc{d}", _texts(rng, rng.randint(1, 4)), version="v2")
    for d in range(1, 40, 7):  # delete
        fake.delete(f"doc{d}")
    index.refresh()  # the store saw writes: catches up at once
    _assert_matches_reference(index, fake, QUERIES)
    report = index.last_sync
    assert report.mode == "poll" and "all_records" not in fake.calls[1:]
    assert set(report.removed) == {f"doc{d}" for d in range(1, 40, 7)}


def test_half_written_document_stays_invisible_until_committed(fake):
    index = LexicalIndex(fake)
    fake.put("done", ["ceasefire talks in geneva"])
    fake.put("half", ["ceasefire agreement signed"], commit=False)  # crash before the record
    index.refresh(force=True)
    assert [cid for cid, *_ in index.top("ceasefire", 5)] == ["done:v1:0"]
    assert index.visible([("half", "v1"), ("done", "v1")]) == {("done", "v1")}
    # a record whose chunks are not all there yet (another replica mid-write) waits
    fake.recs["late"] = DocRecord("late", "late", "late", "v1", 2, committed_at=time.time())
    fake.put("late", ["ceasefire one"], commit=False)
    fake.generation += 1
    index.refresh()
    assert index.last_sync.pending == ["late"]
    assert not any(cid.startswith("late") for cid, *_ in index.top("ceasefire", 5))
    fake.put("late", ["ceasefire one", "ceasefire two"])
    index.refresh()
    assert {cid for cid, *_ in index.top("ceasefire", 5)} == {"done:v1:0", "late:v1:0", "late:v1:1"}


def test_a_second_replica_catches_up_from_records_newer_than_its_watermark(fake, tmp_path):
    rng = random.Random(3)
    for d in range(20):  # committed an hour ago
        fake.put(f"doc{d}", _texts(rng, 3), at=time.time() - 3600)
    one = LexicalIndex(fake)
    one.refresh(force=True)
    two = LexicalIndex(fake, path=tmp_path / "b" / "lex.sqlite")  # another process's own data dir
    first = two.sync()
    assert first.mode == "full" and len(first.indexed) == 20
    fake.calls.clear()
    # reopening a caught-up file reads no full list of records
    again = LexicalIndex(fake, path=tmp_path / "b" / "lex.sqlite").sync()
    assert again.mode == "poll" and again.indexed == [] and "all_records" not in fake.calls
    fake.put("new", ["a brand new crimea treaty"])
    fake.delete("doc3")
    report = two.sync()
    assert report.mode == "poll" and report.indexed == ["new"] and report.removed == ["doc3"]
    # the watermark moved to the newest record: the hour-old ones are not read again
    fake.put("newer", ["another treaty"])
    report = two.sync()
    assert report.indexed == ["newer"] and report.seen == 3  # new, newer, doc3's tombstone (within the slack)
    _assert_matches_reference(two, fake, QUERIES + ["brand new treaty"])


def test_delete_that_crashed_after_its_tombstone_leaves_the_document_everywhere(fake):
    index = LexicalIndex(fake)
    fake.put("keep", ["victory plan presented"])
    index.refresh(force=True)
    fake.delete("keep", crash_after_tombstone=True)
    assert index.sync().removed == []
    assert index.top("victory plan", 3)
    fake.delete("keep")  # the retried delete
    assert index.sync().removed == ["keep"]
    assert index.top("victory plan", 3) == []
    fake.put("keep", ["victory plan presented again"], version="v3")  # re-added after the delete
    assert index.sync().indexed == ["keep"]
    assert [cid for cid, *_ in index.top("victory plan", 3)] == ["keep:v3:0"]


def test_a_recreated_collection_starts_the_file_over(fake):
    fake.put("old", ["old text about banks"])
    LexicalIndex(fake).sync()
    fake.recs.clear(), fake.chunk_rows.clear()
    fake.identity = ["chunks-2", "docs-2"]
    fake.put("fresh", ["fresh text about football"])
    index = LexicalIndex(fake)
    report = index.sync()
    assert report.mode == "full" and index.n == 1
    assert index.top("banks", 3) == [] and index.top("football", 3)


def test_deleting_the_file_is_harmless(fake):
    fake.put("a", ["court rules on tax"])
    index = LexicalIndex(fake)
    index.sync()
    index.close()
    for p in index.path.parent.glob(index.path.name + "*"):
        p.unlink()
    fresh = LexicalIndex(fake)
    assert fresh.top("court tax", 1)[0][0] == "a:v1:0"


# ---------------------------------------------------------------- the real store (embedded Chroma)

def test_real_store_records_carry_commit_times_and_deletes_leave_tombstones(config, seed_copy):
    from rag.index.ingest import Indexer
    from rag.answer.retriever import HybridRetriever
    from rag.index.store import Store

    store = Store(config)
    assert store.is_empty()
    before = time.time()
    Indexer(store).ingest_paths([seed_copy])
    assert not store.is_empty()
    (record,) = store.records_since(before - 1)
    assert record.committed_at >= before - 1
    assert LexicalIndex.for_store(store).path.is_file()  # ingest caught the lexical index up

    other = Store(config)  # a second process on the same data dir: it reads the file, no full scan
    retriever = HybridRetriever(other, top_k=1, mode="bm25")
    (hit,) = retriever.retrieve("Article 5 NATO-Russia confrontation")
    assert "Article 5" in hit.node.text and retriever.lexical.last_sync.mode == "poll"

    store.delete(record.doc_id)
    assert record.doc_id in store.tombstones_since(before - 1)
    retriever.lexical.refresh(force=True)
    assert retriever.retrieve("Article 5 NATO-Russia confrontation") == []
    assert HybridRetriever(other, top_k=3).retrieve("NATO umbrella") == []  # dense side: same snapshot
