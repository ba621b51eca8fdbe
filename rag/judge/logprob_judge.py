"""A faithfulness judge that reads a model's yes/no probabilities, one sentence at a time.

The model sees one sentence of the evidence and the claim, and is asked whether the sentence
supports every part of the claim. The score is ``P(yes) / (P(yes) + P(no))`` over the first
reply token, each side summed over its case and spacing variants ("Yes", "yes", " YES" ...):
reading only one of "Yes"/"yes" made the judge look inverted on Qwen2.5.

The same check is the answer model's check of its own claims (``rag.judge.self_check``): one
prompt, one threshold (``rag/data/logprob_judge_calibration.json``, fitted on the dev pairs only by
``bench/llm_judge.py --calibrate``).

Which evidence: the claim's best sentence (most content words shared with it, idf-weighted).
Chosen on the 24 dev pairs (``eval/data/judge_dev_pairs.jsonl``) with Qwen2.5-Coder-1.5B, by ROC
AUC: the best sentence alone 0.979; that sentence with its two neighbours 0.722; the whole article
(up to 600 words) before the claim 0.861 (the previous form). The 1.5B model reads one sentence
well and several poorly; the short prompt also costs ~80 tokens (0.75 s on 2 cores) instead of
a document. llama.cpp's state cache (``rag.llm.llama_engine``) keeps the answer prompt's KV
state aside while claims are checked, so the next question still reuses it.

Where the logprobs come from:

* local GGUF (``LlamaCppLLM.next_token_logprobs``): the logits of the prompt's last
  position, no sampling and no ``logits_all``;
* OpenAI-compatible servers: ``logprobs=True, top_logprobs=20, max_tokens=1`` on
  ``/v1/chat/completions`` (``llama_cpp.server`` needs ``--logits_all true`` for it).

A backend that gives no logprobs (or whose top tokens hold neither yes nor no) is judged
by the JSON-verdict ``LLMJudge`` instead, and the verdict says so.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from rag.index.lexical import tokenize
from rag.index.sentences import sentence_spans

from rag.judge.judges import LLMJudge, Verdict, aggregate, split_claims

PROMPT = "Sentence: {evidence}\nClaim: {claim}\nDoes the sentence support every part of the claim? Answer yes or no."
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "logprob_judge_calibration.json"
YES, NO = "yes", "no"


def yes_probability(top: dict[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) from first-token log-probabilities; None when neither is there."""
    yes = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() == YES)
    no = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() == NO)
    if yes + no <= 0:
        return None
    return yes / (yes + no)


def best_sentence(claim: str, context: str) -> str:
    """The sentence of ``context`` that shares the most content words with ``claim`` (idf-weighted)."""
    return best_sentences(claim, context, max_words=0, neighbours=0)


def support_probability(llm, claim: str, sentence: str) -> float | None:
    """P(yes) that ``sentence`` supports every part of ``claim``, from the first-token logprobs of
    ``llm``'s reply (None: the backend gives no logprobs, or neither yes nor no is among them)."""
    top = next_token_top(llm, [ChatMessage(role=MessageRole.USER, content=PROMPT.format(evidence=sentence,
                                                                                        claim=claim))])
    return yes_probability(top) if top else None


def best_sentences(claim: str, context: str, max_words: int = 600, neighbours: int = 1, count: int = 1) -> str:
    """The context itself when short, else the sentences that best cover the claim, in order
    (``max_words`` 0: the ``count`` best sentences alone)."""
    if max_words and len(context.split()) <= max_words:
        return context
    spans = sentence_spans(context)
    texts = [sp.text(context) for sp in spans]
    bags = [set(tokenize(t)) for t in texts]
    df = Counter(w for b in bags for w in b)
    n = len(texts)
    wanted = set(tokenize(claim))

    def score(i: int) -> float:
        return sum(math.log(1 + n / df[w]) for w in wanted & bags[i])

    if not max_words:  # the ``count`` best sentences, in document order
        if not texts:
            return context
        best = sorted(range(n), key=lambda i: (-score(i), i))[:max(1, count)]
        return " ".join(texts[i] for i in sorted(best))
    picked: set[int] = set()
    words = 0
    for i in sorted(range(n), key=lambda i: -score(i)):
        if score(i) <= 0:
            break
        for j in range(max(0, i - neighbours), min(n, i + neighbours + 1)):
            if j not in picked and words + len(texts[j].split()) <= max_words:
                picked.add(j)
                words += len(texts[j].split())
        if words >= max_words:
            break
    return " ".join(texts[i] for i in sorted(picked)) or " ".join(context.split()[:max_words])


def _openai_top(llm, messages) -> dict[str, float] | None:
    """First-token top logprobs from an OpenAI-compatible server (None if it gives none)."""
    if getattr(llm, "max_tokens", None) not in (None, 1):  # llama-index's OpenAI LLM lets its own max_tokens win
        llm = llm.model_copy(update={"max_tokens": 1})
    resp = llm.chat(messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20)
    raw = resp.raw
    try:
        content = raw.choices[0].logprobs.content if hasattr(raw, "choices") else \
            raw["choices"][0]["logprobs"]["content"]
    except (AttributeError, KeyError, IndexError, TypeError):
        content = None
    if not content:
        return None
    first = content[0]
    tops = first.top_logprobs if hasattr(first, "top_logprobs") else first.get("top_logprobs", [])
    out: dict[str, float] = {}
    for t in tops or []:
        tok, lp = (t.token, t.logprob) if hasattr(t, "token") else (t["token"], t["logprob"])
        out[tok] = float(lp)
    return out or None


def next_token_top(llm, messages) -> dict[str, float] | None:
    """First-token top logprobs of a reply to ``messages``: read from the prompt's last position
    on a local model (``next_token_logprobs``), asked of an OpenAI-compatible server otherwise."""
    if hasattr(llm, "next_token_logprobs"):
        return llm.next_token_logprobs(messages)
    return _openai_top(llm, messages)


def load_threshold(path: Path = CALIBRATION) -> float:
    try:
        return float(json.loads(path.read_text())["threshold"])
    except (OSError, ValueError, KeyError):
        return 0.5


def load_answer_threshold(path: Path = CALIBRATION) -> float:
    """The threshold of "Question: Q Answer: A." (does a short answer answer the question), lower than the
    claim check's: a two-step question's right answer scores 0.45-0.57 against one sentence."""
    try:
        return float(json.loads(path.read_text())["answer"]["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return load_threshold(path)


def load_aggregation(path: Path = CALIBRATION) -> str:
    try:
        name = json.loads(path.read_text())["output"]["aggregation"]
    except (OSError, ValueError, KeyError, TypeError):
        return "weakest"
    return name if name in ("weakest", "half-weakest", "logit-mean") else "weakest"


class LogprobJudge:
    """``judge(claim, evidence)`` from a model's yes/no probabilities (see the module docstring)."""

    name = "llm-logprob"

    def __init__(self, llm, threshold: float | None = None, max_words: int = 600, fallback: LLMJudge | None = None):
        self.llm = llm
        self.threshold = load_threshold() if threshold is None else threshold
        self.max_words = max_words
        self.fallback = fallback or LLMJudge(llm)
        self.aggregation = load_aggregation()
        self.sentences = 1  # evidence sentences per claim (bench/llm_judge.py --evidence-sentences)
        self.model = {"threshold": self.threshold, "min_weight": 1.0}
        self.calls = 0
        self._no_logprobs = False

    def split(self, output: str) -> list[str]:
        """An output's claims are its sentences: no generation (the model's JSON decomposition cost a
        generation per output and evicted the document's cached prefix: 51 s a claim)."""
        return split_claims(output)

    def aggregate_output(self, scores: list[float]) -> float:
        """An output's score from its claims' (``aggregation``, chosen on HaluEval dev rows by
        ``bench/llm_judge.py --choose-aggregation``; the weakest claim until then)."""
        return aggregate(scores, None, {"weakest": 1.0, "half-weakest": 0.5, "logit-mean": 0.0}[self.aggregation])

    def score(self, claim: str, evidence: str) -> float | None:
        """P(supported) for ``claim`` against already selected ``evidence`` text (None: no logprobs)."""
        if self._no_logprobs:
            return None
        self.calls += 1
        top = next_token_top(self.llm, [ChatMessage(role=MessageRole.USER,
                                                    content=PROMPT.format(evidence=evidence, claim=claim))])
        if top is None:
            self._no_logprobs = True  # this backend gives none: stop asking
            return None
        return yes_probability(top)

    def evidence_for(self, claim: str, context: str) -> str:
        """What the model is shown for ``claim``: the context's best sentence for it (``sentences`` > 1:
        that many best sentences, in document order)."""
        if self.sentences > 1:
            return best_sentences(claim, context, max_words=0, neighbours=0, count=self.sentences)
        return best_sentence(claim, context)

    def judge(self, claim: str, evidence: list[str] | str) -> Verdict:
        context = evidence if isinstance(evidence, str) else "\n\n".join(evidence)
        shown = self.evidence_for(claim, context)
        try:
            p = self.score(claim, shown)
        except Exception as exc:  # noqa: BLE001  (a judge that cannot answer must not pass the claim)
            return Verdict(False, 0.0, "", [f"model call failed: {type(exc).__name__}: {exc}"], claim=claim)
        if p is None:
            v = self.fallback.judge(claim, shown)
            v.reasons.append("no yes/no logprobs from this backend: JSON verdict")
            return v
        return Verdict(p >= self.threshold, round(p, 4), shown, [f"P(yes) = {p:.3f}"], {"p_yes": p}, claim=claim)
