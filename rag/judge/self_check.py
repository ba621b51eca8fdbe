"""The answer model checks each claim it wrote against the sentence it cites.

Once the model's reply is complete, each claim is put to the same model as one short question,
"Sentence: S / Claim: C / Does the sentence support every part of the claim? Answer yes or no.",
and scored ``P(yes) / (P(yes) + P(no))`` over the first reply token: the LLM judge's own check
(:func:`rag.judge.logprob_judge.support_probability`), with its threshold fitted on the dev
pairs. One model runtime answers and judges; a local model gives the logprobs from the prompt's
last position, an OpenAI-compatible server with ``top_logprobs`` from a one-token reply, and a
server with neither a JSON verdict (one short generation).

Why a short standalone prompt and not a further turn of the answer's conversation (which would
reuse its KV state): with Qwen2.5-Coder-1.5B on the 24 dev pairs, the claim put as the model's own
earlier answer and checked in that conversation scored ROC AUC 0.58 (the model agrees with
itself); the sentence and claim alone 0.979, at 0.75 s a check on 2 cores. The answer prompt's
KV state is kept aside by llama.cpp's state cache meanwhile (``rag.llm.llama_engine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.judge.judges import LLMJudge
from rag.judge.logprob_judge import load_answer_threshold, load_threshold, support_probability

THRESHOLD = load_threshold()
ANSWER_THRESHOLD = load_answer_threshold()


@dataclass
class SelfCheck:
    """``check(claim, sentence)`` -> (P(the sentence supports the claim), how it was decided)."""

    llm: object
    threshold: float = THRESHOLD
    calls: int = 0
    _no_logprobs: bool = field(default=False, repr=False)

    def __call__(self, claim: str, sentence: str) -> tuple[float, str]:
        self.calls += 1
        if not self._no_logprobs:
            p = support_probability(self.llm, claim, sentence)
            if p is not None:
                return p, "self-check"
            self._no_logprobs = True  # no logprobs (or no yes/no among them): verdicts from now on
        verdict = LLMJudge(self.llm).judge(claim, sentence)
        return verdict.score, "json-verdict"
