"""Sentence-aware chunks sized in the embedder's wordpieces, with exact offsets.

A chunk is a run of whole sentences whose wordpiece count stays within
``max_wordpieces`` (the embedder reads 256 including [CLS]/[SEP], so no
chunk is silently truncated). A sentence longer than that is cut at word
boundaries. Consecutive chunks share up to ``overlap_wordpieces`` of
trailing sentences. Every chunk is a llama-index ``TextNode`` whose text is
exactly ``document.text[start_char_idx:end_char_idx]``.

Headings are found once, on the whole document (those a converter marked, see ``rag.index.markup``,
plus lines that look like headings, ``rag.index.sentences.heading_spans``), and every chunk carries
``headings`` (the spans of those inside it, "start-end;...") and ``section`` (the text of the last
heading before it): an answer never quotes a heading, and a heading lends its words to the sentences
under it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from llama_index.core.schema import Document, NodeRelationship, RelatedNodeInfo, TextNode

from rag.index.embeddings import MAX_WORDPIECES, load_tokenizer
from rag.index.sentences import Span, format_heading_spans, heading_spans, sentence_spans

DEFAULT_MAX_WORDPIECES = 200
DEFAULT_OVERLAP_WORDPIECES = 40


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    wordpieces: int


def _pieces(text: str, limit: int) -> list[_Piece]:
    """Sentences with their wordpiece counts; over-long sentences cut at word boundaries."""
    spans = sentence_spans(text)
    tok = load_tokenizer()
    encodings = tok.encode_batch([s.text(text) for s in spans], add_special_tokens=False)
    out: list[_Piece] = []
    for span, enc in zip(spans, encodings):
        n = len(enc.ids)
        if n <= limit:
            out.append(_Piece(span.start, span.end, n))
            continue
        offsets = enc.offsets  # (start, end) relative to the sentence
        i = 0
        while i < n:
            j = min(i + limit, n)
            # back off to the start of a whitespace-separated word
            while j < n and j > i + limit // 2 and offsets[j][0] == offsets[j - 1][1]:
                j -= 1
            start = span.start + offsets[i][0]
            end = span.start + (offsets[j][0] if j < n else span.end - span.start)
            piece = Span(start, end)
            # trim trailing whitespace so the text is clean
            while piece.end > piece.start and text[piece.end - 1].isspace():
                piece = Span(piece.start, piece.end - 1)
            out.append(_Piece(piece.start, piece.end, j - i))
            i = j
    return out


def chunk_spans(text: str, max_wordpieces: int = DEFAULT_MAX_WORDPIECES,
                overlap_wordpieces: int = DEFAULT_OVERLAP_WORDPIECES) -> list[tuple[int, int]]:
    """(start, end) character spans of the chunks of ``text``."""
    if max_wordpieces > MAX_WORDPIECES - 2:
        raise ValueError(f"max_wordpieces must be <= {MAX_WORDPIECES - 2} (embedder limit)")
    pieces = _pieces(text, max_wordpieces)
    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        total, j = 0, i
        # join cost: tokens of the gap are whitespace, which adds no wordpieces
        while j < len(pieces) and total + pieces[j].wordpieces <= max_wordpieces:
            total += pieces[j].wordpieces
            j += 1
        j = max(j, i + 1)
        chunks.append((pieces[i].start, pieces[j - 1].end))
        if j >= len(pieces):
            break
        # step back over trailing sentences for overlap, but always advance
        back, k = 0, j
        while k - 1 > i and back + pieces[k - 1].wordpieces <= overlap_wordpieces:
            k -= 1
            back += pieces[k].wordpieces
        i = k
    return chunks


def chunk_document(doc: Document, max_wordpieces: int = DEFAULT_MAX_WORDPIECES,
                   overlap_wordpieces: int = DEFAULT_OVERLAP_WORDPIECES) -> list[TextNode]:
    """Split a Document into TextNodes carrying doc_id, source, title, offsets, headings and section."""
    meta = doc.metadata
    headings = document_headings(doc.text, meta.get("headings"))
    starts = [h.start for h in headings]
    nodes = []
    for index, (start, end) in enumerate(chunk_spans(doc.text, max_wordpieces, overlap_wordpieces)):
        first = bisect.bisect_left(starts, start)
        inside = [h for h in headings[first:bisect.bisect_left(starts, end)] if h.end <= end]
        above = headings[first - 1] if first else None
        node = TextNode(
            id_=f"{meta['doc_id']}:{meta['doc_hash'][:12]}:{index:05d}",
            text=doc.text[start:end],
            start_char_idx=start,
            end_char_idx=end,
            metadata={
                "doc_id": meta["doc_id"],
                "doc_hash": meta["doc_hash"],
                "source": meta["source"],
                "title": meta["title"],
                "chunk_index": index,
                "start": start,
                "end": end,
                "headings": format_heading_spans(inside),
                "section": above.text(doc.text) if above else "",
            },
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=meta["doc_id"])
        nodes.append(node)
    return nodes


def document_headings(text: str, marked=None) -> list[Span]:
    """The headings of a document: the spans its converter marked (``marked``: (start, end) pairs) and the
    lines that look like headings, in document order."""
    spans = {(int(a), int(b)) for a, b in (marked or [])} | {(h.start, h.end) for h in heading_spans(text)}
    return [Span(a, b) for a, b in sorted(spans)]
