"""The default answer engine: picks the document sentences that answer the
question and composes an answer from them, verbatim, with [n] markers.

Each candidate sentence of the retrieved chunks gets features:

* ``coverage``: idf-weighted share of the question's focus words the sentence contains;
* ``dense``: cosine between question and sentence embeddings (MiniLM);
* ``rank``: 1 / (1 + rank of the sentence's chunk in retrieval) (raw chunk cosines
  shift with chunk length from corpus to corpus; ranks do not);
* ``typed``: 1 when the sentence holds the kind of thing asked for (a date for
  "when", a number for "how many", a name for "who"), else 0.

A logistic model over these features (weights fitted on data by
``bench/calibrate_abstention.py`` and stored in ``rag/data/abstention.json``)
gives the probability that the sentence answers the question. Below the
calibrated threshold the engine abstains and offers the closest passage as
"related, but not an answer". If the best sentence negates what the question
takes for granted, the answer says the premise is contradicted.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from llama_index.core.schema import NodeWithScore

from .embeddings import embed_texts
from .lexical import tokenize
from .sentences import sentence_spans

CALIBRATION = Path(__file__).parent / "data" / "abstention.json"
DEFAULT_MODEL = {"weights": {"coverage": 4.0, "dense": 6.0, "rank": 1.0, "typed": 1.0}, "bias": -5.2,
                 "abstain": {"weights": {"best_coverage": 4.0, "best_dense": 6.0, "best_typed": 1.0}, "bias": -5.0,
                             "threshold": 0.5},
                 "source": "hand-set defaults (no calibration file)"}
ANSWERABILITY = ["best_coverage", "best_dense", "best_typed"]

QUESTION_WORDS = frozenset(tokenize(
    "what who whom whose which when where why how did does do is are was were say said says tell told "
    "according article document documents mention mentioned describe explain many much kind sort type "
    "give example name happen happened think thought stated state"))
NEGATIONS = re.compile(r"\b(?:not|no|never|none|nothing|neither|nor|without|cannot|can't|won't|n't)\b|n[’']t\b", re.I)
MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
DATE = re.compile(rf"\b(?:{MONTHS}|(?:1[6-9]|20)\d\d|yesterday|today|tomorrow|last (?:week|month|year)|"
                  r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|spring|summer|autumn|winter|earlier this year)\b")
NUMBER = re.compile(r"\b(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                    r"dozen|hundred|thousand|million|billion)\b", re.I)
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")


@lru_cache(maxsize=1)
def scoring_model() -> dict:
    if CALIBRATION.is_file():
        return json.loads(CALIBRATION.read_text())
    return DEFAULT_MODEL


def focus_terms(question: str) -> list[str]:
    terms = [t for t in tokenize(question) if t not in QUESTION_WORDS]
    return terms or tokenize(question)


def answer_type(question: str) -> str | None:
    q = question.lower()
    if re.search(r"\bhow (?:many|much)\b|\bwhat (?:number|percentage|share)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (?:year|month|date|day)\b", q):
        return "date"
    if re.search(r"^\s*who\b|\bwho (?:is|was|said|did)\b", q):
        return "name"
    return None


def has_type(sentence: str, kind: str | None, question: str) -> float:
    if kind is None:
        return 1.0
    if kind == "date":
        return 1.0 if DATE.search(sentence) else 0.0
    if kind == "number":
        return 1.0 if NUMBER.search(sentence) else 0.0
    q_words = {w.lower() for w in re.findall(r"[A-Za-z]+", question)}
    names = [m.group(0) for m in NAME.finditer(sentence)]
    return 1.0 if any(n.split()[0].lower() not in q_words for n in names) else 0.0


@dataclass
class Candidate:
    doc_id: str
    doc_hash: str
    source: str
    title: str
    start: int
    end: int
    text: str
    chunk_rank: int
    features: dict = field(default_factory=dict)
    prob: float = 0.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def score(features: dict, model: dict | None = None) -> float:
    """Probability that a sentence is the one that answers (the ranking model)."""
    model = model or scoring_model()
    z = model["bias"] + sum(model["weights"][k] * features[k] for k in model["weights"])
    return _sigmoid(z)


def answerability_features(ranked: list["Candidate"]) -> dict:
    """Question-level evidence that the retrieved text answers at all: the best
    coverage and sentence similarity over all candidates, and whether the
    top-ranked sentence holds the kind of thing asked for."""
    if not ranked:
        return {k: 0.0 for k in ANSWERABILITY}
    return {"best_coverage": max(c.features["coverage"] for c in ranked),
            "best_dense": max(c.features["dense"] for c in ranked),
            "best_typed": ranked[0].features["typed"]}


def answerability(ranked: list["Candidate"], model: dict | None = None) -> float:
    """Probability that the question is answered by the retrieved text (the abstention model)."""
    m = (model or scoring_model())["abstain"]
    f = answerability_features(ranked)
    return _sigmoid(m["bias"] + sum(m["weights"][k] * f[k] for k in m["weights"]))


class SentenceEmbeddings:
    """Per-process cache of sentence vectors keyed by (doc_hash, start, end)."""

    def __init__(self, limit: int = 50_000):
        self.cache: dict[tuple, np.ndarray] = {}
        self.limit = limit
        self._lock = threading.Lock()

    def get(self, cands: list[Candidate]) -> np.ndarray:
        keys = [(c.doc_hash, c.start, c.end) for c in cands]
        with self._lock:
            found = {k: self.cache[k] for k in keys if k in self.cache}
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            vecs = embed_texts([cands[i].text for i in todo])
            with self._lock:
                if len(self.cache) + len(todo) > self.limit:
                    self.cache.clear()
                for i, v in zip(todo, vecs):
                    self.cache[keys[i]] = found[keys[i]] = v
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


def candidates(nodes: list[NodeWithScore]) -> list[Candidate]:
    """Every sentence of the retrieved chunks, once, with document offsets."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, nws in enumerate(nodes):
        node, meta = nws.node, nws.node.metadata
        base = node.start_char_idx or 0
        for span in sentence_spans(node.text):
            key = (meta["doc_id"], base + span.start)
            if key in seen:
                continue
            seen.add(key)
            c = Candidate(meta["doc_id"], meta["doc_hash"], meta["source"], meta["title"],
                          base + span.start, base + span.end, span.text(node.text), rank)
            c.features["chunk"] = float(meta.get("dense_score", 0.0))
            c.features["rank"] = 1.0 / (1.0 + rank)
            out.append(c)
    return out


def featurize(question: str, q_vec: np.ndarray, cands: list[Candidate], idf: dict[str, float],
              embeddings: SentenceEmbeddings, max_embed: int = 12) -> list[Candidate]:
    """Fill every candidate's features; sentence vectors only for the most promising."""
    terms = focus_terms(question)
    weights = {t: idf.get(t, max(idf.values(), default=1.0)) for t in set(terms)}
    total = sum(weights.values()) or 1.0
    kind = answer_type(question)
    for c in cands:
        present = set(tokenize(c.text))
        c.features["coverage"] = sum(w for t, w in weights.items() if t in present) / total
        c.features["typed"] = has_type(c.text, kind, question)
        c.features["dense"] = 0.0
    shortlist = sorted(cands, key=lambda c: -(c.features["coverage"] + c.features["rank"]))[:max_embed]
    if shortlist:
        vecs = embeddings.get(shortlist)
        for c, v in zip(shortlist, vecs @ q_vec):
            c.features["dense"] = float(v)
    for c in cands:
        c.prob = score(c.features)
    return sorted(cands, key=lambda c: -c.prob)


# Words the answerer adds around quotes; they frame a quote and are not claims about the documents.
FRAMES = re.compile(r"^(?:No\.\s+|The documents contradict the premise of the question:\s+|"
                    r"The documents do not mention [^;]{1,200}; what they say is:\s+|Related, but not an answer:\s+)")
YES_NO = re.compile(r"^\s*(?:does|do|did|is|are|was|were|would|will|can|could|has|have|had|should|must)\b", re.I)
REPORTING = re.compile(r"\b(?:say|said|tell|told|mention|mentioned|think|thought|describe|stated?)\b.*\babout\b", re.I)
PRESUPPOSING = re.compile(r"^\s*(?:why|how come|what made|what led)\b", re.I)
_PREFIXES = ("ir", "un", "in", "im", "il", "non", "dis")


def _antonym_flip(question: str, sentence: str) -> bool:
    """'reversible' in the question where the sentence says 'irreversible' (or the reverse)."""
    q_words = {w.lower() for w in re.findall(r"[A-Za-z]{5,}", question)}
    s_words = {w.lower() for w in re.findall(r"[A-Za-z]{5,}", sentence)}
    for a, b in ((q_words, s_words), (s_words, q_words)):
        for w in a:
            if any(p + w in b for p in _PREFIXES):
                return True
    return False


def missing_entities(question: str, context: str) -> list[str]:
    """Capitalised names in the question (not its first word) that the retrieved text never mentions."""
    words = re.findall(r"(?<!^)(?<![.?!]\s)\b([A-Z][A-Za-z]{1,}|[A-Z]{2,})\b", question.strip())
    low = context.lower()
    return [w for w in dict.fromkeys(words) if w.lower() not in low and w.lower() not in QUESTION_WORDS | {"i", "not"}]


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


def choose(cands: list[Candidate], model: dict | None = None, max_sentences: int = 2) -> list[Candidate]:
    """Nothing when the question looks unanswerable; else the best sentence, plus
    others nearly as good (ranking probability within 80% of the best)."""
    model = model or scoring_model()
    if not cands or answerability(cands, model) < model["abstain"]["threshold"]:
        return []
    chosen = [cands[0]]
    for c in cands[1:]:
        if len(chosen) >= max_sentences:
            break
        if c.prob >= 0.8 * cands[0].prob and c.text not in {x.text for x in chosen}:
            chosen.append(c)
    # read in document order within each document
    return sorted(chosen, key=lambda c: (c.chunk_rank if c.doc_id != chosen[0].doc_id else -1, c.doc_id, c.start))
