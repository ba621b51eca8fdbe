"""Sentence scoring behind one interface (:class:`Scorer`): candidate sentences of the retrieved
chunks, their features, the feature model and the cross-encoder scorer, abstention, and the choice
of the sentences that answer."""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from llama_index.core.schema import NodeWithScore

from rag.answer.extractive.question_kinds import (
    QUESTION_WORDS,
    _stem,
    _stems,
    answer_type,
    kind_noun,
    question_names,
    short_answer,
    typed_spans,
)
from rag.index.embeddings import embed_texts
from rag.index.lexical import tokenize
from rag.index.sentences import Span, heading_spans, parse_heading_spans, sentence_spans

CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "abstention.json"
DEFAULT_MODEL = {"weights": {"coverage": 4.0, "dense": 6.0, "rank": 1.0, "typed": 3.0}, "bias": -7.2,
                 "abstain": {"weights": {"best_coverage": 4.0, "best_dense": 6.0, "best_typed": 1.0}, "bias": -5.0,
                             "threshold": 0.5},
                 "source": "hand-set defaults (no calibration file)"}
ANSWERABILITY = ["best_coverage", "best_dense", "best_typed"]

# ------------------------------------------------------------------ candidates and scoring


@lru_cache(maxsize=1)
def scoring_model() -> dict:
    if CALIBRATION.is_file():
        return json.loads(CALIBRATION.read_text())
    return DEFAULT_MODEL


def focus_terms(question: str) -> list[str]:
    terms = [t for t in tokenize(question) if t not in QUESTION_WORDS]
    return terms or tokenize(question)


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
    context: str = ""  # the sentence before it in the document (or the title for a first sentence)
    heading: str = ""  # the heading it stands under ("" when none)


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


def chunk_headings(node) -> list[Span]:
    """Heading spans (document offsets) inside a retrieved chunk: as chunking recorded them (``headings``
    metadata), else, for chunks indexed before that, the heading-looking lines of the chunk's text."""
    meta, base = node.metadata, node.start_char_idx or 0
    if "headings" in meta:
        return parse_heading_spans(meta["headings"])
    return [Span(base + h.start, base + h.end) for h in heading_spans(node.text)]


def candidates(nodes: list[NodeWithScore]) -> list[Candidate]:
    """Every sentence of the retrieved chunks, once, with document offsets. Headings are structure, not
    answers: they are left out, and each sentence keeps the heading it stands under (``heading``)."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, nws in enumerate(nodes):
        node, meta = nws.node, nws.node.metadata
        base = node.start_char_idx or 0
        spans = sentence_spans(node.text)
        headings = chunk_headings(node)
        heading = meta.get("section", "") or ""
        for i, span in enumerate(spans):
            start, end = base + span.start, base + span.end
            if any(h.start <= start and end <= h.end for h in headings):
                heading = span.text(node.text)
                continue  # a heading is no answer; it lends its words to the sentences under it
            key = (meta["doc_id"], start)
            if key in seen:
                continue
            seen.add(key)
            if start == 0 and len(spans) > 1 and span.text(node.text).strip() == meta["title"].strip():
                continue  # a headline line is no answer (overview answers read the document themselves)
            context = spans[i - 1].text(node.text) if i else (meta["title"] if base == 0 else "")
            c = Candidate(meta["doc_id"], meta["doc_hash"], meta["source"], meta["title"],
                          start, end, span.text(node.text), rank, context=context, heading=heading)
            c.features["chunk"] = float(meta.get("dense_score", 0.0))
            c.features["rank"] = 1.0 / (1.0 + rank)
            out.append(c)
    return out


# A sentence opening with a pronoun or a linking word leans on the one before it.
ANAPHOR = re.compile(r"^\W*(?:\w+,?\s+){0,2}?(?:this|these|those|that|it|its|they|them|their|he|she|his|her|"
                     r"such|instead|there)\b", re.I)
CONTEXT_SHARE = 0.7  # weight of a question word found only in the previous sentence
HEADING_SHARE = 0.5  # weight of a question word found only in the heading above the sentence or the document title
MAX_EMBED = 8  # sentences embedded per question (the most promising by coverage and rank): most of a first ask's time;
# 8 answers the dev sets as well as 12 did (seed: unanswerable 10/10 instead of 9/10), 6 loses 2 seed answers
TYPED_GATE = 0.5  # a typed question whose best sentence holds nothing of the kind (fit below this) abstains
FLOOR_DEPTH = 3  # the dense floor looks at the best ranked sentences only
TYPED_FLOOR_BONUS = 0.1  # ... and one whose best sentence holds it clearly (fit >= 0.9) needs less similarity


def featurize(question: str, q_vec: np.ndarray, cands: list[Candidate], idf: dict[str, float],
              embeddings: SentenceEmbeddings, max_embed: int | None = None) -> list[Candidate]:
    """Fill every candidate's features and ``prob`` (the feature model); returns them best first.
    Sentence vectors are computed only for the ``max_embed`` most promising (by coverage and rank)."""
    terms = focus_terms(question)
    noun = kind_noun(question)
    if noun and len(terms) > 1:
        terms = [t for t in terms if t != tokenize(noun)[0]] if tokenize(noun) else terms
    weights: dict[str, float] = {}
    rarest = None
    for t in terms:  # idf of the word as written; matched through its stem
        w = idf.get(t)
        if w is None:  # a word no chunk holds weighs as the rarest one
            rarest = max(idf.values(), default=1.0) if rarest is None else rarest
            w = rarest
        s = _stem(t)
        weights[s] = max(weights.get(s, 0.0), w)
    total = sum(weights.values()) or 1.0
    kind = answer_type(question)
    for c in cands:
        present = set(_stems(c.text))
        own = sum(w for t, w in weights.items() if t in present)
        counted = set(present)
        if c.context and ANAPHOR.match(c.text):  # "These regions would ...": the previous sentence says which
            before = set(_stems(c.context)) - present
            own += CONTEXT_SHARE * sum(w for t, w in weights.items() if t in before)
            counted |= before
        if c.heading or c.title:  # "## Budget" under "# Project Heron": what the sentence is about
            above = set(_stems(f"{c.heading} {c.title}")) - counted
            own += HEADING_SHARE * sum(w for t, w in weights.items() if t in above)
        c.features["coverage"] = own / total
        spans = typed_spans(c.text, kind, question) if kind else []
        c.features["typed"] = 1.0 if kind is None else (spans[0].score if spans else 0.0)
        c.features["typed_fit"] = 1.0 if kind is None else max((s.fit for s in spans), default=0.0)
        c.features["dense"] = 0.0
    shortlist = sorted(cands, key=lambda c: -(c.features["coverage"] + c.features["rank"]))[:max_embed or MAX_EMBED]
    if shortlist:
        vecs = embeddings.get(shortlist)
        for c, v in zip(shortlist, vecs @ q_vec):
            c.features["dense"] = float(v)
    for c in cands:
        c.prob = score(c.features)
    return sorted(cands, key=lambda c: -c.prob)


def prefer_typed(question: str, ranked: list[Candidate], depth: int = 5, share: float = 0.5) -> list[Candidate]:
    """For a typed question whose best sentence holds nothing of the kind, the first of the next ``depth``
    sentences that clearly does (fit >= 0.9), scores at least ``share`` of the best and holds 30% of the question's
    words moves to the top (multi-hop questions: the top sentence is often the bridge to the answer's)."""
    if not ranked or answer_type(question) is None or ranked[0].features.get("typed_fit", 1.0) >= TYPED_GATE:
        return ranked
    for i, c in enumerate(ranked[1:depth], 1):
        if c.features.get("typed_fit", 0.0) >= 0.9 and c.prob >= share * ranked[0].prob and \
                c.features.get("coverage", 0.0) >= 0.3:
            return [c] + ranked[:i] + ranked[i + 1:]
    return ranked


class Scorer(Protocol):
    """What the extractive answerer needs from a sentence scorer.

    ``rank`` fills ``Candidate.prob`` (probability that the sentence answers the question) and returns the
    candidates best first; ``answerable`` is the probability that the ranked candidates answer the question
    at all, compared with ``threshold`` to abstain. A learned scorer (e.g. a cross-encoder over (question,
    sentence) pairs) implements these and replaces :class:`FeatureScorer` in one place."""

    name: str
    threshold: float

    def rank(self, question: str, cands: list[Candidate]) -> list[Candidate]: ...

    def answerable(self, question: str, ranked: list[Candidate]) -> float: ...


class FeatureScorer:
    """The model-free scorer: the logistic feature model of :func:`featurize` and :func:`answerability`."""

    name = "features"

    def __init__(self, query_vector: Callable[[str], np.ndarray], idf: Callable[[], dict[str, float]],
                 embeddings: SentenceEmbeddings, model: dict | None = None):
        self.query_vector, self.idf, self.embeddings = query_vector, idf, embeddings
        self.model = model or scoring_model()
        self.threshold = float(self.model["abstain"]["threshold"])

    def rank(self, question: str, cands: list[Candidate]) -> list[Candidate]:
        return prefer_typed(question, featurize(question, self.query_vector(question), cands, self.idf(),
                                                self.embeddings))

    def answerable(self, question: str, ranked: list[Candidate]) -> float:
        """The abstention model's probability, with two rules measured on the dev sets: a typed question
        ("who", "when", "how many") whose best sentence holds nothing of the asked kind is not answered;
        a sentence as close in meaning as ``dense_floor`` (MiniLM cosine) answers a paraphrased question
        that shares few words with it."""
        if not ranked:
            return 0.0
        if answer_type(question) and ranked[0].features.get("typed_fit", 1.0) < TYPED_GATE:
            return 0.0
        p = answerability(ranked, self.model)
        floor = self.model["abstain"].get("dense_floor")
        if floor is not None and answer_type(question) and ranked[0].features.get("typed_fit", 0.0) >= 0.9:
            floor -= TYPED_FLOOR_BONUS  # the asked kind of thing is there: less similarity needed
        top = ranked[:FLOOR_DEPTH]
        if floor is not None and max(c.features["dense"] for c in top) >= floor and \
                max(c.features["coverage"] for c in top) > 0:
            p = max(p, self.threshold)
        return p


class CrossEncoderScorer:
    """A learned scorer: a cross-encoder reads (question, sentence || previous sentence) and gives P(the
    sentence holds or leads to the answer) (``rag.judge.cross_encoder.sentence_scorer``, trained on HaluEval QA
    rows 0-3999). The feature model only shortlists the ``shortlist`` most promising candidates (for speed)
    and supplies the typed features; the cross-encoder's probabilities rank them. Abstention: the best
    probability against ``threshold`` (calibrated by ``bench/calibrate_abstention.py --scorer
    cross-encoder`` on held-back rows), with the typed gate of :class:`FeatureScorer`."""

    name = "cross-encoder"

    def __init__(self, encoder, features: FeatureScorer, threshold: float | None = None, shortlist: int = 24,
                 typed_weight: float = 0.0, abstain_by: str = "learned", mix: float = 1.0):
        from rag.judge.cross_encoder import sentence_pair

        self.encoder, self.features, self.shortlist = encoder, features, shortlist
        self._pair = sentence_pair
        self.threshold = float(threshold if threshold is not None else encoder.threshold)
        self.typed_weight = typed_weight
        self.abstain_by, self.mix = abstain_by, mix  # abstain by "learned" or "features"; prob = mix of both

    def rank(self, question: str, cands: list[Candidate]) -> list[Candidate]:
        ranked = self.features.rank(question, cands)
        self._feature_answerable = self.features.answerable(question, ranked)
        head, tail = ranked[: self.shortlist], ranked[self.shortlist:]
        probs = self.encoder.predict([(question, self._pair(c.text, c.context)) for c in head]) if head else []
        typed = answer_type(question) is not None
        for c, p in zip(head, probs):
            c.features["learned"] = float(p)
            factor = (1 - self.typed_weight) + self.typed_weight * c.features["typed"] if typed else 1.0
            c.prob = (self.mix * float(p) + (1 - self.mix) * c.prob) * factor
        for c in tail:
            c.features["learned"], c.prob = 0.0, 0.0
        return sorted(head, key=lambda c: -c.prob) + tail

    def answerable(self, question: str, ranked: list[Candidate]) -> float:
        if not ranked:
            return 0.0
        if self.abstain_by == "features":
            return self._feature_answerable
        if answer_type(question) and ranked[0].features.get("typed_fit", 1.0) < TYPED_GATE:
            return 0.0
        return max(c.features.get("learned", 0.0) for c in ranked)


def make_scorer(features: FeatureScorer, kind: str | None = None) -> Scorer:
    """The sentence scorer to use: ``kind`` (or env ``RAG_SENTENCE_SCORER``) ``features`` or
    ``cross-encoder``. By default the feature scorer, unless ``rag/data/abstention.json`` says the
    cross-encoder (its weights shipped in ``rag/data``) measured better (``cross_encoder.default``): the
    first shipped weights did not (seed dev set: 2/21 answered against 19/21)."""
    import os

    kind = kind or os.environ.get("RAG_SENTENCE_SCORER") or "auto"
    if kind == "features" or (kind == "auto" and not features.model.get("cross_encoder", {}).get("default")):
        return features
    try:
        from rag.judge import cross_encoder

        if not (cross_encoder.DATA_DIR / f"{cross_encoder.SENTENCE_MODEL}.json").is_file():
            raise FileNotFoundError("no sentence-scorer weights")
        encoder = cross_encoder.sentence_scorer()
    except (ImportError, OSError, RuntimeError):
        if kind == "cross-encoder":
            raise
        return features
    calib = features.model.get("cross_encoder", {})
    abstain_by = os.environ.get("RAG_CE_ABSTAIN", calib.get("abstain_by", "learned"))
    return CrossEncoderScorer(encoder, features, threshold=features.threshold if abstain_by == "features"
                              else calib.get("threshold"), typed_weight=calib.get("typed_weight", 0.0),
                              abstain_by=abstain_by, mix=float(os.environ.get("RAG_CE_MIX", calib.get("mix", 1.0))))




def names_elsewhere(question: str, ranked: list[Candidate]) -> list[str]:
    """Names of the question that another retrieved document holds but the best sentence's document does not
    (as far as its retrieved sentences, their headings and its title show), when at least half of the
    question's names are missing there: "When does the Madrid office close?" is not answered by the Lisbon
    office page. (A name no retrieved text holds is the premise check's: ``premises.missing_entities``.)"""
    names = question_names(question)
    if not names or not ranked:
        return []
    best = ranked[0]
    own = " ".join(f"{c.text} {c.context} {c.heading}" for c in ranked if c.doc_id == best.doc_id)
    own = f"{own} {best.title}".lower()
    absent = [n for n in names if n.lower() not in own]
    if len(absent) < 0.5 * len(names):
        return []
    other = " ".join(f"{c.text} {c.heading} {c.title}" for c in ranked if c.doc_id != best.doc_id).lower()
    return [n for n in absent if n.lower() in other]


RELATED_DENSE = 0.4  # MiniLM cosine of a sentence close in meaning to the question
RELATED_SHARED_DENSE = 0.2  # ... enough for a sentence that shares at least half of the question's words


def related_sentence(ranked: list[Candidate]) -> Candidate | None:
    """The sentence an abstention may offer as "related, but not an answer": the best ranked one when it is
    about the question: close in meaning (cosine >= ``RELATED_DENSE``) and sharing some of its words, or
    sharing half of its words (idf-weighted) and not far in meaning (>= ``RELATED_SHARED_DENSE``). "The chair
    of the meeting is Dr. Amara Osei, head of finance." shares "head" with "Who is the head gardener?"
    (cosine 0.17) and is not offered. (Thresholds read off the abstentions of the seed, BBC and everyday
    dev sets.)"""
    if not ranked:
        return None
    best = ranked[0]
    coverage, dense = best.features.get("coverage", 1.0), best.features.get("dense", 1.0)
    if coverage >= 0.1 and (dense >= RELATED_DENSE or (coverage >= 0.5 and dense >= RELATED_SHARED_DENSE)):
        return best
    return None


def choose(cands: list[Candidate], model: dict | None = None, max_sentences: int = 2,
           scorer: Scorer | None = None, question: str = "") -> list[Candidate]:
    """Nothing when the question looks unanswerable; else the best sentence, plus
    others nearly as good (ranking probability within 80% of the best). A typed
    question ("who", "when", "how many") gets one sentence: the one holding the answer."""
    if not cands:
        return []
    if scorer is not None:
        if scorer.answerable(question, cands) < scorer.threshold:
            return []
    else:
        model = model or scoring_model()
        if answerability(cands, model) < model["abstain"]["threshold"]:
            return []
    if question and names_elsewhere(question, cands):
        return []
    if question and answer_type(question) and short_answer(question, cands[0].text):
        max_sentences = 1
    chosen = [cands[0]]
    for c in cands[1:]:
        if len(chosen) >= max_sentences:
            break
        if c.prob >= 0.8 * cands[0].prob and c.text not in {x.text for x in chosen}:
            chosen.append(c)
    # read in document order within each document
    return sorted(chosen, key=lambda c: (c.chunk_rank if c.doc_id != chosen[0].doc_id else -1, c.doc_id, c.start))
