from rag.index.chunking import chunk_document, chunk_spans
from rag.index.embeddings import MAX_WORDPIECES, count_wordpieces
from rag.index.loaders import load_file, make_document
from rag.index.sentences import sentence_spans

from conftest import SEED_ARTICLE


def test_every_chunk_is_exact_slice_and_fits_the_embedder():
    doc = load_file(SEED_ARTICLE)
    for size, overlap in [(200, 40), (60, 20), (30, 0)]:
        nodes = chunk_document(doc, size, overlap)
        assert nodes
        for node in nodes:
            assert doc.text[node.start_char_idx:node.end_char_idx] == node.text
            assert node.metadata["start"] == node.start_char_idx
            assert count_wordpieces(node.text) <= size <= MAX_WORDPIECES - 2
            assert node.metadata["doc_id"] == doc.metadata["doc_id"]
            assert node.metadata["source"] == doc.metadata["source"]


def test_chunks_cover_every_sentence_and_overlap():
    doc = load_file(SEED_ARTICLE)
    spans = chunk_spans(doc.text, 60, 20)
    for s in sentence_spans(doc.text):
        assert any(a <= s.start and s.end <= b for a, b in spans), s
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), "expected some overlap"


def test_over_long_sentence_is_cut_without_truncation():
    text = "word " * 900 + "end."
    doc = make_document(text, "long.txt")
    nodes = chunk_document(doc, 100, 10)
    assert len(nodes) >= 9
    for node in nodes:
        assert doc.text[node.start_char_idx:node.end_char_idx] == node.text
        assert count_wordpieces(node.text) <= 100
    assert nodes[-1].text.endswith("end.")
