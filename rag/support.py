"""Does a claim follow from its quote? The support judge used to check generated claims.

``default_support()`` gives ``(score_fn, threshold)``: ``score_fn(claim, quote)`` is the
probability that ``quote`` supports ``claim``, from the distilled cross-encoder judge
(``rag.cross_encoder.support_score``, the same model ``rag eval`` judges with). Without its
weights (``rag/data/judge-minilm.onnx``) it is ``(None, 0.5)`` and generated claims are
checked only for citing a sentence of the evidence.
"""

from __future__ import annotations


def default_support():
    from .cross_encoder import JUDGE_MODEL, DATA_DIR, support_score, support_threshold

    if not (DATA_DIR / f"{JUDGE_MODEL}.onnx").is_file():
        return None, 0.5
    return support_score, support_threshold()
