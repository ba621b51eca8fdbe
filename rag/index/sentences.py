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


# A list marker opening a line ("- ", "* ", "• ", "3. ", "b) "): not part of the sentence after it.
_BULLET = re.compile(r"(?:[-*+•▪◦‣]|\d{1,3}[.)]|[a-z]\))[ \t]+")
_LIST_NUMBER = re.compile(r"[ \t]*\d{1,3}\.")


def _line_prefix(text: str, pos: int, lowest: int = 0) -> str | None:
    """What stands between the start of ``pos``'s line and ``pos`` (not before ``lowest``); None when that is
    more than 64 characters (no list marker or indent is: the look-back stays bounded on one-line texts)."""
    floor = max(lowest, pos - 64)
    newline = text.rfind("\n", floor, pos)
    if newline == -1 and floor > lowest:
        return None
    return text[(newline + 1 if newline != -1 else floor):pos]


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    prefix = _line_prefix(text, start) if start < end else None
    if prefix is not None and not prefix.strip():
        bullet = _BULLET.match(text, start, end)
        if bullet and bullet.end() < end:
            start = bullet.end()
    return Span(start, end) if end > start else None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentences of ``text[start:end]`` as spans into ``text``, whitespace trimmed; a list marker opening a
    line ("- ", "2. ") is left out of the sentence after it."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    cursor = start
    for match in _END.finditer(text, start, end):
        cut = match.end() if match.group().strip() == "" else match.end()
        if match.group()[0] in ".!?…" and _ABBREV.search(text[max(start, match.start() - 6) : match.start() + 1]):
            continue
        if match.group()[0] == "." and _LIST_NUMBER.fullmatch((_line_prefix(text, match.start(), start) or "") + "."):
            continue  # "2. Decisions": the number of a list item, not the end of a sentence
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


# ------------------------------------------------------------------ headings

HEADING_MAX_WORDS = 12
HEADING_MAX_CHARS = 90
_YEAR_END = re.compile(r"\b(?:1[5-9]|20)\d\d$")
_VALUE_END = re.compile(r"\d[\d.,]*\s?[^\W\d]{0,12}$")  # "Weight 1.4 kg", "Room 2.14": a value, not a title


def heading_like(line: str) -> bool:
    """A line that reads like a heading: short (at most 12 words), opening with a capital or a figure (after
    an optional section number), without final punctuation, no bullet, no "label: Value" ("Project lead: Joana Ferreira"; a lower-case
    subtitle after the colon is fine), not ending with a quantity ("Weight 1.4 kg"; a year is fine)."""
    line = line.strip()
    numbered = re.match(r"\d{1,2}(?:\.\d{1,2})*\.?[ \t]+(?=\S)", line)  # "2. Decisions", "3.1 Scope"
    line = line[numbered.end():] if numbered else line
    words = line.split()
    if not words or len(words) > HEADING_MAX_WORDS or len(line) > HEADING_MAX_CHARS:
        return False
    if _BULLET.match(line) or not (line[0].isupper() or line[0].isdigit()):
        return False
    if line[-1] in ".!?;,:…\"'”’":
        return False
    if ": " in line and not line.split(": ", 1)[1][:1].islower():
        return False
    return not (_VALUE_END.search(line) and not _YEAR_END.search(line))


def _paragraph_like(line: str) -> bool:
    line = line.strip()
    bullet = _BULLET.match(line)
    line = line[bullet.end():] if bullet else line
    return bool(line) and (line.rstrip("\"'”’)")[-1:] in tuple(".!?:…") or len(line.split()) > HEADING_MAX_WORDS)


def heading_spans(text: str) -> list[Span]:
    """Lines of ``text`` that are headings by their look: a :func:`heading_like` line that opens its block
    (first line, or after a blank line) and has text after it; when that text follows on the very next
    line, it must read as a paragraph (a sentence, or a long line), not as the next item of a list."""
    lines = []  # (start, end) of every line
    pos = 0
    for line in text.split("\n"):
        lines.append((pos, pos + len(line)))
        pos += len(line) + 1
    out = []
    for i, (a, b) in enumerate(lines):
        line = text[a:b]
        if not line.strip() or (i and text[lines[i - 1][0]:lines[i - 1][1]].strip()):
            continue  # blank, or not the first line of its block
        if not heading_like(line):
            continue
        nxt = next((j for j in range(i + 1, len(lines)) if text[lines[j][0]:lines[j][1]].strip()), None)
        if nxt is None:
            continue
        if nxt == i + 1 and not _paragraph_like(text[lines[nxt][0]:lines[nxt][1]]):
            continue
        span = _trim(text, a, b)
        if span:
            out.append(span)
    return out


def parse_heading_spans(value: str) -> list[Span]:
    """Heading spans as stored in chunk metadata: "start-end;start-end" (document offsets)."""
    out = []
    for part in (value or "").split(";"):
        a, _, b = part.partition("-")
        if a.isdigit() and b.isdigit():
            out.append(Span(int(a), int(b)))
    return out


def format_heading_spans(spans) -> str:
    return ";".join(f"{s.start}-{s.end}" for s in spans)
