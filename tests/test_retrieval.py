import pytest

from rag.answer.retriever import HybridRetriever

QUESTIONS = [
    ("What did Zelenskyy say about Crimea?", "Crimea"),
    ("When was NATO's summit held?", "summit in July"),
    ("What does Putin consider a red line?", "red line for Moscow"),
    ("What is the victory plan?", "victory plan"),
    ("Which article of the treaty could be invoked?", "Article 5"),
]


@pytest.fixture(scope="module")
def news_index(tmp_path_factory):
    """The seed article among 60 BBC News articles (distractors), indexed once."""
    import shutil

    from eval.datasets import bbc_articles
    from rag.config import Config
    from rag.index.ingest import Indexer
    from rag.index.store import Store

    from conftest import SEED_ARTICLE

    folder = tmp_path_factory.mktemp("news")
    shutil.copy(SEED_ARTICLE, folder / SEED_ARTICLE.name)
    for i, (path, text) in enumerate(bbc_articles()):
        if i % 37 == 0:
            (folder / f"bbc-{path.parent.name}-{path.name}").write_text(text)
    cfg = Config(data_dir=tmp_path_factory.mktemp("newsidx"), collection="news")
    store = Store(cfg)
    report = Indexer(store).ingest_paths([folder])
    assert len(report.added) >= 60
    return store


# (mode, how many passages may come before the right one)
@pytest.mark.parametrize("mode,depth", [("hybrid", 1), ("bm25", 1), ("dense", 3)])
@pytest.mark.parametrize("question,needle", QUESTIONS)
def test_right_passage_is_retrieved(news_index, mode, depth, question, needle):
    store = news_index
    hits = HybridRetriever(store, top_k=depth, mode=mode).retrieve(question)
    assert any(needle in h.node.text for h in hits), [h.node.text[:80] for h in hits]
    for hit in hits:
        doc_text = store.document(hit.node.metadata["doc_id"]).text
        assert doc_text[hit.node.start_char_idx:hit.node.end_char_idx] == hit.node.text


def test_paraphrase_found_by_dense_side(news_index):
    retriever = HybridRetriever(news_index, top_k=1, mode="dense")
    (hit,) = retriever.retrieve("Which military pact does Kyiv hope to join?")
    assert "NATO" in hit.node.text


def test_top_k_and_scores(seed_index):
    _, store = seed_index
    hits = HybridRetriever(store, top_k=2).retrieve("NATO membership borders")
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score
    assert {"dense_score", "bm25_score"} <= set(hits[0].node.metadata)
