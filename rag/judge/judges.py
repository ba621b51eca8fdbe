"""Faithfulness judges: is a claim supported by the evidence it was drawn from?

A judge reads one claim and its evidence and returns a :class:`Verdict`
(supported or not, a probability-like score, the evidence it read and the
reasons). :func:`judge_output` splits a whole output into claims with the
judge's ``split`` and combines their scores with :func:`aggregate`.

:class:`CrossEncoderJudge` (the default, no model server) is the distilled
MiniLM cross-encoder ``rag/data/judge-minilm.onnx`` run on onnxruntime by
``rag.judge.cross_encoder``: it reads the claim together with its evidence window
(the evidence sentences sharing most words with the claim, in document order,
``rag.judge.cross_encoder.evidence_window``) and gives P(supported). Trained by
``bench/train_cross_encoder.py --task judge`` on HaluEval rows 0-2249
(summarization, QA, dialogue) and synthetic contradictions over BBC articles;
its threshold is calibrated on rows 2250-2499; measured on rows 2500-4999 and on
the seed pairs by ``bench/judge_halueval.py`` (figures in
``rag/data/judge-minilm.md``). An output is split into claims of whole
sentences up to the model's claim budget (72 wordpieces: a HaluEval summary
is mostly one claim), and its score is the weakest claim's.

The hand-made lexical judge this replaced (novel words, name/number swaps, a
logistic fit) is gone with its calibration file: the model beats it on every
set we measure (see the model card). Only its negation and antonym cues remain
(``rag/judge/contradiction_cues.py``): a claim showing one is capped below the
threshold, because the model alone misses contradictions in the evidence's own
words.

:class:`LLMJudge` asks a language model on any OpenAI-compatible server (or a
local GGUF) for a JSON verdict with a supporting quote.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rag.index.lexical import tokenize
from rag.index.sentences import sentence_spans

from rag.judge import contradiction_cues


@dataclass
class Verdict:
    """A judge's decision on one claim. ``score`` is probability-like: higher = supported."""

    supported: bool
    score: float
    evidence: str = ""
    reasons: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    claim: str = ""


@runtime_checkable
class Judge(Protocol):
    name: str

    def judge(self, claim: str, evidence: list[str] | str) -> Verdict: ...


def split_claims(output: str) -> list[str]:
    """The output's sentences; fragments without any content word are dropped."""
    claims = [s.text(output) for s in sentence_spans(output)]
    return [c for c in claims if tokenize(c)] or ([output.strip()] if output.strip() else [])


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def aggregate(scores: list[float], weights: list[float] | None = None, min_weight: float = 1.0) -> float:
    """Output score from claim scores: on the logit scale, ``min_weight`` x the weakest claim plus
    (1 - ``min_weight``) x the mean weighted by ``weights`` (default equal); 1.0 = plain minimum.
    No claims: 1.0 (nothing is unsupported)."""
    if not scores:
        return 1.0
    logits = [_logit(s) for s in scores]
    weights = weights if weights and sum(weights) > 0 else [1.0] * len(scores)
    mean = sum(lg * w for lg, w in zip(logits, weights)) / sum(weights)
    return _sigmoid(min_weight * min(logits) + (1 - min_weight) * mean)


def judge_output(context: str | list[str], output: str, judge: Judge | None = None) -> tuple[float, list[Verdict]]:
    """Judge every claim of ``output`` against ``context``.

    Returns ``(score, verdicts)``: the claims come from the judge's ``split`` (its sentences if it has
    none), the score from :func:`aggregate` with the judge's ``model["min_weight"]`` (1.0, the weakest
    claim, when it has none). Compare the score with ``judge.model["threshold"]``. An empty output scores
    1.0.
    """
    judge = judge or default_judge()
    claims = getattr(judge, "split", split_claims)(output)
    if hasattr(judge, "judge_many"):
        verdicts = judge.judge_many(claims, context)
    else:
        verdicts = [judge.judge(c, context) for c in claims]
    for claim, v in zip(claims, verdicts):
        v.claim = claim
    if hasattr(judge, "aggregate_output"):
        return judge.aggregate_output([v.score for v in verdicts]), verdicts
    model = getattr(judge, "model", {}) or {}
    weights = [float(len(tokenize(v.claim))) for v in verdicts]
    return aggregate([v.score for v in verdicts], weights, model.get("min_weight", 1.0)), verdicts


# --------------------------------------------------------------------------- the distilled judge


class CrossEncoderJudge:
    """The packaged MiniLM cross-encoder judge (``rag/data/judge-minilm.onnx``), onnxruntime only.

    ``judge(claim, evidence)`` reads the claim with its evidence window; ``split(output)`` groups an
    output's sentences into claims of at most the model's claim budget; ``model["threshold"]`` is the
    calibrated threshold (the same for a claim and for an output's weakest claim).
    """

    name = "cross-encoder"

    # cues of the lexical judge that cap a claim's score below the threshold (a contradiction in the
    # evidence's own words, which the model alone often misses; see the model card)
    # ("swap", a swapped name or number, cost about 30 points of HaluEval accuracy on test rows 2500-2999:
    # CNN highlights hold names and numbers their article's best sentence lacks; so it is off)
    CUES = ("negation", "antonym")
    CUE_MARGIN = 0.05

    def __init__(self, model_name: str | None = None, cues: bool = True):
        from rag.judge import cross_encoder

        self._ce = cross_encoder
        self.encoder = cross_encoder.load_model(model_name or cross_encoder.JUDGE_MODEL)
        self.budget = int(self.encoder.meta.get("evidence_budget", 160))
        self.claim_budget = int(self.encoder.meta.get("max_a") or 80)
        self.cues = cues
        self.model = {"threshold": self.encoder.threshold, "min_weight": 1.0, "cues": list(self.CUES) if cues else [],
                      "source": f"rag/data/{self.encoder.path.name} (sha256 {self.encoder.meta['sha256'][:12]}...)"}

    def split(self, output: str) -> list[str]:
        """Consecutive sentences joined into claims of at most ``claim_budget`` wordpieces (the model was
        trained on whole short outputs and on single sentences); a longer sentence is a claim of its own."""
        sentences = split_claims(output)
        if len(sentences) <= 1:
            return sentences
        sizes = [len(ids) for ids in self._ce.wordpieces(sentences)]
        claims, current, used = [], [], 0
        for s, n in zip(sentences, sizes):
            if current and used + n > self.claim_budget:
                claims.append(" ".join(current))
                current, used = [], 0
            current.append(s)
            used += n
        if current:
            claims.append(" ".join(current))
        return claims

    def judge_many(self, claims: list[str], evidence: list[str] | str) -> list[Verdict]:
        windows = [self._ce.evidence_window(c, evidence, self.budget) for c in claims]
        scores = self.encoder.predict(list(zip(claims, windows))) if claims else []
        t = self.model["threshold"]
        out = []
        for c, w, s in zip(claims, windows, scores):
            s = float(s)
            reasons = [f"cross-encoder P(supported) {s:.2f} {'>=' if s >= t else '<'} threshold {t:.2f}"]
            if self._ce.verbatim_in(c, evidence):
                s = max(s, self._ce.VERBATIM_SCORE)
                reasons.append("the claim stands verbatim in the evidence")
            feats: dict[str, float] = {}
            if self.cues:
                # per sentence: a claim may group several, and the cues align one sentence with one
                fired, why = [], []
                for sentence in split_claims(c):
                    f, r = contradiction_cues.cues(sentence, evidence)
                    hit = [k for k in self.CUES if f.get(k, 0.0) > 0]
                    if hit:
                        feats = {k: max(feats.get(k, 0.0), f.get(k, 0.0)) for k in self.CUES}
                        fired += [k for k in hit if k not in fired]
                        why += r
                if fired:
                    s = min(s, t - self.CUE_MARGIN)
                    reasons += why
                    reasons.append(f"capped below the threshold by the lexical cue(s): {', '.join(fired)}")
            feats = {**feats, "model_score": float(scores[len(out)])}
            out.append(Verdict(supported=s >= t, score=s, evidence=w, reasons=reasons, features=feats, claim=c))
        return out

    def judge(self, claim: str, evidence: list[str] | str) -> Verdict:
        return self.judge_many([claim], evidence)[0]


# --------------------------------------------------------------------------- LLM judge


LLM_PROMPT = """You check a claim against evidence. Use only the evidence, not what you know.

Evidence:
<<<
{evidence}
>>>

Claim: {claim}

Is the claim fully supported by the evidence? A claim that adds facts the evidence lacks, or that changes a
name, number, date or negation, is unsupported. Answer with JSON only, no other text:
{{"verdict": "supported" or "unsupported", "quote": "the evidence sentence that supports the claim, copied
exactly (empty if none)", "reason": "one short sentence"}}"""


DECOMPOSE_PROMPT = """Split the text into short, self-contained factual claims. Keep the text's own words; replace
pronouns with what they refer to. Answer with JSON only, no other text: {{"claims": ["...", "..."]}}

Text: {output}"""

RETRY_NOTE = "\n\nYour previous answer was not the JSON object asked for. Answer with the JSON object only."


def _json_object(raw: str) -> dict | None:
    """The first JSON object in a model's answer (code fences and chatter around it are ignored)."""
    match = re.search(r"\{.*\}", raw, re.S)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class LLMJudge:
    """A judge backed by a language model on any OpenAI-compatible server (or a local GGUF model).

    ``llm`` is a llama-index LLM (anything with ``complete(prompt) -> obj.text``) or a plain
    ``callable(prompt) -> str``. Against an OpenAI-compatible server the request asks for a JSON object
    (``response_format``; llama.cpp's server enforces it with a grammar); an answer that still is not the
    JSON asked for is asked again, up to ``attempts`` times, then fails closed. A "supported" verdict only
    counts when the quote the model gives occurs in the evidence (whitespace and quote marks
    normalised). The score is ``confidence`` for an accepted "supported", ``1 - confidence`` otherwise (no
    logprobs are assumed). With ``decompose=True``, :meth:`split` asks the model to break an output into
    atomic claims (RAGChecker-style), falling back to the sentences if it cannot.
    """

    name = "llm"

    def __init__(self, llm, confidence: float = 0.9, max_evidence_chars: int = 12_000, attempts: int = 3,
                 decompose: bool = False):
        self.llm = llm
        self.confidence = confidence
        self.max_evidence_chars = max_evidence_chars
        self.attempts = max(1, attempts)
        self.decompose = decompose
        self.model = {"threshold": 0.5, "min_weight": 1.0}
        self.calls = 0
        self._json_mode = hasattr(llm, "complete") and "openai" in type(llm).__module__.lower()

    def _ask(self, prompt: str) -> str:
        self.calls += 1
        if not hasattr(self.llm, "complete"):
            return str(self.llm(prompt))
        if self._json_mode:
            try:
                return str(self.llm.complete(prompt, response_format={"type": "json_object"}).text)
            except TypeError:
                self._json_mode = False
        return str(getattr(self.llm.complete(prompt), "text", ""))

    def _ask_json(self, prompt: str, valid) -> tuple[dict | None, str]:
        """Ask until ``valid(answer)`` holds (at most ``attempts`` times); (answer or None, last raw text).
        Errors from the model call propagate."""
        raw = ""
        for attempt in range(self.attempts):
            raw = self._ask(prompt if attempt == 0 else prompt + RETRY_NOTE)
            answer = _json_object(raw)
            if answer is not None and valid(answer):
                return answer, raw
        return None, raw

    def split(self, output: str) -> list[str]:
        """The output's claims: the model's decomposition when ``decompose`` is on, else its sentences."""
        sentences = split_claims(output)
        if not self.decompose or len(output.split()) < 8:
            return sentences
        try:
            answer, _ = self._ask_json(DECOMPOSE_PROMPT.format(output=output), lambda a: isinstance(
                a.get("claims"), list) and all(isinstance(c, str) for c in a["claims"]) and a["claims"])
        except Exception:  # noqa: BLE001  (decomposition is an aid; the sentences still get judged)
            return sentences
        claims = [c.strip() for c in (answer or {}).get("claims", []) if c.strip()]
        return claims or sentences

    def judge(self, claim: str, evidence: list[str] | str) -> Verdict:
        text = evidence if isinstance(evidence, str) else "\n\n".join(evidence)
        prompt = LLM_PROMPT.format(evidence=text[: self.max_evidence_chars], claim=claim)
        try:
            answer, raw = self._ask_json(prompt, lambda a: str(a.get("verdict", "")).lower() in (
                "supported", "unsupported"))
        except Exception as exc:  # a judge that cannot answer must not pass the claim
            return Verdict(False, 0.0, "", [f"model call failed: {type(exc).__name__}: {exc}"], claim=claim)
        if answer is None:
            return Verdict(False, 0.0, "", [f"unreadable model answer after {self.attempts} attempts: {raw[:200]!r}"],
                           claim=claim)
        quote = str(answer.get("quote") or "").strip()
        reasons = [str(answer.get("reason") or "").strip()] if answer.get("reason") else []
        said_supported = answer["verdict"].lower() == "supported"

        def norm(t: str) -> str:
            return re.sub(r"\s+", " ", t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"'))

        quoted_ok = bool(quote) and norm(quote).strip(" .") in norm(text)
        if said_supported and not quoted_ok:
            reasons.append("the model's supporting quote is not in the evidence" if quote else
                           "the model gave no supporting quote")
        supported = said_supported and quoted_ok
        score = self.confidence if supported else 1 - self.confidence
        return Verdict(supported, score, quote if quoted_ok else "", reasons, claim=claim)


_DEFAULT: CrossEncoderJudge | None = None


def default_judge() -> CrossEncoderJudge:
    """The offline judge, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = CrossEncoderJudge()
    return _DEFAULT
