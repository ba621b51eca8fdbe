"""Sentence and clause spans with exact character offsets.

One splitter serves chunking, the extractive answerer and the judge, so
that every piece of text we handle is ``text[start:end]`` of a document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets)
# before whitespace and a plausible sentence start; a blank line or a line
# break always ends one.
_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])|(?<=[a-z0-9)]{2})\.(?=[A-Z][a-z])|\n\s*""")
_ABBREV = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Gen|Col|Lt|Sgt|Rep|Sen|Gov|Pres|Rev|Mt|No|vs|etc|Inc|Ltd|Co|Corp|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|i\.e|e\.g|U\.S|U\.K|U\.N|E\.U)\.|\b[A-Z]\.)$"
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentences of ``text[start:end]`` as spans into ``text``, whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    cursor = start
    for match in _END.finditer(text, start, end):
        cut = match.end() if match.group().strip() == "" else match.end()
        if match.group()[0] in ".!?…" and _ABBREV.search(text[max(start, match.start() - 6) : match.start() + 1]):
            continue
        span = _trim(text, cursor, cut)
        if span:
            spans.append(span)
        cursor = cut
    span = _trim(text, cursor, end)
    if span:
        spans.append(span)
    return spans


_CLAUSE = re.compile(r"[,;:—–]\s+|\s+(?:but|while|although|though|whereas|and)\s+")


def clause_spans(text: str, span: Span, min_chars: int = 25) -> list[Span]:
    """Split one sentence at clause boundaries; pieces shorter than min_chars are merged."""
    pieces: list[Span] = []
    cursor = span.start
    for match in _CLAUSE.finditer(text, span.start, span.end):
        if match.start() - cursor >= min_chars and span.end - match.end() >= min_chars:
            piece = _trim(text, cursor, match.start())
            if piece:
                pieces.append(piece)
            cursor = match.start()
    tail = _trim(text, cursor, span.end)
    if tail:
        pieces.append(tail)
    return pieces or [span]
