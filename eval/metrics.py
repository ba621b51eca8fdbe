"""Evaluation metrics as pure functions. Each docstring states the definition used."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"',
                         "‘": "'", "’": "'", "‚": "'", "‛": "'", "\u00a0": " "})


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def faithfulness(verdicts: Sequence[Any]) -> float:
    """Share of claims judged supported: ``#supported / #claims``.

    ``verdicts`` holds booleans or objects/dicts with a ``supported`` field.
    No claims gives 1.0 (nothing unfaithful was said).
    """
    if not verdicts:
        return 1.0
    flags = [bool(v) if isinstance(v, bool) else bool(_get(v, "supported")) for v in verdicts]
    return sum(flags) / len(flags)


def citation_validity(citations: Sequence[Any], doc_texts: Mapping[str, str]) -> float:
    """Share of citations whose quote is exactly ``doc_texts[doc_id][start:end]``.

    A citation is a dict or object with ``doc_id``, ``start``, ``end`` and
    ``quote``. An unknown ``doc_id`` or out-of-range offsets count as invalid.
    No citations gives 1.0 (vacuously valid; report the count alongside).
    """
    if not citations:
        return 1.0
    valid = 0
    for c in citations:
        text = doc_texts.get(_get(c, "doc_id"))
        start, end, quote = _get(c, "start"), _get(c, "end"), _get(c, "quote")
        if text is None or not isinstance(start, int) or not isinstance(end, int) or quote is None:
            continue
        if 0 <= start <= end <= len(text) and text[start:end] == quote:
            valid += 1
    return valid / len(citations)


def normalize_phrase(text: str) -> str:
    """Lower case, curly quotes made straight, non-breaking spaces and runs of whitespace made one space."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().lower()


def contains_expected(answer: str, expected_phrases: Sequence[str] | str) -> bool:
    """True when every expected phrase occurs in the answer, after :func:`normalize_phrase` on both.

    An empty list of phrases gives True.
    """
    if isinstance(expected_phrases, str):
        expected_phrases = [expected_phrases]
    norm = normalize_phrase(answer)
    return all(normalize_phrase(p) in norm for p in expected_phrases)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation removed, articles (a/an/the) removed, whitespace collapsed."""
    text = text.translate(_QUOTES).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1: harmonic mean of token precision and recall over the multiset of normalised tokens.

    Both empty gives 1.0; exactly one empty gives 0.0.
    """
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def short_answer(answer: Any) -> str:
    """The answer's short span: the ``highlight`` text of its first supporting citation when there is one,
    else the answer text with its ``[n]`` markers removed (a whole-sentence answer).

    ``answer`` is an Answer or its dict; citations are dicts or objects with ``role`` and ``highlight``.
    """
    for c in _get(answer, "citations", None) or []:
        if _get(c, "role", "support") == "support":
            h = _get(c, "highlight")
            if h:
                return _get(h, "text", "")
            break
    return re.sub(r"\s*\[\d+\]", "", _get(answer, "answer", "") or "").strip()


def short_answer_f1(answer: Any, gold: str | Sequence[str]) -> float:
    """SQuAD token F1 (:func:`token_f1`) of :func:`short_answer` against the gold answer(s), the best over
    several golds. An abstained answer scores 0.0.
    """
    if _get(answer, "abstained", False):
        return 0.0
    golds = [gold] if isinstance(gold, str) else list(gold)
    pred = short_answer(answer)
    return max((token_f1(pred, g) for g in golds), default=0.0)


def abstention_precision_recall(predicted: Sequence[bool], truth: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of abstaining, abstention being the positive class.

    precision = #(abstained and should have) / #abstained (1.0 when it never abstained);
    recall = #(abstained and should have) / #should have abstained (1.0 when none should have).
    """
    if len(predicted) != len(truth):
        raise ValueError("predicted and truth differ in length")
    tp = sum(1 for p, t in zip(predicted, truth) if p and t)
    n_pred, n_true = sum(map(bool, predicted)), sum(map(bool, truth))
    return (tp / n_pred if n_pred else 1.0), (tp / n_true if n_true else 1.0)


def recall_at_k(ranked_ids: Sequence[Any], gold_ids: Sequence[Any] | Any, k: int) -> float:
    """Share of the gold ids found among the first ``k`` ranked ids (duplicates in the ranking count once).

    A single gold id may be passed bare. No gold ids gives 0.0.
    """
    gold = _as_set(gold_ids)
    if not gold:
        return 0.0
    return len(gold & set(list(ranked_ids)[:k])) / len(gold)


def mrr(ranked_ids: Sequence[Any], gold_ids: Sequence[Any] | Any, k: int | None = None) -> float:
    """Reciprocal rank (1-based) of the first gold id within the first ``k`` (all when None); 0.0 if none.

    Average this over queries for the mean reciprocal rank.
    """
    gold = _as_set(gold_ids)
    for rank, doc in enumerate(list(ranked_ids)[: k if k is not None else None], start=1):
        if doc in gold:
            return 1.0 / rank
    return 0.0


def _as_set(ids: Any) -> set:
    if isinstance(ids, (str, bytes, int)) or not isinstance(ids, (Sequence, set, frozenset)):
        return {ids}
    return set(ids)


def balanced_accuracy(labels: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Mean over the classes present in ``labels`` of the recall on that class.

    For two classes: (true-positive rate + true-negative rate) / 2; 0.5 is chance
    whatever the class balance.
    """
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")
    if not labels:
        raise ValueError("no labels")
    classes = sorted(set(labels), key=repr)
    recalls = []
    for c in classes:
        idx = [i for i, lab in enumerate(labels) if lab == c]
        recalls.append(sum(1 for i in idx if predictions[i] == c) / len(idx))
    return sum(recalls) / len(recalls)


def roc_auc(labels: Sequence[Any], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative,
    ties counting one half (Mann-Whitney U / (n_pos * n_neg), with average ranks for ties).

    ``labels`` are truthy for positives. Raises when one class is missing.
    """
    if len(labels) != len(scores):
        raise ValueError("labels and scores differ in length")
    pos = [bool(x) for x in labels]
    n_pos = sum(pos)
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # 1-based average rank of the tie group
        for t in range(i, j + 1):
            ranks[order[t]] = avg
        i = j + 1
    rank_sum = sum(r for r, p in zip(ranks, pos) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def best_threshold(labels: Sequence[Any], scores: Sequence[float]) -> tuple[float, float]:
    """The threshold t maximising the balanced accuracy of ``score >= t`` as positive; returns (t, accuracy)."""
    pos = [bool(x) for x in labels]
    n_pos = sum(pos)
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("best_threshold needs both positive and negative labels")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    best = (float("inf"), 0.5)  # predict nothing positive
    tp = fp = 0
    for rank, i in enumerate(order):
        tp += pos[i]
        fp += not pos[i]
        if rank + 1 < len(order) and scores[order[rank + 1]] == scores[i]:
            continue  # a threshold cannot split tied scores
        acc = (tp / n_pos + (n_neg - fp) / n_neg) / 2
        if acc > best[1]:
            best = (scores[i], acc)
    return best
