"""Does a generated claim follow from the sentence it cites? The gate each claim passes.

``default_support()`` gives ``(check, threshold)``; ``check(claim, quote)`` returns
``(score, reason)``, and a claim whose score is under the threshold is dropped with that reason.

What the check trusts, and why (measured on Qwen2.5-Coder-1.5B's claims over the seed dev set,
``bench/llm_compare.py``): with the distilled judge's score as the gate, 5 of 7 claims were dropped;
near-copies of their sentence scored 0.35-0.45 (the model misjudges copies, see
``rag/data/judge-minilm.md``) while "The boiling point of water at sea level is 100°C." cited to an
unrelated sentence scored 0.82. So the gate is:

1. the judge's contradiction cues (``rag.judge.judges.default_judge()``, the judge ``rag eval`` uses:
   a negation or antonym flip against the quote caps the claim below its threshold); and
2. the claim's content words must mostly be in its quote (at least ``MIN_OVERLAP``): a claim
   about something its quote does not mention is dropped. Words of the question do not count:
   with them, "Canberra is the capital of Australia." passed for "What is the capital of
   Australia?" citing a sentence about Zelenskyy. On the 7 claims of that run this gate keeps the
   4 that their sentences support and drops the 3 that cite an unrelated sentence.

Known gap (measured on the 67 seed questions): a claim that only restates the question in its quote's
words passes rule 2. For "What is the name of the Sky News journalist who interviewed Zelenskyy?", Qwen
wrote "Sky News is the name of the Sky News journalist who interviewed Zelenskyy." and it was kept; 3 of
the 14 unanswerable seed questions got an answer instead of an abstention. Counting only the claim's words
that are not in the question would catch it, but would also drop correct yes/no answers that restate the
question with a "not".

The judge's model score is reported in the reason but does not decide alone. Without the judge's
weights (``rag/data/judge-minilm.onnx``) only rule 2 applies.
"""

from __future__ import annotations

from rag.index.lexical import tokenize

MIN_OVERLAP = 0.5
NOT_IN_QUOTE = "it says what its quote does not"


def overlap(claim: str, quote: str) -> float:
    """Share of the claim's content words found in the quote."""
    words = set(tokenize(claim))
    if not words:
        return 0.0
    return len(words & set(tokenize(quote))) / len(words)


def default_support():
    from rag.judge.cross_encoder import DATA_DIR, JUDGE_MODEL

    judge = None
    if (DATA_DIR / f"{JUDGE_MODEL}.onnx").is_file():
        from rag.judge.judges import default_judge  # the eval package ships with rag (pyproject packages)

        judge = default_judge()

    def check(claim: str, quote: str, question: str = "") -> tuple[float, str | None]:
        share = overlap(claim, quote)
        if share < MIN_OVERLAP:
            return share, f"{NOT_IN_QUOTE} ({share:.0%} of its words are in the quote)"
        if judge is not None:
            v = judge.judge(claim, quote)
            if any("lexical cue" in r for r in v.reasons):
                return 0.0, f"its quote contradicts it ({v.reasons[-1]})"
        return 1.0, None

    return check, 0.5
