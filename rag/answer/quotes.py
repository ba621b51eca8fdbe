"""Quote checks: the invariant ``document_text[start:end] == quote``.

``verify`` is the gate every Answer passes before it leaves the process.
``locate`` finds a model-written quote in a document: exact match first,
then a match tolerant to whitespace, quote-mark and dash variants, snapped
back to exact document offsets (the returned span's text is what the
document says, not what the model wrote).
"""

from __future__ import annotations

import re
from typing import Callable

_FOLD = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'",
                       "–": "-", "—": "-", "‐": "-", "\u00a0": " "})


def _folded_with_map(text: str) -> tuple[str, list[int]]:
    """Lowercased text with quotes/dashes folded and whitespace runs collapsed,
    plus a map from each folded character to its index in ``text``."""
    out: list[str] = []
    index: list[int] = []
    prev_space = False
    for i, ch in enumerate(text.translate(_FOLD)):
        if ch.isspace():
            if prev_space:
                continue
            ch = " "
            prev_space = True
        else:
            prev_space = False
        out.append(ch.lower())
        index.append(i)
    return "".join(out), index


def locate(doc_text: str, quote: str, hint: int = 0) -> tuple[int, int] | None:
    """Span of ``quote`` in ``doc_text`` (exact, else tolerant); None if absent."""
    quote = quote.strip()
    if not quote:
        return None
    at = doc_text.find(quote, hint)
    if at < 0:
        at = doc_text.find(quote)
    if at >= 0:
        return at, at + len(quote)
    folded_doc, index = _folded_with_map(doc_text)
    folded_quote, _ = _folded_with_map(quote.strip(" \"'“”‘’"))
    folded_quote = folded_quote.strip()
    if len(folded_quote) < 8:
        return None
    at = folded_doc.find(folded_quote)
    if at < 0:
        return None
    start, end = index[at], index[at + len(folded_quote) - 1] + 1
    return start, end


def is_verbatim(doc_text: str, start: int, end: int, quote: str) -> bool:
    return 0 <= start <= end <= len(doc_text) and doc_text[start:end] == quote


def verify(citations: list, text_of: Callable[[str], str | None]) -> tuple[list, list]:
    """Split citations into (verbatim, failed) by reading each document's text.

    ``text_of(doc_id)`` returns the document text or None when it is gone.
    """
    good, bad = [], []
    for c in citations:
        text = text_of(c.doc_id)
        (good if text is not None and is_verbatim(text, c.start, c.end, c.quote) else bad).append(c)
    return good, bad


_MARK = re.compile(r"\s*\[(\d+)\]")


def strip_markers(text: str, ids: set[int]) -> str:
    """Remove ``[n]`` markers whose n is in ``ids``."""
    return _MARK.sub(lambda m: "" if int(m.group(1)) in ids else m.group(0), text)


def markers(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"\[(\d+)\]", text)]
