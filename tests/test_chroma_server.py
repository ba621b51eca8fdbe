"""The same index code against a real Chroma server started with `chroma run`."""


import pytest

from conftest import SEEDS
from live_servers import chroma_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


def test_ingest_search_and_answer_on_chroma_server(chroma_url, tmp_path):
    from rag.assistant import Assistant
    from rag.config import Config
    from rag.index.ingest import Indexer
    from rag.answer.retriever import HybridRetriever
    from rag.index.store import Store

    config = Config(data_dir=tmp_path / "local", chroma_url=chroma_url, collection="served")
    store = Store(config)
    assert type(store.client).__name__ != "PersistentClient" and not (tmp_path / "local" / "chroma").exists()
    first = Indexer(store).ingest_paths([SEEDS])
    again = Indexer(store).ingest_paths([SEEDS])
    assert len(first.added) == 1 and len(again.unchanged) == 1
    assert store.chunk_count() == first.chunks

    # a second client (another machine, as far as it knows) sees the same index, lexical side included
    other = Store(Config(data_dir=tmp_path / "elsewhere", chroma_url=chroma_url, collection="served"))
    (hit,) = HybridRetriever(other, top_k=1, mode="bm25").retrieve("Article 5 direct NATO-Russia confrontation")
    assert "Article 5" in hit.node.text
    answer = Assistant(config, other).ask("When was NATO's summit?")
    assert "July" in answer.answer
    for c in answer.citations:
        assert other.document(c.doc_id).text[c.start:c.end] == c.quote
