"""Generative answers whose every sentence is tied to a verbatim quote.

A model (any llama-index ``LLM`` from ``rag.llms``) writes a short answer
from numbered passages. Nothing it writes is trusted: each sentence of the
output is kept only when

1. a quote it carries (text in double quotes, straight or curly) is found in
   a retrieved document with ``rag.quotes.locate`` -- exact first, then
   tolerant to whitespace, quote-mark and dash variants -- and the citation
   takes the document's own text at those offsets; the passages the
   sentence's ``[n]`` markers name are searched first, then the others; its
   words outside the quotes must mostly occur in that document or the
   question (``context_support``); or
2. without a usable quote, one sentence of the passages it cites contains
   most of its content words, including most of those it does not merely
   repeat from the question, and every number it states
   (``lexical_support``); that document sentence is cited verbatim; or
3. it is a bare short answer ("Sky News") found verbatim in a passage
   sentence that holds at least half of the question's content words
   (``phrase_support``); that sentence is cited.

Quoted text that is not found loses its quotation marks (it must not look
like the document's words). Questions (often the user's, echoed) are not
claims. Other sentences are dropped and listed in ``Answer.dropped_claims``.
Citations are renumbered 1..m in order of appearance. When nothing
survives, or the model answers ``NOT IN DOCUMENTS``, the extractive answer
is returned with a ``note`` saying so. The Assistant's own final check
(``document_text[start:end] == quote``) runs after this and never has to
remove anything produced here.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from .lexical import tokenize
from .llms import BackendSpec, BackendUnavailable, LLMOptions, make_llm, parse_spec
from .models import Answer, Citation
from .prompts import ABSTAIN, answer_messages, condense_messages, passages_from_nodes
from .quotes import locate
from .sentences import sentence_spans

NOTE_UNVERIFIED = "model answer could not be verified; showing extractive answer"
NOTE_ABSTAINED = "model found no answer in the documents (NOT IN DOCUMENTS); showing extractive answer"

MIN_QUOTE_WORDS = 3
MIN_QUOTE_CHARS = 18
LEXICAL_THRESHOLD = 0.6  # share of a sentence's content words found in one passage sentence
CONTEXT_THRESHOLD = 0.5  # share of the words outside quotes found in the quoted document or the question
# A bare short answer ("Sky News") is cited by the passage sentence holding it only when that sentence holds
# at least this share of the question's content words. Measured by re-verifying stored gemma-270m outputs
# (bench/llm_compare.py, HaluEval rows 0-29): with any overlap allowed, 7 of the 10 short answers kept this way
# were wrong; at 0.5 the share of model answers kept fell from 0.43 to 0.37 with as many correct answers.
PHRASE_COVERAGE = 0.5

_MARKER = re.compile(r"\[(\d+)\]")
_MARKER_FORMS = re.compile(r"\[\s*(?:passages?|sources?|p)?\s*(\d+(?:\s*(?:,|;|and|-)\s*\d+)*)\s*\]", re.I)
_QUOTED = re.compile(r"\"((?:[^\"\n]|\n(?!\s*\n)){2,600})\"|“((?:[^”\n]|\n(?!\s*\n)){2,600})”|«([^»\n]{2,600})»")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_BOUNDARY = re.compile(r"(?:[.!?…]+[\"'”’)\]]*(?:\s*\[\d+\])*|(?:\[\d+\])+)(?=\s+[\"“'‘(]?[A-Z0-9])|\n+")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Gen|Gov|Sen|Rep|No|vs|etc|Inc|Ltd|Co|U\.S|U\.K|[A-Z])\.$")
_PREAMBLE = re.compile(r"^\s*(?:(?:the\s+)?answer(?:\s+is)?|response|assistant)\s*:\s*", re.I)
_BULLET = re.compile(r"^(?:\d{1,2}[.)]|[-*•])\s+")
_SPECIAL = re.compile(r"<\|[^|>]*\|>|<end_of_turn>|<start_of_turn>\w*|</?s>|</?answer>")


# ------------------------------------------------------------------ parsing the model's output


@dataclass
class Claim:
    """One sentence of the model's answer."""

    text: str
    markers: list[int]
    quotes: list[str]

    @property
    def plain(self) -> str:
        return re.sub(r"\s*\[\d+\]", "", self.text).strip()


def normalize_markers(text: str) -> str:
    """``[1, 2]``, ``[1-2]``, ``[Passage 1]`` -> ``[1] [2]``."""

    def expand(m: re.Match) -> str:
        inner = m.group(1)
        if "-" in inner:
            a, b = (int(x) for x in re.findall(r"\d+", inner)[:2])
            nums = list(range(a, b + 1)) if 0 < b - a < 10 else [a, b]
        else:
            nums = [int(x) for x in re.findall(r"\d+", inner)]
        return " ".join(f"[{n}]" for n in nums)

    return _MARKER_FORMS.sub(expand, text)


def clean_output(text: str) -> str:
    text = _SPECIAL.sub("", text or "")
    return normalize_markers(_PREAMBLE.sub("", text.strip())).strip()


def _quoted_ranges(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _QUOTED.finditer(text)]


def split_claims(text: str) -> list[Claim]:
    """Sentences of the model output with their [n] markers and quoted spans. A sentence
    boundary never falls inside a quotation; markers after the final stop stay with it."""
    text = clean_output(text)
    inside = _quoted_ranges(text)
    cuts, cursor = [], 0
    for m in _BOUNDARY.finditer(text):
        if any(a < m.end() < b for a, b in inside):
            continue
        if m.group().startswith(".") and _ABBREV.search(text[max(0, m.start() - 6): m.start() + 1]):
            continue
        cuts.append(text[cursor:m.end()])
        cursor = m.end()
    cuts.append(text[cursor:])
    claims = []
    for piece in (_BULLET.sub("", c.strip()) for c in cuts):
        if not re.search(r"[^\W\d_]", _MARKER.sub("", piece)):
            continue  # nothing but markers or punctuation
        quotes = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(piece)]
        claims.append(Claim(piece, [int(n) for n in _MARKER.findall(piece)], quotes))
    return claims


def is_abstention(text: str) -> bool:
    """The model said NOT IN DOCUMENTS (alone, or as its first sentence)."""
    t = clean_output(text).upper()
    return t.startswith(ABSTAIN) or t.strip(" .!\"'") == ABSTAIN or (ABSTAIN in t and len(t) < 3 * len(ABSTAIN))


# ------------------------------------------------------------------ grounding


@dataclass
class Source:
    """A retrieved passage with the full text of its document."""

    n: int  # 1-based passage number shown to the model
    node: object  # NodeWithScore
    doc_text: str

    @property
    def meta(self) -> dict:
        return self.node.node.metadata

    @property
    def start(self) -> int:
        return int(self.meta["start"])

    @property
    def end(self) -> int:
        return int(self.meta["end"])


@dataclass(frozen=True)
class Span:
    source: Source
    start: int
    end: int

    @property
    def key(self) -> tuple[str, int, int]:
        return self.source.meta["doc_id"], self.start, self.end

    @property
    def text(self) -> str:
        return self.source.doc_text[self.start:self.end]


@dataclass
class Grounded:
    """The verified answer text, its citations, and what was removed."""

    text: str
    citations: list[Citation]
    kept: int
    total: int
    dropped: list[str] = field(default_factory=list)


def _long_enough(quote: str) -> bool:
    q = quote.strip()
    return len(q.split()) >= MIN_QUOTE_WORDS or len(q) >= MIN_QUOTE_CHARS


def _variants(quote: str) -> list[str]:
    """The quote, then without edge punctuation, then its parts around an ellipsis."""
    quote = _MARKER.sub("", quote).strip()
    out = [quote, quote.strip(" .,;:!?-—–\"'“”‘’")]
    parts = [p.strip(" .,;:") for p in re.split(r"\s*(?:\.\.\.|…)\s*", quote)]
    if len(parts) > 1:
        out += [p for p in parts if _long_enough(p)]
    return [v for i, v in enumerate(out) if v and v not in out[:i] and _long_enough(v)]


def _ordered_sources(claim: Claim, sources: list[Source]) -> list[Source]:
    cited = [sources[n - 1] for n in dict.fromkeys(claim.markers) if 1 <= n <= len(sources)]
    return cited + [s for s in sources if s not in cited]


def locate_quote(quote: str, candidates: list[Source]) -> Span | None:
    """Where a model-written quote is in the candidates' documents (snapped to exact offsets)."""
    for variant in _variants(quote):
        for src in candidates:
            found = locate(src.doc_text, variant, hint=src.start)
            if found and found[1] > found[0]:
                return Span(src, *found)
    return None


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def context_support(outside: str, spans: list[Span], question: str) -> float:
    """Share of the content words of ``outside`` (a sentence minus its verified quotes) that
    occur in the quoted documents or the question (1.0 when fewer than three such words).
    A number the documents and the question do not contain gives 0."""
    words = set(tokenize(outside))
    docs = " ".join({s.source.meta["doc_id"]: s.source.doc_text for s in spans}.values())
    if _numbers(outside) - _numbers(docs) - _numbers(question):
        return 0.0
    if len(words) < 3:
        return 1.0
    known = set(tokenize(docs)) | set(tokenize(question))
    return len(words & known) / len(words)


def _unquote(text: str, quote: str) -> str:
    """Remove the quotation marks around ``quote``: text that is not the document's must not look quoted."""
    for a, b in (('"', '"'), ("“", "”"), ("«", "»")):
        text = text.replace(f"{a}{quote}{b}", quote)
    return text


def lexical_support(claim: Claim, candidates: list[Source], question: str = "") -> tuple[Span | None, float]:
    """The passage sentence that best contains the claim's content words, and that share.

    Words the claim only repeats from the question must not carry it: its other words
    (at least one) must be found in that sentence in the same share, and every number
    it states must be there too."""
    words = set(tokenize(claim.plain))
    new = words - set(tokenize(question))
    if len(words) < 3 or not new:
        return None, 0.0
    best, best_score = None, 0.0
    for src in candidates:
        node_text = src.doc_text[src.start:src.end]
        for sp in sentence_spans(node_text):
            sentence = node_text[sp.start:sp.end]
            if _numbers(claim.plain) - _numbers(sentence):
                continue
            present = set(tokenize(sentence))
            share = min(len(words & present) / len(words), len(new & present) / len(new))
            if share > best_score:
                best, best_score = Span(src, src.start + sp.start, src.start + sp.end), share
    return best, best_score


def phrase_support(claim: Claim, candidates: list[Source], question: str) -> Span | None:
    """A short answer ("Sky News") found verbatim in a passage sentence that is about the
    question (holds at least PHRASE_COVERAGE of its content words): that sentence is cited."""
    phrase = claim.plain.strip(" .,;:!?\"'“”‘’")
    words = set(tokenize(phrase))
    asked = set(tokenize(question))
    if not phrase or not asked or len(phrase.split()) > 8 or not words - asked:
        return None
    for src in candidates:
        node_text = src.doc_text[src.start:src.end]
        found = locate(node_text, phrase) if len(phrase) >= 3 else None
        if found is None or not _whole_words(node_text, *found):
            continue
        for sp in sentence_spans(node_text):
            if sp.start <= found[0] < sp.end:
                covered = len(asked & set(tokenize(node_text[sp.start:sp.end]))) / len(asked)
                if covered >= PHRASE_COVERAGE:
                    return Span(src, src.start + sp.start, src.start + sp.end)
                break
    return None


def _whole_words(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (end >= len(text) or not text[end].isalnum())


def _score(question: str, quote: str) -> float:
    q = set(tokenize(question))
    return round(len(q & set(tokenize(quote))) / len(q), 4) if q else 0.0


def ground(output: str, question: str, sources: list[Source], *, lexical_threshold: float = LEXICAL_THRESHOLD,
           context_threshold: float = CONTEXT_THRESHOLD) -> Grounded:
    """Keep the sentences of ``output`` that can be tied to verbatim document text."""
    ids: dict[tuple, int] = {}
    citations: list[Citation] = []
    kept_text, dropped, seen = [], [], set()
    claims = [c for c in split_claims(output) if ABSTAIN not in c.text.upper()]
    for claim in claims:
        if claim.plain.endswith("?"):
            dropped.append(claim.plain)  # a question (often the user's, echoed) asserts nothing
            continue
        candidates = _ordered_sources(claim, sources)
        n_cited = len([n for n in set(claim.markers) if 1 <= n <= len(sources)])
        shown, outside, spans = claim.plain, claim.plain, []
        for quote in claim.quotes:
            span = locate_quote(quote, candidates) if _long_enough(quote) else None
            if span is not None:
                spans.append(span)
                shown = shown.replace(quote, span.text, 1)  # show what the document says
                outside = outside.replace(quote, " ", 1)
            elif not (len(quote.strip()) >= 2 and any(locate(s.doc_text, quote) for s in candidates[: n_cited or None])):
                shown = _unquote(shown, quote)  # not the document's words: must not look like a quote
        spans = [s for s in {sp.key: sp for sp in spans}.values()
                 if not any(o.key[0] == s.key[0] and o.start <= s.start and s.end <= o.end and o.key != s.key
                            for o in spans)]
        if spans and context_support(outside, spans, question) < context_threshold:
            spans = []
        if not spans:
            plain_claim = Claim(shown, claim.markers, [])
            span, share = lexical_support(plain_claim, candidates[:n_cited] or candidates, question)
            if span is None or share < lexical_threshold:
                span = phrase_support(plain_claim, candidates[:n_cited] or candidates, question)
            if span is not None:
                spans = [span]
        if not spans:
            dropped.append(claim.plain)
            continue
        if shown in seen:
            continue  # small models repeat themselves
        seen.add(shown)
        marks = []
        for span in spans:
            if span.key not in ids:
                ids[span.key] = len(ids) + 1
                meta = span.source.meta
                cite = Citation(id=ids[span.key], quote=span.text, doc_id=meta["doc_id"], source=meta["source"],
                                title=meta.get("title", ""), start=span.start, end=span.end,
                                score=_score(question, span.text), role="support")
                cite._doc_hash = meta["doc_hash"]  # noqa: SLF001
                citations.append(cite)
            if ids[span.key] not in marks:
                marks.append(ids[span.key])
        kept_text.append(f"{shown} " + " ".join(f"[{m}]" for m in marks))
    return Grounded(" ".join(kept_text), citations, len(kept_text), len(claims), dropped)


# ------------------------------------------------------------------ the generator


@dataclass
class Trace:
    """What the last generation did (for benchmarks and logs)."""

    raw: str = ""
    tokens: int = 0
    seconds: float = 0.0
    first_token_s: float | None = None
    sentences: int = 0
    kept: int = 0
    fallback: str | None = None


class Generator:
    """Answers with a model, then keeps only what the documents verify."""

    def __init__(self, config, llm=None, spec: BackendSpec | None = None, options: LLMOptions | None = None):
        self.config = config
        self.spec = spec or parse_spec(config.llm)
        self.options = options or LLMOptions()
        self.llm = llm if llm is not None else make_llm(self.spec, config, self.options)
        self.name = self.spec.name
        local = self.spec.kind == "gguf"
        # Room for passages in the prompt: in-process models have a small context window.
        self.max_passage_chars = (max(1000, int((self.options.n_ctx - self.options.max_tokens - 350) * 3))
                                  if local else 12_000)
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

    def _chat(self, messages, **kwargs) -> tuple[str, int]:
        try:
            resp = self.llm.chat(messages, **kwargs)
        except Exception as exc:  # noqa: BLE001  (every failure becomes BackendUnavailable)
            raise self._fail(exc) from exc
        extra = resp.additional_kwargs or {}
        text = resp.message.content or ""
        tokens = int(extra.get("completion_tokens") or 0) or len(text.split())
        return text, tokens

    def _stream_chat(self, messages, **kwargs) -> Iterator[str]:
        try:
            for r in self.llm.stream_chat(messages, **kwargs):
                if r.delta:
                    yield r.delta
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc) from exc

    def _messages(self, question: str, nodes):
        budget = self.max_passage_chars
        passages = passages_from_nodes(nodes, budget)
        messages = answer_messages(question, passages)
        count = getattr(self.llm, "count_tokens", None)
        if count is not None:  # in-process: make sure prompt + answer fit the context window
            while budget > 800:
                used = sum(count(m.content or "") for m in messages) + 60
                if used + self.options.max_tokens <= self.options.n_ctx:
                    break
                budget = int(budget * 0.75)
                passages = passages_from_nodes(nodes, budget)
                messages = answer_messages(question, passages)
        return messages, len(passages)

    def _sources(self, nodes, k: int, assistant) -> list[Source]:
        out = []
        for n, nws in enumerate(nodes[:k], 1):
            meta = nws.node.metadata
            try:
                text = assistant.store.document_text(meta["doc_id"], meta["doc_hash"])
            except Exception:  # noqa: BLE001  (document gone or changed: its quotes cannot be checked)
                text = ""
            out.append(Source(n, nws, text))
        return out

    # -------------------------------------------------------------- answering

    def answer(self, question: str, nodes, assistant) -> Answer:
        """One verified answer (or the extractive fallback with a note)."""
        result = None
        for item in self._run(question, nodes, assistant, stream=False):
            result = item
        return result

    def stream(self, question: str, nodes, assistant) -> Iterator[str | Answer]:
        """The model's text deltas as they arrive, then the final verified Answer."""
        yield from self._run(question, nodes, assistant, stream=True)

    def _run(self, question: str, nodes, assistant, stream: bool) -> Iterator[str | Answer]:
        trace = Trace()
        self._local.trace = trace
        nodes = list(nodes or [])
        if not nodes:
            answer = assistant.extractive_answer(question, nodes)
            answer.backend = self.name
            yield answer
            return
        messages, k = self._messages(question, nodes)
        t0 = time.perf_counter()
        if stream:
            parts = []
            for delta in self._stream_chat(messages):
                if trace.first_token_s is None:
                    trace.first_token_s = time.perf_counter() - t0
                parts.append(delta)
                yield delta
            trace.raw, trace.tokens = "".join(parts), len(parts)
        else:
            trace.raw, trace.tokens = self._chat(messages)
        trace.seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        answer = self.verify(trace.raw, question, nodes[:k], assistant, trace)
        answer.timings_ms.update({"generate": round(trace.seconds * 1000, 2),
                                  "ground": round((time.perf_counter() - t1) * 1000, 2)})
        yield answer

    def verify(self, output: str, question: str, nodes, assistant, trace: Trace | None = None) -> Answer:
        """Turn raw model output into an Answer whose citations are exact document text."""
        trace = trace or Trace(raw=output)
        sources = self._sources(nodes, len(nodes), assistant)
        grounded = ground(output, question, sources)
        trace.sentences, trace.kept = grounded.total, grounded.kept
        if grounded.citations:
            note = None
            if grounded.dropped:
                note = (f"{len(grounded.dropped)} of {grounded.total} generated sentences removed: "
                        "no verifiable quote in the documents")
            return Answer(answer=grounded.text, citations=grounded.citations, backend=self.name,
                          dropped_claims=grounded.dropped, note=note)
        abstained = is_abstention(output)
        trace.fallback = "abstained" if abstained else "unverified"
        answer = assistant.extractive_answer(question, nodes)
        answer.backend = self.name
        answer.note = NOTE_ABSTAINED if abstained else NOTE_UNVERIFIED
        answer.dropped_claims = grounded.dropped + answer.dropped_claims
        return answer

    # -------------------------------------------------------------- follow-ups

    def condense(self, question: str, history: list[dict]) -> str | None:
        """The follow-up rewritten as a standalone question by the model; None when the
        model fails or its rewrite does not look like a question about the same thing."""
        try:
            text, _ = self._chat(condense_messages(question, history), max_tokens=64)
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
