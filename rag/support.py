"""Does a claim follow from its quote? The support judge used to check generated claims.

``default_support()`` gives ``(score_fn, threshold)``: ``score_fn(claim, quote)`` is the
probability that ``quote`` supports ``claim``. It is the same judge ``rag eval`` uses by
default (``eval.judges.default_judge()``: the distilled MiniLM cross-encoder of
``rag.cross_encoder``, a claim copied from its quote supported by definition, negation /
antonym / swapped-name cues capping a claim below the threshold), so an answer is held to
the standard it is measured by. Without the judge's weights (``rag/data/judge-minilm.onnx``)
it is ``(None, 0.5)`` and generated claims are checked only for citing a sentence of the
evidence.
"""

from __future__ import annotations


def default_support():
    from .cross_encoder import DATA_DIR, JUDGE_MODEL

    if not (DATA_DIR / f"{JUDGE_MODEL}.onnx").is_file():
        return None, 0.5
    from eval.judges import default_judge  # the eval package ships with rag (pyproject packages)

    judge = default_judge()

    def score(claim: str, quote: str) -> float:
        return float(judge.judge(claim, quote).score)

    return score, float(judge.model["threshold"])
