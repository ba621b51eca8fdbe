"""Contradiction cues: a negation flip or an antonym flip between a claim and its best-matching evidence sentence.

The distilled judge (``rag/data/judge-minilm.onnx``) alone misses contradictions built from the evidence's
own words ("does not mean" -> "does mean", "wary" -> "eager"; see its model card), and
``rag.judge.judges.CrossEncoderJudge`` caps a claim showing one of these two cues below its threshold.

They are what remains of the hand-made lexical judge the cross-encoder replaced. Its logistic model,
similarity, novelty, name/number and swap features were deleted with it: the model alone measured at least
as well on HaluEval, and the swap cue cost about 30 points there (CNN highlights hold names and numbers
their article's best sentence lacks).

``cues(claim, evidence)`` returns ``({"negation": 0/1, "antonym": 0-2}, reasons)``. The best-matching
sentence is the one sharing most idf-weighted content words with the claim; antonyms are compared clause
by clause (each claim clause against the evidence clause covering most of its words).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from rag.index.lexical import STOPWORDS, tokenize
from rag.index.sentences import clause_spans, sentence_spans

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                     "ninety": "90", "hundred": "100", "dozen": "12", "first": "1", "second": "2", "third": "3",
                     "fourth": "4", "fifth": "5", "half": "0.5", "once": "1", "twice": "2", "single": "1"})
_PREFIXES = ("un", "in", "ir", "il", "im", "dis", "non", "non-", "de")
ANTONYMS = {frozenset(p) for p in [
    ("increase", "decrease"), ("increased", "decreased"), ("rise", "fall"), ("rose", "fell"), ("win", "lose"),
    ("won", "lost"), ("accept", "reject"), ("accepted", "rejected"), ("accepting", "rejecting"),
    ("approve", "reject"), ("approved", "rejected"), ("eager", "wary"), ("higher", "lower"), ("allow", "ban"),
    ("allowed", "banned"), ("support", "oppose"), ("supported", "opposed"), ("supports", "opposes"),
    ("alive", "dead"), ("survived", "died"), ("guilty", "innocent"), ("acquitted", "convicted"),
    ("male", "female"), ("largest", "smallest"), ("biggest", "smallest"), ("best", "worst"),
    ("encourage", "discourage"), ("encouraging", "discouraging"), ("success", "failure"), ("true", "false"),
    ("east", "west"), ("eastern", "western"), ("north", "south"),
    ("northern", "southern"), ("ally", "enemy"), ("gain", "loss"), ("gained", "lost"), ("profit", "loss"),
    ("minority", "majority"),
]}

# --------------------------------------------------------------------------- words


def singular(word: str) -> str:
    """'losses' -> 'loss', 'gains' -> 'gain'; 'loss' stays."""
    if word.endswith("sses") or word.endswith("xes") or word.endswith("ches"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _key(token: str) -> str:
    """Matching key for a content word: its first six letters (plural/tense-tolerant)."""
    return NUMBER_WORDS.get(token, token[:6] if not token[0].isdigit() else token.replace(",", ""))


def content_keys(text: str) -> list[str]:
    """Prefix keys of the content words (used to pick the best-matching sentence and clauses)."""
    return [_key(t) for t in tokenize(text)]


IRREGULAR = {
    "said": "say", "says": "say", "told": "tell", "tells": "tell", "went": "go", "goes": "go", "made": "make",
    "took": "take", "taken": "take", "found": "find", "gave": "give", "given": "give", "came": "come",
    "got": "get", "left": "leave", "held": "hold", "won": "win", "lost": "lose", "spent": "spend",
    "began": "begin", "begun": "begin", "brought": "bring", "bought": "buy", "thought": "think", "built": "build",
    "fell": "fall", "fallen": "fall", "rose": "rise", "risen": "rise", "met": "meet", "paid": "pay",
    "sent": "send", "sold": "sell", "kept": "keep", "led": "lead", "wrote": "write", "written": "write",
    "struck": "strike", "caught": "catch", "taught": "teach", "ran": "run", "saw": "see", "seen": "see",
    "knew": "know", "known": "know", "became": "become", "died": "die", "dies": "die", "dying": "die",
    "death": "die", "dead": "die", "children": "child", "men": "man", "women": "woman", "people": "person",
}


def _norm_number(raw: str) -> str:
    value = raw.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


def stem(word: str) -> str:
    """A light stemmer for matching: irregular forms, common suffixes, final e and doubled consonant, 7 letters."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    if word[0].isdigit():
        return _norm_number(word)
    for suffix in ("ingly", "edly", "ings", "ing", "ied", "ies", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word[:7]


def content_stems(text: str) -> list[str]:
    return [stem(t) for t in tokenize(text)]


def words_lower(text: str) -> set[str]:
    """Lower-cased words, possessive 's stripped; a hyphenated word also whole ("al-shabaab", "al", "shabaab")."""
    words = re.findall(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)*", text)
    parts = [p for w in words if "-" in w for p in w.split("-")]
    return {re.sub(r"'s?$", "", w.lower().replace("’", "'")) for w in words + parts}


# --------------------------------------------------------------------------- negation

_NEG_CUE = re.compile(r"\b(?:not|no|never|nobody|neither|nor|without|cannot)\b(?!\.\s*\d)|n't\b", re.I)
_NOT_A_NEGATION = re.compile(r"\b(?:not only|not just|not-so|no doubt|no matter|no way|never mind|not least)\b", re.I)
_SCOPE_SKIP = frozenset("be is are was were been being have has had do does did a an the to any longer yet "
                        "ever so very much more as say says said".split())


def negated_stems(text: str, reach: int = 4, take: int = 1) -> set[str]:
    """Stems of the words a negation governs: the first ``take`` content words (names skipped) among the
    ``reach`` words after each cue (not/no/never/n't/without ...), stopping at punctuation; 'not only',
    'no doubt' ... are no negation."""
    text = _NOT_A_NEGATION.sub(" ", text.replace("’", "'"))
    out: set[str] = set()
    for m in _NEG_CUE.finditer(text):
        clause = re.split(r"[,.;:!?\"“”()]|--", text[m.end():], maxsplit=1)[0]
        taken = 0
        for w in re.findall(r"[A-Za-z0-9']+", clause)[:reach]:
            lw = w.lower()
            if lw in _SCOPE_SKIP or lw in STOPWORDS or (w[0].isupper() and take < 8):
                continue
            out.add(stem(lw))
            taken += 1
            if taken >= take:
                break
    return out


def negation_flips(claim: str, evidence: str) -> list[tuple[str, str]]:
    """(side, word) where a word negated on one side occurs on the other with no negation anywhere near it."""
    c_neg, e_neg = negated_stems(claim), negated_stems(evidence)
    c_near, e_near = negated_stems(claim, 8, 8), negated_stems(evidence, 8, 8)
    c_all, e_all = set(content_stems(claim)), set(content_stems(evidence))
    flips = [("claim", w) for w in sorted(c_neg) if w in e_all and w not in e_near]
    flips += [("evidence", w) for w in sorted(e_neg) if w in c_all and w not in c_near]
    return flips


# --------------------------------------------------------------------------- antonyms


def antonym_flips(claim: str, evidence_words: set[str]) -> list[tuple[str, str]]:
    """(claim word, evidence word) pairs where the evidence holds the opposite form."""
    claim_words = words_lower(claim)
    flips = []
    for w in claim_words:
        if len(w) < 4 or w in evidence_words:
            continue
        for v in evidence_words:
            if v in claim_words or len(v) < 4:
                continue
            if (any(v == p + w or w == p + v for p in _PREFIXES) or frozenset((w, v)) in ANTONYMS
                    or frozenset((singular(w), singular(v))) in ANTONYMS):
                flips.append((w, v))
    return flips


def _clauses(text: str) -> list[str]:
    return [c.text(text) for s in sentence_spans(text) for c in clause_spans(text, s)]


def aligned_clauses(claim: str, sentence: str, min_overlap: float = 0.4) -> list[tuple[str, str]]:
    """Pairs (claim clause, evidence clause) where the evidence clause covers enough of the claim clause's words."""
    e_clauses = [(c, set(content_keys(c))) for c in _clauses(sentence)]
    pairs = []
    for c in _clauses(claim):
        keys = set(content_keys(c))
        if not keys or not e_clauses:
            continue
        best, best_keys = max(e_clauses, key=lambda e: len(keys & e[1]))
        if len(keys & best_keys) / len(keys) >= min_overlap:
            pairs.append((c, best))
    return pairs


# --------------------------------------------------------------------------- the best-matching sentence


class _Sentences:
    """The evidence's sentences with their content keys and idf weights."""

    def __init__(self, passages: tuple[str, ...]):
        self.sentences = [s.text(p) for p in passages for s in sentence_spans(p)]
        self.keys = [set(content_keys(s)) for s in self.sentences]
        n = max(len(self.sentences), 1)
        df: dict[str, int] = {}
        for ks in self.keys:
            for k in ks:
                df[k] = df.get(k, 0) + 1
        self.idf = {k: math.log(1 + n / d) for k, d in df.items()}

    def best(self, claim: str) -> str:
        """The sentence sharing most idf-weighted content keys with the claim (the first such); '' if none."""
        if not self.sentences:
            return ""
        cset = set(content_keys(claim))
        # summed in key order: the same float for the same words whatever the hash seed (ties are common)
        overlap = [sum(self.idf.get(k, 0.0) for k in sorted(cset & ks)) for ks in self.keys]
        return self.sentences[max(range(len(overlap)), key=lambda i: (overlap[i], -i))]


@lru_cache(maxsize=8)  # a claim's sentences are checked one by one against the same evidence
def _sentences(passages: tuple[str, ...]) -> _Sentences:
    return _Sentences(passages)


def cues(claim: str, evidence: list[str] | str) -> tuple[dict[str, float], list[str]]:
    """``({"negation": 0 or 1, "antonym": 0-2}, reasons)`` of the claim against its best-matching sentence."""
    best = _sentences((evidence,) if isinstance(evidence, str) else tuple(evidence)).best(claim)
    if not best:
        return {"negation": 0.0, "antonym": 0.0}, []
    negations = negation_flips(claim, best)
    flips: list[tuple[str, str]] = []
    for c_clause, e_clause in aligned_clauses(claim, best):
        flips += antonym_flips(c_clause, words_lower(e_clause))
    reasons = [f"negation differs from the best-matching sentence: '{word}' is negated in the {side} only"
               for side, word in negations[:2]]
    reasons += [f"'{w}' where the evidence says '{v}'" for w, v in flips[:2]]
    return {"negation": float(bool(negations)), "antonym": float(min(len(flips), 2))}, reasons
