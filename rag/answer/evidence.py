"""Compact evidence for a model: the best sentences of the retrieved chunks, with a little
neighbouring context, numbered one by one and grouped by document.

A model on two CPU cores reads about 33 prompt tokens a second, so whole 200-wordpiece
chunks (about 1,200 prompt tokens for six) cost some 40 s before the first word. Here the
sentences of the retrieved chunks are ranked (by the extractive answerer's sentence
scorer, the same ranking the quick answers use), the best ``max_sentences`` are kept with
the sentence before each as context, and the whole stays within ``max_words``.

Every kept sentence is a ``Quote`` with a number ``n`` (1-based) and exact document
offsets. The model cites a sentence by its number (a JSON-schema ``enum`` of the numbers,
a grammar on llama.cpp), so every quote is verbatim by construction and costs the model
one or two tokens instead of the whole sentence. ``Evidence.find`` maps what a model
wrote back to a span: the number, else a quoted text located through
``rag.answer.quotes.locate`` (tolerant to whitespace and quote marks, snapped to exact offsets)
for servers that ignore the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rag.answer.extractive.scoring import Candidate
from rag.answer.quotes import locate
from rag.index.sentences import sentence_spans

MIN_QUOTE_WORDS = 3


@dataclass(frozen=True)
class Quote:
    """A span of a document that the model may quote."""

    text: str
    doc_id: str
    doc_hash: str
    source: str
    title: str
    start: int
    end: int
    n: int  # 1-based number the model cites it by
    passage: int  # 1-based number of the passage (run of adjacent sentences) it belongs to


@dataclass
class Passage:
    n: int
    doc_id: str
    doc_hash: str
    source: str
    title: str
    start: int
    end: int
    text: str


@dataclass
class Evidence:
    passages: list[Passage]
    quotes: list[Quote]
    doc_texts: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> int:
        return sum(len(p.text.split()) for p in self.passages)

    def find(self, source=None, quote: str | None = None) -> Quote | None:
        """The span a claim rests on: sentence number ``source`` (1-based; "3", "[3]" and "S3"
        also read), else ``quote`` text located in the evidence's documents. None if neither."""
        n = _number(source)
        if n is not None and 1 <= n <= len(self.quotes):
            return self.quotes[n - 1]
        quote = (quote or "").strip()
        if not quote:
            return None
        for q in self.quotes:
            if q.text == quote:
                return q
        for p in self.passages:
            doc = self.doc_texts.get(p.doc_id, "")
            found = locate(doc, quote, hint=p.start) if doc else None
            if found and found[1] > found[0] and len(doc[found[0]:found[1]].split()) >= MIN_QUOTE_WORDS:
                return Quote(doc[found[0]:found[1]], p.doc_id, p.doc_hash, p.source, p.title, found[0], found[1],
                             0, p.n)
        return None

    def around(self, q: Quote) -> list[Quote]:
        """Spans next to ``q`` in its passage: its neighbour sentences, then ``q`` joined with each
        (adjacent in the document, so the joined text is verbatim too). For a claim that cites the
        sentence next to the one it copies, or rests on two adjacent sentences."""
        if not q.n:
            return []
        mates = [x for x in self.quotes if x.passage == q.passage]
        i = next((k for k, x in enumerate(mates) if x.n == q.n), None)
        if i is None:
            return []
        near = [mates[k] for k in (i - 1, i + 1) if 0 <= k < len(mates)]
        doc = self.doc_texts.get(q.doc_id, "")
        joined = []
        for other in near:
            a, b = sorted((q, other), key=lambda x: x.start)
            if doc and not doc[a.end:b.start].strip():
                joined.append(Quote(doc[a.start:b.end], q.doc_id, q.doc_hash, q.source, q.title, a.start, b.end,
                                    0, q.passage))
        return near + joined


def _number(source) -> int | None:
    if isinstance(source, bool):
        return None
    if isinstance(source, int):
        return source
    if isinstance(source, str):
        m = re.fullmatch(r"\s*\[?\s*(?:s|sentence\s*)?(\d{1,3})\s*\]?\s*", source, re.I)
        return int(m.group(1)) if m else None
    return None


def by_similarity(question_vec, cands: list[Candidate], embed) -> list[Candidate]:
    """Candidates best first by question-sentence cosine plus their chunk's retrieval rank (``embed``:
    vectors for candidates, e.g. ``SentenceEmbeddings.get``)."""
    if not cands:
        return []
    sims = np.asarray(embed(cands), dtype=np.float32) @ np.asarray(question_vec, dtype=np.float32)
    score = {id(c): float(sim) + 0.1 / (1 + c.chunk_rank) for c, sim in zip(cands, sims)}
    return sorted(cands, key=lambda c: -score[id(c)])


def build(ranked: list[Candidate], nodes, doc_texts: dict[str, str], max_sentences: int = 6, max_words: int = 260,
          context: bool = True, lead: int = 0) -> Evidence:
    """Evidence from the sentences of retrieved ``nodes`` (``rag.answer.extractive.scoring.candidates``), ``ranked``
    best first (``doc_texts``: doc_id -> full text). ``lead`` > 0 adds the first ``lead`` sentences
    of the top document (overview questions)."""
    ranked = [c for c in ranked if doc_texts.get(c.doc_id)]  # a document gone since: nothing to quote
    by_doc: dict[str, list[Candidate]] = {}
    for c in sorted(ranked, key=lambda c: (c.doc_id, c.start)):
        by_doc.setdefault(c.doc_id, []).append(c)
    picked: dict[tuple[str, int], Candidate] = {}
    words = 0

    def take(c: Candidate) -> bool:
        nonlocal words
        if (c.doc_id, c.start) in picked:
            return True
        n = len(c.text.split())
        if words + n > max_words and picked:
            return False
        picked[(c.doc_id, c.start)] = c
        words += n
        return True

    if lead and nodes:
        top = nodes[0].node.metadata
        doc = doc_texts.get(top["doc_id"], "")
        for sp in sentence_spans(doc)[:lead]:
            take(Candidate(top["doc_id"], top["doc_hash"], top["source"], str(top.get("title") or ""),
                           sp.start, sp.end, doc[sp.start:sp.end], 0))
    for c in ranked[:max_sentences]:
        siblings = by_doc[c.doc_id]
        i = next(j for j, x in enumerate(siblings) if x is c)
        if context and i > 0 and siblings[i - 1].end <= c.start and \
                words + len(siblings[i - 1].text.split()) + len(c.text.split()) <= max_words:
            take(siblings[i - 1])
        if not take(c):
            break
    return assemble(sorted(picked.values(), key=lambda c: (_doc_order(nodes, c.doc_id), c.start)), doc_texts)


def _doc_order(nodes, doc_id: str) -> int:
    for i, nws in enumerate(nodes):
        if nws.node.metadata["doc_id"] == doc_id:
            return i
    return len(nodes)


def assemble(sentences: list[Candidate], doc_texts: dict[str, str]) -> Evidence:
    """Group sentences (sorted by document, then offset) into passages; number them 1..n."""
    passages: list[Passage] = []
    members: list[list[Candidate]] = []
    for s in sentences:
        last = passages[-1] if passages else None
        doc = doc_texts[s.doc_id]
        if last and last.doc_id == s.doc_id and not doc[last.end:s.start].strip():
            last.end, last.text = s.end, doc[last.start:s.end]
            members[-1].append(s)
            continue
        passages.append(Passage(len(passages) + 1, s.doc_id, s.doc_hash, s.source, s.title, s.start, s.end, s.text))
        members.append([s])
    quotes = [Quote(s.text, p.doc_id, p.doc_hash, p.source, p.title, s.start, s.end, 0, p.n)
              for p, group in zip(passages, members) for s in group]
    quotes = [Quote(q.text, q.doc_id, q.doc_hash, q.source, q.title, q.start, q.end, i, q.passage)
              for i, q in enumerate(quotes, 1)]
    return Evidence(passages, quotes, doc_texts)
