"""Premise checks: a question that takes for granted what its best sentence negates, and names a
question asks about that the documents do not mention."""

from __future__ import annotations

import re

from rag.answer.extractive.question_kinds import question_names  # noqa: F401  (imported from here too)
from rag.answer.extractive.scoring import focus_terms
from rag.index.lexical import tokenize

NEGATIONS = re.compile(r"\b(?:not|no|never|none|nothing|neither|nor|without|cannot|can't|won't|n't)\b|n[’']t\b", re.I)

YES_NO = re.compile(r"^\s*(?:does|do|did|is|are|was|were|would|will|can|could|has|have|had|should|must)\b", re.I)
REPORTING = re.compile(r"\b(?:say|said|tell|told|mention|mentioned|think|thought|describe|stated?)\b.*\babout\b", re.I)
PRESUPPOSING = re.compile(r"^\s*(?:why|how come|what made|what led)\b", re.I)
_PREFIXES = ("ir", "un", "in", "im", "il", "non", "dis")
# Opposite pairs beyond prefixes (stems, either direction): the question says one, the sentence the other.
ANTONYMS = [(r"dropp?(?:ed|ing|s)?", r"continu\w*"), (r"abandon\w*", r"continu\w*"), (r"support\w*", r"oppos\w*"),
            (r"accept\w*", r"reject\w*"), (r"agree[sd]?", r"refus\w*"), (r"allow\w*", r"bann?(?:ed|s)?"),
            (r"increas\w*", r"decreas\w*"), (r"by force|militarily", r"diplomatic\w*"),
            (r"approv\w*", r"reject\w*"), (r"grant\w*", r"denie[sd]|deny\w*")]


def _antonym_flip(question: str, sentence: str) -> bool:
    """'reversible' in the question where the sentence says 'irreversible' (or the reverse)."""
    q_words = {w.lower() for w in re.findall(r"[A-Za-z]{5,}", question)}
    s_words = {w.lower() for w in re.findall(r"[A-Za-z]{5,}", sentence)}
    for a, b in ((q_words, s_words), (s_words, q_words)):
        for w in a:
            if any(p + w in b for p in _PREFIXES):
                return True
    q_low, s_low = question.lower(), sentence.lower()
    for x, y in ANTONYMS:
        for a, b in ((x, y), (y, x)):
            has = lambda pattern, text: re.search(rf"\b(?:{pattern})\b", text)  # noqa: E731
            if has(a, q_low) and not has(b, q_low) and has(b, s_low) and not has(a, s_low):
                return True
    return False


# how a quick answer opens when its best sentence contradicts the question's premise
PREMISE_LEAD = "The documents contradict the premise of the question:"


def missing_entities(question: str, context: str) -> list[str]:
    """Capitalised names in the question (not its first word) that the retrieved text never mentions."""
    low = context.lower()
    return [w for w in question_names(question) if w.lower() not in low]


def as_named(question: str, words: list[str]) -> list[str]:
    """The names ``words`` belong to, as the question writes them: "United" of "the United States
    government" is shown as "United States", "Supreme" as "Supreme Court"."""
    runs = [m.group(0) for m in re.finditer(r"\b[A-Z][\w’'.-]*(?:\s+(?:of\s+)?[A-Z][\w’'.-]*)*", question)]
    shown = [next((r for r in runs if re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", r)), w) for w in words]
    return list(dict.fromkeys(shown))


def premise_verdict(question: str, sentence: str, idf: dict[str, float]) -> str | None:
    """How the best sentence relates to what the question takes for granted.

    Returns ``"no"`` (a yes/no question the sentence answers in the negative),
    ``"contradiction"`` (the sentence negates or flips the question's premise),
    or None. Negation counts when it scopes (6 words) over question words that
    carry at least a quarter (a half for what/which/who questions) of the
    idf-weighted overlap.
    """
    if NEGATIONS.search(question):
        return None
    flipped = _antonym_flip(question, sentence)
    terms = set(focus_terms(question))
    words = re.findall(r"[\w’']+", sentence)
    negated: set[str] = set()
    for i, w in enumerate(words):
        if NEGATIONS.fullmatch(w) or re.search(r"n[’']t$", w, re.I):
            negated |= terms & set(tokenize(" ".join(words[i + 1 : i + 7])))
    matched = terms & set(tokenize(sentence))
    weight = lambda ts: sum(idf.get(t, 1.0) for t in ts)  # noqa: E731
    share = weight(negated) / weight(matched) if matched else 0.0
    if YES_NO.match(question):
        return "no" if share >= 0.25 or flipped else None
    if flipped:
        return "contradiction"
    if REPORTING.search(question) and not PRESUPPOSING.match(question):
        return None  # "what did X say about Y" presupposes only that X spoke about Y
    needed = 0.25 if PRESUPPOSING.match(question) else 0.5
    return "contradiction" if share >= needed else None
