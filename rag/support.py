"""Does a claim follow from its quote? The support judge used to check generated claims.

``default_support()`` gives ``(score_fn, threshold)``: ``score_fn(claim, quote)`` is the
probability that ``quote`` supports ``claim``. It is the distilled cross-encoder judge when
its weights are installed (``rag.judge_model``); without them it is ``None`` and claims
are checked only for verbatim quotes.
"""

from __future__ import annotations


def default_support():
    try:
        from .judge_model import SUPPORT_THRESHOLD, support_score
    except ImportError:
        return None, 0.5
    return support_score, SUPPORT_THRESHOLD
