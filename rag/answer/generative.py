"""Generative answers whose quotes are verbatim by construction.

A model (any llama-index ``LLM`` from ``rag.llm.backends``) reads compact evidence
(``rag.answer.evidence``: the best sentences of the retrieved chunks with a little context,
numbered one by one) and writes structured claims (``rag.answer.structured``): each claim is a
short sentence in its own words plus the number of the sentence it rests on.

* llama.cpp backends (in-process GGUF, ``llama_cpp.server``) and servers that enforce
  JSON schemas get a schema whose ``source`` is an ``enum`` of the sentence numbers: the
  model cannot cite anything but a sentence of the documents, and the citation's quote
  is that sentence at its exact offsets.
* Servers that refuse the schema are asked again with a plain JSON-object request,
  then with none (the choice that worked is remembered); a claim that quotes text
  instead of a number has it located in the documents (exact, else tolerant, snapped
  to exact offsets).

Each claim is then checked: it must cite a sentence of the evidence, its text must be a
statement (not empty, not a question), and the answer model itself must find that the sentence
it cites (or the neighbour it copied) supports every part of it (``rag.judge.self_check``: P(yes)
from its first-token logprobs, over ``support_threshold``).
A claim that fails is dropped into ``Answer.dropped_claims`` with the reason and its score;
a kept one carries its score in ``Answer.claims``. An empty claim list is the model's
abstention. When every claim is dropped, the extractive answer is
returned with a ``note``. The Assistant's own final check
(``document_text[start:end] == quote``) runs after this and is the last gate.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from rag.answer import evidence as evidence_mod
from rag.answer.extractive.premises import PREMISE_LEAD
from rag.answer.extractive.scoring import Candidate, candidates
from rag.index.sentences import sentence_spans
from rag.answer.extractive.overview import is_overview
from rag.index.lexical import tokenize
from rag.llm.backends import BackendSpec, BackendUnavailable, LLMOptions, make_llm, parse_spec
from rag.models import Answer, Citation, Claim, ClaimEvent, Highlight
from rag.answer.prompts import ABSTAIN, answer_messages, condense_messages
from rag.answer.structured import (claims_schema, llama_cpp_format, parse_claims, response_formats, says_abstain,
                         short_answer)

UNSUPPORTED = "the model finds that its sentences do not support it"
NOTE_UNVERIFIED = "no claim of the model answer could be verified; showing extractive answer"
NOTE_ABSTAINED = "the model found no answer in the documents"
NOTE_PREMISE = ("the model found no answer in the documents; a sentence of them contradicts the question's premise "
                "(the quick answer's premise check)")
ABSTAIN_TEXT = "The documents do not answer this question."

_SPECIAL = re.compile(r"<\|[^|>]*\|>|<end_of_turn>|<start_of_turn>\w*|</?s>|</?answer>")
_PREAMBLE = re.compile(r"^\s*(?:(?:the\s+)?answer(?:\s+is)?|response|assistant)\s*:\s*", re.I)
_MARKERS = re.compile(r"\s*\[\s*(?:passages?|sources?|p)?\s*\d+(?:\s*[,;-]\s*\d+)*\s*\]", re.I)


def clean_output(text: str) -> str:
    return _PREAMBLE.sub("", _SPECIAL.sub("", text or "").strip()).strip()


def is_abstention(text: str) -> bool:
    """A plain-text reply of NOT IN DOCUMENTS (servers that ignore the format)."""
    t = clean_output(text).upper()
    return t.startswith(ABSTAIN) or (ABSTAIN in t and len(t) < 3 * len(ABSTAIN))


# ------------------------------------------------------------------ checking claims


@dataclass
class Checked:
    """The verified answer text, its citations, and what was removed (with reasons)."""

    text: str = ""
    citations: list[Citation] = field(default_factory=list)
    kept: int = 0
    total: int = 0
    dropped: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    ids: dict = field(default_factory=dict)
    seen: set = field(default_factory=set)


def _score(question: str, quote: str) -> float:
    q = set(tokenize(question))
    return round(len(q & set(tokenize(quote))) / len(q), 4) if q else 0.0


class ClaimChecker:
    """Turns the model's claims into cited sentences, one at a time (so a stream can show each).

    ``verify(claim, sentence) -> (score, how)`` is the meaning check (the answer model's own
    yes/no probability, :mod:`rag.judge.self_check`); a claim scoring under ``threshold`` is dropped
    with its score. A 1.5B model often cites the sentence next to the one it used, so the sentence
    checked (and cited) is whichever of the cited one and its neighbours shares most words with
    the claim, and the cited one if that fails."""

    def __init__(self, question: str, evidence: evidence_mod.Evidence, verify=None, threshold: float = 0.5,
                 answer_threshold: float | None = None):
        self.question, self.evidence = question, evidence
        self.verify, self.threshold = verify, threshold
        self.answer_threshold = threshold if answer_threshold is None else answer_threshold
        self.result = Checked()

    def neighbours(self, quote) -> list:
        return [q for q in self.evidence.around(quote) if q.n]

    def reason_to_drop(self, text: str, quote) -> str | None:
        if quote is None:
            return "it cites no sentence of the documents"
        if not re.search(r"[^\W\d_]", text):
            return "it says nothing"
        if text.endswith("?"):
            return "it is a question, not a claim"
        return None

    def target(self, text: str, quote):
        """The sentence a claim copies: the cited one or a neighbour sharing more of its words."""
        if not quote.n:
            return quote
        return max([quote, *self.neighbours(quote)], key=lambda q: (overlap(text, q.text), q is quote))

    def supported(self, text: str, quote, movable: bool = True):
        """(the sentence the claim rests on or None, its support score, what checked it, a second
        sentence or None). The sentence checked first is the cited one or the neighbour sharing most
        words with the claim; if that fails, the cited one; if that fails too, the claim may join two
        facts: it is checked once more against those sentences together (``pair``)."""
        first = self.target(text, quote) if movable else quote
        if self.verify is None:
            return first, None, "", None
        score, how = self.verify(text, first.text)
        if score >= self.threshold:
            return first, score, how, None
        if first is not quote:
            second, how2 = self.verify(text, quote.text)
            if second >= self.threshold:
                return quote, second, how2, None
        pair = self.pair(text, first) if movable else None
        if pair is not None:
            joined, other = pair
            both, how3 = self.verify(text, joined)
            if both >= self.threshold:
                return first, both, how3, other
            score = max(score, both)
        return None, score, how, None

    def pair(self, text: str, first):
        """A claim resting on two sentences (HotpotQA answers join two paragraphs; a 1.5B model cites one
        of them): the evidence sentence holding most of the claim's words that ``first`` lacks, and the two
        in document order as one text. None when no sentence adds a word of the claim."""
        missing = set(tokenize(text)) - set(tokenize(first.text))
        if not missing:
            return None
        others = [q for q in self.evidence.quotes if q.n and q.n != first.n]
        best = max(others, key=lambda q: (len(missing & set(tokenize(q.text))), -abs(q.n - first.n)), default=None)
        if best is None or not missing & set(tokenize(best.text)):
            return None
        a, b = sorted((first, best), key=lambda q: (q.doc_id != first.doc_id, q.start))
        return f"{a.text} {b.text}", best

    def add(self, claim: dict) -> ClaimEvent | None:
        """Check one claim; its rendered sentence and citation, or None when dropped."""
        r = self.result
        r.total += 1
        text = " ".join(_MARKERS.sub("", str(claim.get("claim", ""))).split())
        quote = self.evidence.find(claim.get("source"), claim.get("quote"))
        why = self.reason_to_drop(text, quote)
        support, how, other = None, "", None
        if not why:
            quote, support, how, other = self.supported(claim.get("check_as") or text, quote,
                                                        movable="check_as" not in claim)
            if quote is None:
                why = f"{UNSUPPORTED} (P(yes) {support:.2f} < {self.threshold:.2f}, {how})"
        if why:
            r.dropped.append(f"{text or '(empty claim)'} -- dropped: {why}")
            return None
        key = (quote.doc_id, quote.start, quote.end)
        if (key, text.lower()) in r.seen:
            return None  # the same claim twice
        r.seen.add((key, text.lower()))
        cite = self.cite(quote)
        also = [self.cite(other)] if other is not None else []
        if text[-1] not in ".!…\"'”’)":
            text += "."
        sentence = f"{text} " + " ".join(f"[{c.id}]" for c in [cite, *also])
        r.text = f"{r.text} {sentence}".strip()
        r.kept += 1
        support = round(support, 4) if support is not None else None
        r.claims.append(Claim(text=sentence, citation_id=cite.id, also_cites=[c.id for c in also], support=support,
                              checked_by=how))
        return ClaimEvent(text=sentence, citation=cite, also=also, support=support)

    def cite(self, quote) -> Citation:
        """The answer's citation of ``quote`` (numbered in order of first use, one per span)."""
        r = self.result
        key = (quote.doc_id, quote.start, quote.end)
        if key not in r.ids:
            r.ids[key] = len(r.ids) + 1
            cite = Citation(id=r.ids[key], quote=quote.text, doc_id=quote.doc_id, source=quote.source,
                            title=quote.title, start=quote.start, end=quote.end,
                            score=_score(self.question, quote.text), role="support")
            cite._doc_hash = quote.doc_hash  # noqa: SLF001
            r.citations.append(cite)
        return next(c for c in r.citations if c.id == r.ids[key])


def checkable_answer(question: str, said: str | None) -> str:
    """The model's short answer when it can be checked as "Question: Q Answer: A." (a few words, not
    yes/no, not an abstention, not an overview), else ""."""
    said = (said or "").strip(" .")
    if (not said or says_abstain(said) or is_overview(question) or len(said.split()) > 6
            or re.match(r"(?i)(?:yes|no)\b", said)):
        return ""
    return said


def answer_first(question: str, said: str, ev: evidence_mod.Evidence, claims, checker: ClaimChecker):
    """The claims to check, given the model's short answer ``said``.

    A 1.5B model sometimes gives the right short answer and then a claim copied from another
    sentence (measured: "When was the NATO summit?" answered "July" with a claim copying the
    Article 5 sentence, which its check rightly found supported by that sentence). When the short
    answer (a few words, not yes/no) is in an evidence sentence but in none of the claims nor the
    sentences they cite, the answer becomes that short answer cited to the sentence holding it (the one
    sharing most words with the question), checked as "Question: Q Answer: A." (on the README's
    example this form scored 0.78 for the right sentence and answer, 0.18-0.23 for a wrong answer or
    sentence; "The answer to the question Q is A." 0.56, under the threshold); the claims go to
    ``dropped_claims`` with the reason."""
    said = checkable_answer(question, said)
    if not claims or not said:
        return claims
    holds = re.compile(rf"(?<!\w){re.escape(said)}(?!\w)", re.I)
    holders = [q for q in ev.quotes if holds.search(q.text)]

    def cites_it(claim: dict) -> bool:
        q = ev.find(claim.get("source"), claim.get("quote"))
        return q is not None and bool(holds.search(checker.target(str(claim.get("claim", "")), q).text))

    if not holders or any(cites_it(c) or holds.search(str(c.get("claim", ""))) for c in claims):
        return claims  # a claim that states the answer itself may cite a sentence that says "he"
    best = max(holders, key=lambda q: (overlap(question, q.text), -q.n))
    checker.result.dropped += [f"{str(c.get('claim', ''))} -- dropped: the sentence it cites does not hold the "
                               f"model's own answer ({said!r})" for c in claims]
    return [{"claim": said, "source": best.n, "check_as": f"Question: {question} Answer: {said}."}]


def answers_question(question: str, said: str, ev: evidence_mod.Evidence, claims, checker: ClaimChecker):
    """The claims to check, or [] when the model's short answer does not answer the question.

    A claim can be true to its sentence and still not answer: asked how many points the victory
    plan has, Qwen answered "3" with claims copied from the sentence about the plan, which its
    check of each claim rightly passed; asked which Sky News reporter conducted the interview, it
    answered "Sky News". So a short answer (a few words, not yes/no) is put to the same check as
    "Question: Q Answer: A." against the sentence the first claim rests on, then (a question that
    joins two facts: HotpotQA's "which magazine was started first") against that sentence and the one
    holding most of the question's other words; under the threshold both times, the claims go to
    ``dropped_claims`` with that reason and the answer abstains. ``answer_first``'s answers were
    checked in this form already."""
    said = checkable_answer(question, said)
    if not claims or not said or checker.verify is None or any("check_as" in c for c in claims):
        return claims
    first = claims[0]
    text = " ".join(_MARKERS.sub("", str(first.get("claim", ""))).split())
    quote = ev.find(first.get("source"), first.get("quote"))
    if quote is None or checker.reason_to_drop(text, quote):
        return claims
    asked = f"Question: {question} Answer: {said}."
    first = checker.target(text, quote)
    score, how = checker.verify(asked, first.text)
    if score >= checker.answer_threshold:
        return claims
    pair = checker.pair(f"{question} {said}", first)  # a two-step question needs two sentences
    if pair is not None:
        both, how = checker.verify(asked, pair[0])
        if both >= checker.answer_threshold:
            return claims
        score = max(score, both)
    checker.result.dropped += [f"{str(c.get('claim', ''))} -- dropped: the model's answer ({said!r}) does not answer "
                               f"the question (P(yes) {score:.2f} < {checker.answer_threshold:.2f}, {how})" for c in claims]
    return []


def overlap(claim: str, quote: str) -> float:
    """Share of the claim's content words found in the quote (which neighbour to cite; not a gate)."""
    words = set(tokenize(claim))
    return len(words & set(tokenize(quote))) / len(words) if words else 0.0


def highlight(cite: Citation, said: str) -> None:
    """Mark the model's short answer ("Sky News") inside the quote it cites, when it is there verbatim."""
    said = said.strip(" .,;:!?\"'“”‘’")
    if not said or len(said) > 80 or said.lower() == cite.quote.lower():
        return
    at = next((m.start() for m in re.finditer(re.escape(said), cite.quote, re.I)
               if (m.start() == 0 or not cite.quote[m.start() - 1].isalnum())
               and (m.end() == len(cite.quote) or not cite.quote[m.end()].isalnum())), None)
    if at is not None:
        text = cite.quote[at:at + len(said)]
        cite.highlight = Highlight(start=cite.start + at, end=cite.start + at + len(said), text=text)


# ------------------------------------------------------------------ the generator


@dataclass
class Trace:
    """What the last generation did (for benchmarks and logs)."""

    raw: str = ""
    tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    first_token_s: float | None = None
    first_claim_s: float | None = None
    sentences: int = 0
    kept: int = 0
    fallback: str | None = None
    format: str = ""
    evidence_words: int = 0


class Generator:
    """Answers with a model, then keeps only what the documents verify."""

    def __init__(self, config, llm=None, spec: BackendSpec | None = None, options: LLMOptions | None = None,
                 support=None, support_threshold: float | None = None):
        self.config = config
        self.spec = spec or parse_spec(config.llm)
        self.options = options or LLMOptions()
        self.llm = llm if llm is not None else make_llm(self.spec, config, self.options)
        self.name = self.spec.name
        self.local = hasattr(self.llm, "engine") or self.spec.kind == "gguf"
        # "Question: Q Answer: A." has its own threshold (rag/data/logprob_judge_calibration.json "answer")
        self.answer_threshold = None
        if support is None and os.environ.get("RAG_SELF_CHECK", "on").strip().lower() not in ("off", "0", "no"):
            from rag.judge.self_check import ANSWER_THRESHOLD, THRESHOLD, SelfCheck

            support, support_threshold = SelfCheck(self.llm), support_threshold or THRESHOLD
            self.answer_threshold = ANSWER_THRESHOLD
        # support(claim, sentence) -> (P(supported), how): the meaning check of each claim
        self.support, self.support_threshold = support, support_threshold if support_threshold is not None else 0.5
        self._formats = None if self.local else response_formats  # remote: best format first, then fall back
        self._format_at = 0
        self._local = threading.local()

    @property
    def last(self) -> Trace:
        """The trace of the last generation in this thread."""
        return getattr(self._local, "trace", Trace())


    # -------------------------------------------------------------- model calls

    def _fail(self, exc: Exception) -> BackendUnavailable:
        if isinstance(exc, BackendUnavailable):
            return exc
        try:
            import openai
        except ImportError:  # pragma: no cover
            openai = None
        where = getattr(self.llm, "api_base", None) or "the model server"
        if openai is not None:
            if isinstance(exc, openai.AuthenticationError):
                return BackendUnavailable(self.name, f"{where} rejected the API key (HTTP 401); check OPENAI_API_KEY", 502)
            if isinstance(exc, openai.PermissionDeniedError):
                return BackendUnavailable(self.name, f"{where} refused access (HTTP 403); check OPENAI_API_KEY", 502)
            if isinstance(exc, openai.NotFoundError):
                return BackendUnavailable(self.name, f"model {self.spec.model!r} or endpoint not found at {where} "
                                                     "(HTTP 404)", 502)
            if isinstance(exc, openai.RateLimitError):
                return BackendUnavailable(self.name, f"{where} is rate limiting (HTTP 429) after "
                                                     f"{self.options.max_retries} retries", 503)
            if isinstance(exc, openai.APITimeoutError):
                return BackendUnavailable(self.name, f"{where} did not answer within {self.options.timeout:g}s "
                                                     f"(after {self.options.max_retries} retries)", 503)
            if isinstance(exc, openai.APIConnectionError):
                cause = exc.__cause__ or exc.__context__ or exc
                return BackendUnavailable(self.name, f"cannot reach {where} after {self.options.max_retries} "
                                                     f"retries: {type(cause).__name__}: {cause}", 503)
            if isinstance(exc, openai.APIStatusError):
                return BackendUnavailable(self.name, f"{where} answered HTTP {exc.status_code}: "
                                                     f"{str(exc.message)[:200]}", 502)
        try:
            import httpx

            if isinstance(exc, httpx.TimeoutException):
                return BackendUnavailable(self.name, f"{where} stopped sending within {self.options.timeout:g}s", 503)
            if isinstance(exc, httpx.HTTPError):
                return BackendUnavailable(self.name, f"connection to {where} failed: {exc}", 503)
        except ImportError:  # pragma: no cover
            pass
        return BackendUnavailable(self.name, f"model error: {type(exc).__name__}: {exc}", 502)

    def _chat(self, messages, **kwargs) -> tuple[str, int, int]:
        try:
            resp = self.llm.chat(messages, **kwargs)
        except Exception as exc:  # noqa: BLE001  (every failure becomes BackendUnavailable)
            raise self._fail(exc) from exc
        extra = resp.additional_kwargs or {}
        text = resp.message.content or ""
        tokens = int(extra.get("completion_tokens") or 0) or len(text.split())
        return text, tokens, int(extra.get("prompt_tokens") or 0)

    def _stream_chat(self, messages, **kwargs) -> Iterator[str]:
        try:
            for r in self.llm.stream_chat(messages, **kwargs):
                if r.delta:
                    yield r.delta
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc) from exc

    # -------------------------------------------------------------- evidence and formats

    def evidence(self, question: str, nodes, assistant, allowed: frozenset[str] | None = None) -> evidence_mod.Evidence:
        whole = self.whole_scope(assistant, allowed)
        if whole is not None:
            return whole
        texts: dict[str, str] = {}
        for nws in nodes:
            meta = nws.node.metadata
            if meta["doc_id"] in texts:
                continue
            try:
                texts[meta["doc_id"]] = assistant.store.document_text(meta["doc_id"], meta["doc_hash"])
            except Exception:  # noqa: BLE001  (document gone or changed: its quotes cannot be checked)
                texts[meta["doc_id"]] = ""
        overview = is_overview(question)
        if overview:  # the sentences nearest the question, after the lead
            q_vec = assistant.embed_model.get_query_embedding(question)
            ranked = evidence_mod.by_similarity(q_vec, candidates(nodes), assistant.sentence_vectors.get)
        else:  # ranked as the extractive answer ranks them (typed fit, coverage, similarity)
            ranked = assistant.sentence_ranking(question, nodes)
        return evidence_mod.build(ranked, nodes, texts, max_sentences=8 if overview else 6,
                                  max_words=320 if overview else 240, lead=5 if overview else 0)

    def _verifier(self):
        """The meaning check of one claim against one sentence (None: no check)."""
        if self.support is None:
            return None

        def verify(claim: str, sentence: str) -> tuple[float, str]:
            try:
                return self.support(claim, sentence)
            except BackendUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001  (a check that cannot answer must not pass the claim)
                raise self._fail(exc) from exc

        return verify

    def whole_scope(self, assistant, allowed: frozenset[str] | None = None) -> evidence_mod.Evidence | None:
        """Every sentence of every document in scope, in a fixed order, when they fit the prompt
        budget (``RAG_WHOLE_SCOPE_WORDS``, default 800; 0 turns it off); else None.

        The prompt is then the same up to the question for every question about that scope, so
        llama.cpp keeps the KV state of system prompt + documents from one question to the next
        (cache-augmented generation: a follow-up pays only for its question and the answer), and
        the model sees the sentence that answers even when the compact ranking would have missed it."""
        budget = int(os.environ.get("RAG_WHOLE_SCOPE_WORDS", "800") or 0)
        if budget <= 0:
            return None
        records = sorted((r for r in assistant.store.catalog() if allowed is None or r.doc_id in allowed),
                         key=lambda r: (r.source, r.doc_id))
        if not records or sum(r.n_chunks for r in records) > max(1, budget // 100):
            return None
        key = tuple((r.doc_id, r.doc_hash) for r in records)
        cached = getattr(self, "_whole", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        texts: dict[str, str] = {}
        for r in records:
            try:
                texts[r.doc_id] = assistant.store.document_text(r.doc_id, r.doc_hash)
            except Exception:  # noqa: BLE001  (changed while we read: answer from the compact evidence)
                return None
        if sum(len(t.split()) for t in texts.values()) > budget:
            return None
        sentences = [Candidate(r.doc_id, r.doc_hash, r.source, r.title or "", sp.start, sp.end,
                               texts[r.doc_id][sp.start:sp.end], 0)
                     for r in records for sp in sentence_spans(texts[r.doc_id])]
        whole = evidence_mod.assemble(sentences, texts)
        self._whole = (key, whole)
        return whole

    def _format_kwargs(self, schema: dict) -> dict:
        if self.local:
            return {"response_format": llama_cpp_format(schema)}
        fmt = self._formats(schema)[self._format_at]
        return {"response_format": fmt} if fmt is not None else {}

    def _refused_format(self, exc: BackendUnavailable) -> bool:
        """A 400/422 from a server that does not take our response_format: try the next form."""
        if self.local or self._format_at >= 2 or exc.status != 502:
            return False
        msg = exc.reason.lower()
        if not any(code in msg for code in ("http 400", "http 422", "http 500")):
            return False
        self._format_at += 1
        return True

    # -------------------------------------------------------------- answering

    def answer(self, question: str, nodes, assistant, instructions: str | None = None,
               allowed: frozenset[str] | None = None) -> Answer:
        """One verified answer (or the extractive fallback with a note); ``allowed``: the doc_ids of
        the question's scope (None: all)."""
        result = None
        for item in self._run(question, nodes, assistant, stream=False, instructions=instructions, allowed=allowed):
            result = item
        return result

    def stream(self, question: str, nodes, assistant, cancel: threading.Event | None = None,
               instructions: str | None = None, allowed: frozenset[str] | None = None) -> Iterator[ClaimEvent | Answer]:
        """Each verified claim (sentence + citation) as soon as the model has written it, then
        the final Answer. Once ``cancel`` is set the model stops between two tokens (or two claim
        checks) and the stream ends without an Answer."""
        yield from self._run(question, nodes, assistant, stream=True, cancel=cancel, instructions=instructions,
                             allowed=allowed)

    def _run(self, question: str, nodes, assistant, stream: bool, cancel: threading.Event | None = None,
             instructions: str | None = None, allowed: frozenset[str] | None = None) -> Iterator[ClaimEvent | Answer]:
        trace = Trace()
        self._local.trace = trace
        nodes = list(nodes or [])
        if not nodes:
            answer = assistant.extractive_answer(question, nodes, allowed)
            answer.backend = self.name
            yield answer
            return
        t_ev = time.perf_counter()
        ev = self.evidence(question, nodes, assistant, allowed)
        evidence_ms = (time.perf_counter() - t_ev) * 1000
        trace.evidence_words = ev.words
        messages = answer_messages(question, ev, instructions)
        overview = is_overview(question)
        schema = claims_schema(len(ev.quotes), min_claims=min(3, len(ev.quotes)) if overview else 0,
                               short_answer=not overview)
        t0 = time.perf_counter()
        while True:
            kwargs = self._format_kwargs(schema)
            trace.format = (kwargs.get("response_format") or {}).get("type", "none")
            try:
                if stream:
                    parts = []
                    deltas = self._stream_chat(messages, **kwargs)
                    try:
                        for delta in deltas:
                            if cancel is not None and cancel.is_set():
                                break
                            if trace.first_token_s is None:
                                trace.first_token_s = time.perf_counter() - t0
                            parts.append(delta)
                    finally:
                        deltas.close()  # a local model stops between two tokens
                    if cancel is not None and cancel.is_set():
                        return
                    trace.raw, trace.tokens = "".join(parts), len(parts)
                    if hasattr(self.llm, "render_chat"):  # in-process: the stream reports no usage
                        trace.prompt_tokens = self.llm.count_tokens(self.llm.render_chat(messages))
                else:
                    trace.raw, trace.tokens, trace.prompt_tokens = self._chat(messages, **kwargs)
                break
            except BackendUnavailable as exc:
                if stream and trace.first_token_s is not None:
                    raise
                if not self._refused_format(exc):
                    raise
        trace.seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        claims = parse_claims(trace.raw)
        said = short_answer(trace.raw)
        if says_abstain(said):
            claims = []
        # each claim is checked once the reply is complete: the same model is free only then
        checker = ClaimChecker(question, ev, self._verifier(), self.support_threshold, self.answer_threshold)
        claims = answer_first(question, said, ev, claims, checker)
        claims = answers_question(question, said, ev, claims, checker)
        for claim in claims or []:
            if cancel is not None and cancel.is_set():
                return
            event = checker.add(claim)
            if event is not None and stream:
                if trace.first_claim_s is None:
                    trace.first_claim_s = time.perf_counter() - t0
                yield event
        answer = self._compose(question, nodes, assistant, checker.result, claims, trace, allowed)
        answer.usage = {k: v for k, v in (("prompt_tokens", trace.prompt_tokens), ("completion_tokens", trace.tokens))
                        if v}  # a stream from a remote server reports no prompt tokens: left out, not 0
        if said and not answer.abstained and answer.citations and answer.backend == self.name:
            highlight(answer.citations[0], said)
        answer.timings_ms.update({"evidence": round(evidence_ms, 2), "generate": round(trace.seconds * 1000, 2),
                                  "check": round((time.perf_counter() - t1) * 1000, 2)})
        yield answer

    def _compose(self, question, nodes, assistant, result: Checked, claims, trace: Trace,
                 allowed: frozenset[str] | None = None) -> Answer:
        trace.sentences, trace.kept = result.total, result.kept
        if result.citations:
            note = None
            if result.dropped:
                note = f"{len(result.dropped)} of {result.total} claims removed (see dropped_claims)"
            return Answer(answer=result.text, citations=result.citations, backend=self.name, claims=result.claims,
                          dropped_claims=result.dropped, note=note)
        if claims == [] or (claims is None and is_abstention(trace.raw)):
            # a 1.5B model answers "not in the documents" to most false premises (5 of 8 on the seed
            # set): the quick answer's premise check says whether a sentence contradicts the premise
            quick = assistant.extractive_answer(question, nodes, allowed)  # (not a name the documents lack)
            if quick.answer.startswith((PREMISE_LEAD, "No. ")) and not quick.abstained:
                trace.fallback = "premise"
                quick.backend, quick.note = self.name, NOTE_PREMISE
                quick.dropped_claims = result.dropped + quick.dropped_claims
                return quick
            trace.fallback = "abstained"
            return Answer(answer=ABSTAIN_TEXT, abstained=True, status="abstained", backend=self.name,
                          note=NOTE_ABSTAINED, dropped_claims=result.dropped)
        trace.fallback = "unverified"
        answer = assistant.extractive_answer(question, nodes, allowed)
        answer.backend = self.name
        answer.note = NOTE_UNVERIFIED
        answer.dropped_claims = result.dropped + answer.dropped_claims
        return answer

    # -------------------------------------------------------------- follow-ups

    def condense(self, question: str, history: list[dict]) -> str | None:
        """The follow-up rewritten as a standalone question by the model; None when the
        model fails or its rewrite does not look like a question about the same thing."""
        try:
            text, _, _ = self._chat(condense_messages(question, history), max_tokens=64)
        except Exception:  # noqa: BLE001  (the extractive rewrite takes over)
            return None
        return plausible_rewrite(question, history, text)


def plausible_rewrite(question: str, history: list[dict], text: str) -> str | None:
    line = clean_output(text).split("\n")[0].strip().strip("\"'“”")
    line = re.sub(r"^(?:standalone question|question|rewritten question)\s*:\s*", "", line, flags=re.I).strip()
    if not line.endswith("?") or ABSTAIN in line.upper() or not 3 <= len(line.split()) <= 40:
        return None
    asked = set(tokenize(question))
    said = asked | {t for turn in history for t in tokenize(str(turn.get("content", "")))}
    got = set(tokenize(line))
    if not got or len(got - said) > 2:
        return None  # invents topics the conversation never mentioned
    if asked and len(asked & got) / len(asked) < 0.5:
        return None  # lost what the user asked
    return line


def make_generator(config, llm=None, options: LLMOptions | None = None) -> Generator | None:
    """The Generator for ``config.llm`` (None for ``extractive``). Raises ValueError for an
    unknown spec, BackendUnavailable when the backend's packages are not installed."""
    spec = parse_spec(config.llm)
    if spec.kind == "extractive":
        return None
    return Generator(config, llm=llm, spec=spec, options=options)
