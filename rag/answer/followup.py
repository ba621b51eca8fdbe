"""Follow-up questions rewritten with the conversation, without a model.

"What did he say about Crimea?" after a turn about Zelenskyy becomes
"What did Zelenskyy say about Crimea?"; an elliptical "What about Crimea?"
takes the frame of the previous question. The rewrite is what retrieval
sees and is returned to the user as ``question_used``.
"""

from __future__ import annotations

import re

PERSON_PRONOUNS = re.compile(r"\b(he|him|his|she|her|hers)\b", re.I)
THING_PRONOUNS = re.compile(r"\b(it|its|they|them|their|this|that|these|those)\b(?!\s+(?:is|was|are|were)\b\s*\?)", re.I)
ENTITY = re.compile(r"\b[A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*")
ELLIPSIS = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<topic>.+?)\s*\??\s*$", re.I)
FRAME = re.compile(r"^(?P<head>.*\babout\s+)(?P<topic>.+?)(?P<tail>\s*\??)$", re.I)
_FILLER = {"why", "what", "how", "not", "and", "then", "so", "really", "is", "that", "it", "when", "where", "who", "else", "more", "about", "the"}
NOT_ENTITIES = {"What", "Who", "When", "Where", "Why", "How", "Which", "Did", "Does", "Do", "Is", "Are",
                "Was", "Were", "The", "A", "An", "In", "On", "At", "If", "And", "But", "Then", "He", "She",
                "It", "They", "This", "That", "According", "Can", "Could", "Would", "Should", "I", "You", "We"}


def _entities(text: str) -> list[str]:
    """Capitalised spans; a word seen only at the start of sentences is not taken for a name."""
    found = []
    for m in ENTITY.finditer(text):
        words = m.group(0).split()
        before = text[: m.start()].rstrip()
        if len(words) == 1 and (not before or before[-1] in ".!?\"“”") and \
                not re.search(rf"[^.!?\s“\"]\s+{re.escape(words[0])}\b", text):
            continue
        while words and words[0] in NOT_ENTITIES:
            words = words[1:]
        if words:
            found.append(" ".join(words).rstrip("’'s").rstrip("’'"))
    return [e for e in found if e]


def _person(history: list[dict]) -> str | None:
    """The most salient name: user turns first (newest first), then answers; ties go to frequency."""
    ordered = [t for t in reversed(history) if t.get("role") == "user"] + \
              [t for t in reversed(history) if t.get("role") != "user"]
    for turn in ordered:
        ents = _entities(turn["content"])
        people = [e for e in ents if e.upper() != e and len(e) > 2 and not e.endswith(("ian", "ese", "ish"))
                  and not re.search(r"[’']s\b|\b[A-Z]{2,}\b", e)]  # "Ukraine's NATO" is no person
        if people:
            counts = {e: sum(t["content"].count(e) for t in history) for e in people}
            return max(people, key=lambda e: (counts[e], -people.index(e)))
    return None


_TOPIC_STOP = frozenset(
    "what which who whom whose when where why how did do does is are was were be been have has had the a an of to "
    "in on at for with about from by and or say said says tell told mention mentioned talk talked would could "
    "should will can may might must that this these those it its they them their he him his she her there".split())


def _topic(text: str) -> str:
    """The content words of a question, in order ("Which occupied territories did Zelenskyy mention?" ->
    "occupied territories Zelenskyy")."""
    words = [w for w in re.findall(r"[\w’'-]+", text) if w.lower() not in _TOPIC_STOP]
    return " ".join(words)


def rewrite(question: str, history: list[dict] | None) -> str:
    """The follow-up as a standalone question (unchanged when it already is one)."""
    question = question.strip()
    history = [t for t in (history or []) if t.get("content")]
    if not history:
        return question
    users = [t["content"].strip() for t in history if t.get("role") == "user"]
    last_user = users[-1] if users else ""

    ellipsis = ELLIPSIS.match(question)
    if ellipsis and last_user:
        frame = FRAME.match(last_user)
        topic = ellipsis.group("topic")
        if frame:
            return f"{frame.group('head')}{topic}{frame.group('tail') or '?'}"
        return f"{last_user.rstrip('?')}, regarding {topic}?"

    content = [w for w in re.findall(r"[A-Za-z]+", question) if w.lower() not in _FILLER]
    if len(content) <= 1 and last_user:  # "Why not?", "And then?"
        return f"{last_user.rstrip('?')}: {question}"

    rewritten = question
    person = _person(history) if PERSON_PRONOUNS.search(question) else None
    if person:
        def sub(m):
            word = m.group(1).lower()
            if word in ("his", "hers"):
                return f"{person}’s"
            return person  # "her" as object or possessive: both read acceptably as the name
        rewritten = PERSON_PRONOUNS.sub(sub, question, count=1)
    if THING_PRONOUNS.search(question) and len(question.split()) <= 12 and last_user:
        # "What is it aimed at?": what "it" is lies in the previous question, so its content words ride along
        topic = " ".join(w for w in _topic(last_user).split() if w.lower() not in rewritten.lower())
        if topic:
            rewritten = f"{rewritten.rstrip().rstrip('?')} ({topic})?"
    return rewritten
