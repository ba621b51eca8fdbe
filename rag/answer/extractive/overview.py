"""Overview questions ("summarize", "what is this article about", "main points", "tl;dr"): no lookup;
they get the lead sentence plus the sentences closest to the document's centroid."""

from __future__ import annotations

import re

import numpy as np

from rag.answer.extractive.question_kinds import QUESTION_WORDS
from rag.index.lexical import tokenize
from rag.index.sentences import Span, heading_spans, sentence_spans

# ------------------------------------------------------------------ overview intent

OVERVIEW = re.compile(
    r"^\W*(?:(?:please|can you|could you|would you|pls)\W+)*(?:summari[sz]e|sum up|recap|outline)\b"
    r"|\b(?:give|show|tell|write|make|provide)\b.{0,20}\b(?:summary|overview|gist|rundown|recap|synopsis|digest|"
    r"main (?:points?|ideas?)|key (?:points?|takeaways?|facts))\b"
    r"|\bwhat(?:'s|’s| is| are| was)\s+(?:this|the|these|that)\s+(?:\w+\s+)?(?:article|document|text|story|"
    r"piece|report|file|post|page|paper)s?\s+(?:all\s+)?about\b"
    r"|^\W*what(?:'s|’s| is| are)\s+(?:this|it)\s+(?:all\s+)?about\W*$"
    r"|\bwhat does (?:this|the) (?:article|document|text|story|piece|report) say\W*$"
    r"|\b(?:main|key|central|important)\s+(?:points?|ideas?|takeaways?|messages?|themes?|facts|arguments?)\b"
    r"|\btakeaways?\b|\btl;?\s?dr\b|\bthe gist\b|\boverview\b|\bsummary\b|\bin a nutshell\b",
    re.I)
_OVERVIEW_WORDS = frozenset(tokenize(
    "summarize summarise summary sum up recap outline give show tell write make provide overview gist rundown "
    "synopsis digest main point points idea ideas key takeaway takeaways fact facts central important message "
    "messages theme themes argument arguments tl dr tldr nutshell article articles document documents text texts "
    "story stories piece report file post page paper please can you could would me us what about this these that "
    "all brief briefly short quick"))


def is_overview(question: str) -> bool:
    """True for "summarize ...", "what is this article about?", "main points", "key takeaways", "tl;dr"."""
    return bool(OVERVIEW.search(question))


def overview_topic(question: str) -> list[str]:
    """The question's content words once the overview wording is removed ("summarize the article
    about the tobacco case" -> ["tobacco", "case"]); empty when it names no topic."""
    return [t for t in tokenize(question) if t not in _OVERVIEW_WORDS and t not in QUESTION_WORDS]


def body_sentences(text: str) -> list[Span]:
    """The sentences of a document without its headings (found by their look): what an overview quotes."""
    heads = {h.start: h.end for h in heading_spans(text)}
    return [s for s in sentence_spans(text) if not (s.start in heads and s.end <= heads[s.start])]


def central_sentences(spans: list[Span], vectors: np.ndarray, k: int = 4, skip_first: bool = False,
                      redundancy: float = 0.85) -> list[int]:
    """Indices (in document order) of the lead sentence plus the ``k - 1`` sentences most central to the
    document: cosine to the mean of all sentence vectors. A sentence nearly repeating one already picked
    (cosine >= ``redundancy``) is passed over. ``skip_first`` skips a headline line, so that the lead is
    the first sentence of the body."""
    n = len(spans)
    if n == 0:
        return []
    first = 1 if skip_first and n > 1 else 0
    if n - first <= k:
        return list(range(first, n))
    centroid = vectors[first:].mean(axis=0)
    centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
    central = vectors @ centroid
    picked = [first]
    for i in sorted(range(first + 1, n), key=lambda i: -central[i]):
        if len(picked) >= k:
            break
        if max(float(vectors[i] @ vectors[j]) for j in picked) >= redundancy:
            continue
        picked.append(i)
    return sorted(picked)
