"""The answer model checks each claim it wrote against the sentences it cites.

After the model has written its JSON answer, the conversation goes on by one turn per claim:

    [system: answer instructions] [user: numbered sentences + question] [assistant: its JSON]
    [user: "Claim: C / Sentences: [N-1] … [N] … [N+1] … / Do these sentences support every part
     of the claim? Answer yes or no."]

and the score is ``P(yes) / (P(yes) + P(no))`` over the first reply token
(:func:`rag.judge.logprob_judge.yes_probability`). Everything before the last turn is the answer's
own prompt and reply, so llama.cpp keeps its KV state: a check costs the claim's own tokens.
A local model gives the logprobs from its prompt's last position; an OpenAI-compatible server
with ``top_logprobs`` from a one-token reply; a server with neither gets a JSON verdict (one
short generation). Measured by hand before this was built (issue 21): Qwen2.5-Coder-1.5B scored
five false claims made of their sentence's words 0.23-0.33 and five faithful paraphrases
0.74-0.92 in this form; the threshold is fitted on dev pairs (``bench/self_check.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from rag.judge.judges import LLMJudge
from rag.judge.logprob_judge import next_token_top, yes_probability

THRESHOLD = 0.5
VERIFY = ("Check one claim of your answer against the sentences it cites.\n"
          "Claim: {claim}\n"
          "Sentences:\n{sentences}\n"
          "Do these sentences support every part of the claim (who did what, when, how many, and whether it "
          "happened at all)? Answer yes or no.")


@dataclass
class SelfCheck:
    """``score(messages, reply, claim, sentences)`` -> (P(supported), how it was decided)."""

    llm: object
    threshold: float = THRESHOLD
    calls: int = 0
    _no_logprobs: bool = field(default=False, repr=False)

    def verify_messages(self, messages: list[ChatMessage], reply: str, claim: str,
                        sentences: str) -> list[ChatMessage]:
        return [*messages, ChatMessage(role=MessageRole.ASSISTANT, content=reply),
                ChatMessage(role=MessageRole.USER, content=VERIFY.format(claim=claim, sentences=sentences))]

    def __call__(self, messages: list[ChatMessage], reply: str, claim: str, sentences: str) -> tuple[float, str]:
        return self.score(messages, reply, claim, sentences)

    def score(self, messages: list[ChatMessage], reply: str, claim: str, sentences: str) -> tuple[float, str]:
        self.calls += 1
        convo = self.verify_messages(messages, reply, claim, sentences)
        if not self._no_logprobs:
            top = next_token_top(self.llm, convo)
            if top is None:
                self._no_logprobs = True  # this backend gives none: ask for verdicts from now on
            elif (p := yes_probability(top)) is not None:
                return p, "self-check"
        verdict = LLMJudge(self.llm).judge(claim, sentences)
        return verdict.score, "json-verdict"
