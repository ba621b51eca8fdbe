"""The hand-made lexical judge (before the cross-encoder), kept for its contradiction cues.

``eval.judges.CrossEncoderJudge`` uses :class:`OfflineJudge` ``.features`` only for its decisive cues
(negation flip, antonym flip, swapped name or number against the best-matching sentence): a claim
showing one is capped below the threshold. The logistic model and its calibration file remain as they
were fitted (``bench/judge_halueval.py`` at commit 569db1c).

Original description follows.

Faithfulness judges: is a claim supported by the evidence it was drawn from?

A judge reads one claim and its evidence and returns a :class:`Verdict`
(supported or not, a probability-like score, the best-matching evidence
sentence and the reasons). ``eval.judges.judge_output`` splits a whole output into
claims (its sentences) and combines their scores (``eval.judges``; this module keeps only the
features and :class:`OfflineJudge`).

:class:`OfflineJudge` needs no model server. It aims to judge meaning, not
vocabulary: a contradiction built from the document's own words should fail
(negation or antonym flips, swapped names, numbers and dates against the
best-matching sentence), and rewording should cost as little as the data
allows. Each claim gets these features:

``dense``
    MiniLM cosine between the claim and its closest evidence sentence, or the
    mean vector of two adjacent candidate sentences, whichever is higher.
``novel_doc``
    share of the claim's content words (stopwords out, light stemming) that
    occur nowhere in the evidence.
``novel_count``
    log(1 + number of those words): each is a possible unsupported fact.
``unexplained``
    the same count after forgiving each lower-case novel word that has a near-synonym among the
    content words of the three evidence sentences that share most with the claim (MiniLM cosine of
    the two words embedded alone >= ``SYNONYM_COSINE``): "wary" for "cautious" is rewording, not a
    new fact. New names and numbers are never forgiven.
``novel_local``
    share of the claim's content words absent from the closest two-sentence window.
``unlinked``
    share of pairs of the claim's content words (both in the evidence) that
    never occur together within two adjacent evidence sentences: known words,
    new relation.
``novel_names``
    capitalised names in the claim that occur nowhere in the evidence (count, capped at 3).
``novel_numbers``
    numbers, months and weekdays in the claim that occur nowhere in the evidence (capped at 3).
``swap``
    the claim has a name/number/date the best sentence lacks *and* the best
    sentence has one of the same kind the claim lacks (a substitution), capped at 2.
``negation``
    a word negated on one side (not/no/never/n't/without ... right before it)
    that the other side states with no negation near it.
``antonym``
    a claim word whose prefix-flipped form (un-, in-, ir-, il-, im-, dis-,
    non-) or listed antonym stands in the aligned evidence clause instead.

A logistic model over these features gives the score. Its weights, threshold,
aggregation and the data rows used are in ``eval/data/judge_calibration.json``,
written by ``bench/judge_halueval.py --fit`` from HaluEval summarization rows
0-2499 (rows >= 5000 are reserved and never read). The fit constrains signs
(similarity may only help; unseen words and contradiction cues may only hurt)
and makes a negation or antonym flip decisive on an otherwise verbatim claim.

What the data said (bench/judge_halueval.py; figures in the README):

* Once lexical novelty is known, MiniLM sentence similarity carries no positive signal on HaluEval
  (its free weight comes out negative: the hallucinated summaries copy the article more closely), so
  the sign constraint sets it to 0 and the calibrated judge embeds no sentences (``use_embeddings=True``
  forces it).
* Every way of forgiving new words we tried costs HaluEval accuracy, because hallucinated summaries
  add words *related* to the article: near-synonyms at word cosine 0.8 are neutral there and are
  used; lower thresholds, or contextual word vectors (all-MiniLM's last layer) aligned to the closest
  sentences, forgive half the dev paraphrases only at a cost of about 4 points.
* HaluEval's faithful summaries hold names and numbers the article lacks more often than the
  hallucinated ones, so the data would zero the name/number/swap cues; their priors keep them (see
  ``PRIOR`` in the bench).

The consequence: a paraphrase in mostly new words is judged unsupported; light rewording (near-
synonyms, one or two new words) passes. :class:`LLMJudge` is the route for real paraphrase.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from rag.lexical import STOPWORDS, tokenize
from rag.sentences import clause_spans, sentence_spans

from .judges import Verdict  # one Verdict for every judge

CALIBRATION_PATH = Path(__file__).parent / "data" / "judge_calibration.json"
FEATURES = ["dense", "novel_doc", "novel_count", "unexplained", "novel_local", "unlinked", "novel_names",
            "novel_numbers", "swap", "negation", "antonym"]
# Two words are near-synonyms when the MiniLM cosine of the words on their own is at least this
# ("cautious"/"wary" 0.83, "car"/"vehicle" 0.87, "died"/"killed" 0.79; "increase"/"decrease" 0.60 and
# "doctor"/"hospital" 0.60 are not). Chosen on HaluEval summarization rows 0-2499 (0.7-0.9 all did as well).
SYNONYM_COSINE = 0.8
# Used only when no calibration file exists (hand-set; the fitted file replaces them).
DEFAULT_MODEL = {
    "features": FEATURES,
    "weights": {"dense": 2.0, "novel_doc": -3.0, "novel_count": -1.5, "unexplained": 0.0, "novel_local": -1.0,
                "novel_names": -1.5,
                "novel_numbers": -1.5,
                "swap": -2.0, "negation": -2.5, "antonym": -3.0, "unlinked": -1.0},
    "bias": -3.0,
    "threshold": 0.5,
    "source": "hand-set defaults (no calibration file)",
}


# --------------------------------------------------------------------------- text features

_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d[\d,]*(?:\.\d+)?")
_NAME = re.compile(r"\b(?:[A-Z][a-z]+[A-Za-z'’\-]*|[A-Z]{2,}[a-z]?s?)\b")
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                     "ninety": "90", "hundred": "100", "dozen": "12", "first": "1", "second": "2", "third": "3",
                     "fourth": "4", "fifth": "5", "half": "0.5", "once": "1", "twice": "2", "single": "1"})
_TIME_WORDS = frozenset(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split())
NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|without|cannot|n't|no longer|lack|lacks|"
                      r"lacked|fail|fails|failed|refuse|refused|refuses|deny|denied|denies)\b|n[’']t\b", re.I)
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
    """Prefix keys of the content words (used to pick candidate sentences)."""
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


def _norm_number(raw: str) -> str:
    value = raw.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


def quantities(text: str) -> set[str]:
    """Numbers (digits or number words), months and weekdays, normalised."""
    out = {_norm_number(m.group()) for m in _NUM.finditer(text)}
    for w in re.findall(r"[A-Za-z]+", text.lower()):
        ordinal_like = w in ("one", "first", "second", "once", "single", "half")  # "one" is mostly "a"/"someone"
        if (w in _TIME_WORDS and w != "may") or (w in NUMBER_WORDS and not ordinal_like):
            out.add(NUMBER_WORDS.get(w, w))
    out.discard("")
    return out


def names(text: str) -> set[str]:
    """Capitalised words, lower-cased, stopwords, months and weekdays excluded, possessive stripped."""
    out = set()
    for m in _NAME.finditer(text):
        if not text[: m.start()].strip() and not m.group().isupper():
            continue  # a sentence's first word is capitalised anyway
        w = re.sub(r"['’]s$", "", m.group()).lower()
        if w in STOPWORDS or w in _TIME_WORDS or w in NUMBER_WORDS or len(w) < 2:
            continue
        out.add(w)
    return out


def name_key(word: str) -> str:
    """Names match on their first five letters (Ukraine/Ukrainian, Russia/Russian)."""
    return word[:5] if len(word) >= 6 else word


def words_lower(text: str) -> set[str]:
    """Lower-cased words, possessive 's stripped; a hyphenated word also whole ("al-shabaab", "al", "shabaab")."""
    words = re.findall(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)*", text)
    parts = [p for w in words if "-" in w for p in w.split("-")]
    return {re.sub(r"'s?$", "", w.lower().replace("’", "'")) for w in words + parts}


_CAPITALISED_RUN = re.compile(r"\b[A-Z][A-Za-z]+(?:\s+(?:(?:of|and|for|the|&)\s+)*[A-Z][A-Za-z]+)+")


def acronyms(text: str) -> set[str]:
    """Initials of runs of capitalised words and of their stretches ("Food and Drug Administration" ->
    "fda", "fada"; "Australian Prime Minister" -> "apm", "pm"), so an acronym in a claim is not a new name."""
    out = set()
    for m in _CAPITALISED_RUN.finditer(text):
        words = m.group().split()
        out.add("".join(w[0] for w in words).lower())
        caps = [w[0].lower() for w in words if w[0].isupper()]
        out.update("".join(caps[i:j]) for i in range(len(caps)) for j in range(i + 2, min(len(caps), i + 5) + 1))
    return {a for a in out if len(a) >= 2}


def negated(text: str) -> bool:
    return bool(NEGATION.search(text))


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


# --------------------------------------------------------------------------- evidence


class Evidence:
    """Sentences of the evidence with their tokens; embeddings computed lazily and kept."""

    def __init__(self, evidence: list[str] | str, embedder=None):
        self.embedder = embedder
        passages = [evidence] if isinstance(evidence, str) else list(evidence)
        self.sentences: list[str] = []
        for passage in passages:
            self.sentences += [s.text(passage) for s in sentence_spans(passage)]
        self.keys = [set(content_keys(s)) for s in self.sentences]
        self.all_keys = set().union(*self.keys) if self.keys else set()
        self.stems = [set(content_stems(x)) for x in self.sentences]
        self.windows = [a | b for a, b in zip(self.stems, self.stems[1:])] or self.stems
        self.all_stems = set().union(*self.stems) if self.stems else set()
        self.stem_windows: dict[str, set[int]] = {}
        for i, w in enumerate(self.windows):
            for k in w:
                self.stem_windows.setdefault(k, set()).add(i)
        self.full_text = "\n".join(passages)
        self.names = {name_key(w) for w in words_lower(self.full_text) | acronyms(self.full_text)}
        self.quantities = quantities(self.full_text)
        n = max(len(self.sentences), 1)
        df: dict[str, int] = {}
        for ks in self.keys:
            for k in ks:
                df[k] = df.get(k, 0) + 1
        self.idf = {k: math.log(1 + n / d) for k, d in df.items()}
        self._vectors: dict[int, np.ndarray] = {}

    def vectors(self, indices: list[int]) -> np.ndarray:
        todo = [i for i in indices if i not in self._vectors]
        if todo:
            embed = self.embedder or _embed_texts
            for i, v in zip(todo, embed([self.sentences[i] for i in todo])):
                self._vectors[i] = v
        return np.stack([self._vectors[i] for i in indices]) if indices else np.zeros((0, 384), np.float32)


class WordVectors:
    """MiniLM vectors of single words, computed in batches and kept (LRU, ``size`` words)."""

    def __init__(self, embedder, size: int = 50_000):
        self.embedder = embedder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, words: list[str]) -> np.ndarray:
        todo = sorted({w for w in words if w not in self._cache})
        if todo:
            for w, v in zip(todo, self.embedder(todo)):
                self._cache[w] = np.asarray(v, np.float32)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        for w in words:
            self._cache.move_to_end(w)
        return np.stack([self._cache[w] for w in words]) if words else np.zeros((0, 384), np.float32)


_CLAIM_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]+|\d[\d,.]*\d|\d")


def claim_words(text: str) -> list[tuple[str, bool]]:
    """(lower-cased content word, is a name or number): capitalised mid-sentence words and digits count
    as names/numbers; a possessive 's is dropped."""
    out = []
    for m in _CLAIM_WORD.finditer(text):
        w = m.group().lower().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        if w in STOPWORDS or len(w) < 2:
            continue
        special = m.group()[0].isdigit() or (m.group()[0].isupper() and bool(text[: m.start()].strip()))
        out.append((w, special))
    return out


def _embed_texts(texts: list[str]) -> np.ndarray:
    from rag.embeddings import embed_texts

    return embed_texts(texts)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def load_model(path: Path = CALIBRATION_PATH) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return DEFAULT_MODEL


class OfflineJudge:
    """Lexical + embedding + contradiction-cue features, combined by a fitted logistic model.

    ``max_candidates``: how many evidence sentences (best by lexical overlap)
    are embedded per claim; evidence with at most ``embed_all_below`` sentences
    is embedded whole.
    """

    name = "offline"

    def __init__(self, model: dict | None = None, max_candidates: int = 6, embed_all_below: int = 12,
                 cache_size: int = 8, embedder=None, use_embeddings: bool | None = None):
        self.embedder = embedder or _embed_texts
        self.model = model or load_model()
        # MiniLM similarity is computed only when the model gives it weight (or use_embeddings=True, to fit)
        self.use_embeddings = use_embeddings
        self.max_candidates = max_candidates
        self.embed_all_below = embed_all_below
        self._cache: OrderedDict[tuple, Evidence] = OrderedDict()
        self._cache_size = cache_size
        self.word_vectors = WordVectors(self.embedder)
        self.synonym_cosine = float(self.model.get("synonym_cosine", SYNONYM_COSINE))

    @property
    def uses_embeddings(self) -> bool:
        if self.use_embeddings is not None:
            return self.use_embeddings
        return "dense" in self.model["features"] and self.model["weights"].get("dense", 0.0) != 0.0

    def evidence(self, evidence: list[str] | str | Evidence) -> Evidence:
        if isinstance(evidence, Evidence):
            return evidence
        key = (evidence,) if isinstance(evidence, str) else tuple(evidence)
        ev = self._cache.get(key)
        if ev is None:
            ev = Evidence(evidence, self.embedder)
            self._cache[key] = ev
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return ev

    def _candidates(self, cset: set[str], ev: Evidence) -> tuple[list[int], np.ndarray]:
        """Evidence sentences to embed for a claim: all of short evidence, else the best by idf-weighted overlap."""
        overlap = np.array([sum(ev.idf.get(k, 0.0) for k in cset & ks) for ks in ev.keys])
        n = len(ev.sentences)
        if n <= self.embed_all_below:
            return list(range(n)), overlap
        return sorted(np.argsort(-overlap, kind="stable")[: self.max_candidates].tolist()), overlap

    def prefetch(self, claims: list[str], evidence: list[str] | str | Evidence) -> np.ndarray:
        """Embed, in one batch, the claims and every evidence sentence they will need; returns claim vectors."""
        ev = self.evidence(evidence)
        if not self.uses_embeddings:
            return np.zeros((len(claims), 384), np.float32)
        needed = sorted({i for c in claims for i in self._candidates(set(content_keys(c)), ev)[0]}
                        - set(ev._vectors)) if ev.sentences else []
        vecs = self.embedder(list(claims) + [ev.sentences[i] for i in needed])
        for i, v in zip(needed, vecs[len(claims):]):
            ev._vectors[i] = v
        return vecs[: len(claims)]

    # ---------------------------------------------------------------- features
    def features(self, claim: str, evidence: list[str] | str | Evidence,
                 claim_vector: np.ndarray | None = None) -> tuple[dict[str, float], str, list[str]]:
        """Feature values, the best evidence sentence and human-readable reasons."""
        ev = self.evidence(evidence)
        reasons: list[str] = []
        ckeys = content_keys(claim)
        cset = set(ckeys)
        if not ev.sentences:
            feats = {f: 0.0 for f in FEATURES}
            feats.update(novel_doc=1.0, novel_local=1.0, unlinked=1.0, novel_count=math.log1p(len(cset)),
                         unexplained=math.log1p(len(cset)))
            return feats, "", ["no evidence text"]
        cand, overlap = self._candidates(cset, ev)
        # the best-matching sentence: most idf-weighted shared words (the same with or without embeddings)
        best = int(np.argmax(overlap))
        dense = 0.0
        if self.uses_embeddings:
            vecs = ev.vectors(cand)
            if claim_vector is None:
                claim_vector = self.embedder([claim])[0]
            sims = vecs @ claim_vector
            dense = float(sims.max())
            for a, b in zip(range(len(cand)), range(1, len(cand))):
                if cand[b] == cand[a] + 1:
                    pair = vecs[a] + vecs[b]
                    dense = max(dense, float(pair @ claim_vector / max(np.linalg.norm(pair), 1e-9)))
        best_text = ev.sentences[best]
        stems = set(content_stems(claim))
        total = max(len(stems), 1)
        novel = sorted(k for k in stems if k not in ev.all_stems)
        novel_doc = len(novel) / total
        # the lexically closest two-sentence window (the claim may merge adjacent sentences)
        local = max(ev.windows, key=lambda w: len(stems & w))
        novel_local = len(stems - local) / total
        # relations: pairs of the claim's known words that never meet within two adjacent sentences
        known = sorted(stems & ev.all_stems)
        pairs = [(a, b) for i, a in enumerate(known) for b in known[i + 1:]]
        where = ev.stem_windows
        unlinked = sum(1 for a, b in pairs if where[a].isdisjoint(where[b])) / len(pairs) if pairs else 0.0

        unexplained, synonyms = self._unexplained(claim, ev, overlap)

        claim_names = names(claim)
        new_names = sorted(w for w in claim_names if name_key(w) not in ev.names)
        claim_q = quantities(claim)
        new_q = sorted(q for q in claim_q if q not in ev.quantities)

        best_names, best_q = names(best_text), quantities(best_text)
        best_words = {name_key(w) for w in words_lower(best_text)}
        claim_words = {name_key(w) for w in words_lower(claim)}
        swaps = []
        for mine, theirs, kind in ((claim_names, best_names, "name"), (claim_q, best_q, "quantity")):
            if kind == "name":
                added = [x for x in mine if name_key(x) not in best_words]
                dropped = [x for x in theirs if name_key(x) not in claim_words]
            else:
                added, dropped = sorted(mine - theirs), sorted(theirs - mine)
            if added and dropped:
                swaps.append(f"{', '.join(sorted(added)[:3])} instead of {', '.join(sorted(dropped)[:3])}")

        # negation: a negated word on one side that the other side states plainly
        neg_words = negation_flips(claim, best_text)
        neg = bool(neg_words)
        # antonyms: compare each claim clause with its best-matching evidence clause
        flips: list[tuple[str, str]] = []
        for c_clause, e_clause in aligned_clauses(claim, best_text):
            flips += antonym_flips(c_clause, words_lower(e_clause))

        feats = {
            "dense": dense,
            "novel_doc": novel_doc,
            "novel_count": math.log1p(len(novel)),
            "unexplained": math.log1p(unexplained),
            "novel_local": novel_local,
            "unlinked": unlinked,
            "novel_names": float(min(len(new_names), 3)),
            "novel_numbers": float(min(len(new_q), 3)),
            "swap": float(min(len(swaps), 2)),
            "negation": float(neg),
            "antonym": float(min(len(flips), 2)),
        }
        if self.uses_embeddings:
            reasons.append(f"similarity to the closest evidence sentence(s) {dense:.2f}")
        if novel:
            reasons.append(f"{len(novel)}/{total} content words not in the evidence: {', '.join(novel[:8])}")
        if synonyms:
            reasons.append("near-synonyms in the evidence: " + ", ".join(f"{a} ~ {b}" for a, b in synonyms[:5]))
        if new_names:
            reasons.append(f"names not in the evidence: {', '.join(new_names[:5])}")
        if new_q:
            reasons.append(f"numbers/dates not in the evidence: {', '.join(new_q[:5])}")
        for s in swaps:
            reasons.append(f"the claim has {s} in the best-matching sentence")
        for side, word in neg_words[:2]:
            reasons.append(f"negation differs from the best-matching sentence: '{word}' is negated in the {side} only")
        for w, v in flips[:2]:
            reasons.append(f"'{w}' where the evidence says '{v}'")
        return feats, best_text, reasons

    @property
    def uses_synonyms(self) -> bool:
        if self.use_embeddings is not None:
            return self.use_embeddings
        return "unexplained" in self.model["features"] and self.model["weights"].get("unexplained", 0.0) != 0.0

    def _unexplained(self, claim: str, ev: Evidence, overlap: np.ndarray) -> tuple[int, list[tuple[str, str]]]:
        """Novel claim words left once lower-case ones with a near-synonym in the closest three evidence
        sentences are forgiven; and the (claim word, evidence word) synonym pairs found."""
        novel = {w: special for w, special in claim_words(claim) if stem(w) not in ev.all_stems}
        ordinary = sorted(w for w, special in novel.items() if not special)
        if not ordinary or not self.uses_synonyms:
            return len(novel), []
        top = np.argsort(-overlap, kind="stable")[:3]
        local = sorted({w for i in top for w, _ in claim_words(ev.sentences[int(i)])})
        if not local:
            return len(novel), []
        sims = self.word_vectors(ordinary) @ self.word_vectors(local).T
        pairs = [(w, local[int(sims[i].argmax())]) for i, w in enumerate(ordinary)
                 if sims[i].max() >= self.synonym_cosine]
        return len(novel) - len(pairs), pairs

    def score(self, feats: dict[str, float]) -> float:
        m = self.model
        z = m["bias"] + sum(m["weights"][f] * feats[f] for f in m["features"])
        return _sigmoid(z)

    def judge(self, claim: str, evidence: list[str] | str) -> Verdict:
        feats, best, reasons = self.features(claim, evidence)
        s = self.score(feats)
        return Verdict(supported=s >= self.model["threshold"], score=s, evidence=best, reasons=reasons,
                       features=feats, claim=claim)
