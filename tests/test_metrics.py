"""Metrics on small hand-made cases whose right values are worked out by hand,
and the guard that keeps HaluEval's reserved rows out of tuning."""

from __future__ import annotations

import pytest

from eval import datasets
from eval.metrics import (
    abstention_precision_recall,
    balanced_accuracy,
    best_threshold,
    citation_validity,
    contains_expected,
    faithfulness,
    mrr,
    recall_at_k,
    roc_auc,
    token_f1,
)


def test_faithfulness_is_supported_over_total():
    assert faithfulness([True, False, True, True]) == 0.75
    assert faithfulness([{"supported": False}, {"supported": True}]) == 0.5
    assert faithfulness([]) == 1.0


def test_faithfulness_reads_verdict_objects():
    from rag.judge.judges import Verdict

    verdicts = [Verdict(True, 0.9), Verdict(False, 0.1), Verdict(False, 0.2)]
    assert faithfulness(verdicts) == pytest.approx(1 / 3)


def test_citation_validity_checks_exact_offsets():
    docs = {"a": "The cat sat on the mat.", "b": "Dogs bark."}
    citations = [
        {"doc_id": "a", "start": 4, "end": 7, "quote": "cat"},  # valid
        {"doc_id": "a", "start": 4, "end": 7, "quote": "Cat"},  # wrong case
        {"doc_id": "b", "start": 0, "end": 4, "quote": "Dogs"},  # valid
        {"doc_id": "c", "start": 0, "end": 4, "quote": "Dogs"},  # unknown document
        {"doc_id": "b", "start": 5, "end": 50, "quote": "bark."},  # end out of range
    ]
    assert citation_validity(citations, docs) == pytest.approx(2 / 5)
    assert citation_validity([], docs) == 1.0


def test_contains_expected_normalises_quotes_case_and_space():
    answer = "NATO’s summit  reiterated Ukraine’s\n“irreversible” path."
    assert contains_expected(answer, ["nato's summit reiterated", '"irreversible" path'])
    assert not contains_expected(answer, ["reversible path to membership"])
    assert contains_expected(answer, "UKRAINE'S")
    assert not contains_expected(answer, ["summit", "timeline"])  # every phrase must be there


def test_token_f1_squad_style():
    assert token_f1("The Eiffel Tower", "eiffel tower") == 1.0  # article and case dropped
    # pred tokens: paris france ; gold: paris -> P = 1/2, R = 1 -> F1 = 2/3
    assert token_f1("Paris, France", "Paris") == pytest.approx(2 / 3)
    assert token_f1("London", "Paris") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("a", "Paris") == 0.0  # only an article: empty after normalisation


def test_abstention_precision_recall():
    predicted = [True, True, False, False, True]
    truth = [True, False, True, False, True]
    p, r = abstention_precision_recall(predicted, truth)
    assert p == pytest.approx(2 / 3)  # 2 of 3 abstentions were right
    assert r == pytest.approx(2 / 3)  # 2 of 3 needed abstentions happened
    assert abstention_precision_recall([False, False], [False, True]) == (1.0, 0.0)
    with pytest.raises(ValueError):
        abstention_precision_recall([True], [True, False])


def test_recall_at_k_and_mrr():
    ranked = ["d3", "d1", "d7", "d2"]
    assert recall_at_k(ranked, ["d1", "d2"], 2) == 0.5
    assert recall_at_k(ranked, ["d1", "d2"], 4) == 1.0
    assert recall_at_k(ranked, "d9", 4) == 0.0
    assert mrr(ranked, ["d7"]) == pytest.approx(1 / 3)
    assert mrr(ranked, ["d7", "d1"]) == 0.5  # first gold hit decides
    assert mrr(ranked, ["d7"], k=2) == 0.0
    assert mrr(ranked, "d3") == 1.0


def test_balanced_accuracy_is_mean_recall_per_class():
    labels = [1, 1, 1, 1, 0, 0]
    preds = [1, 1, 1, 0, 0, 1]
    assert balanced_accuracy(labels, preds) == pytest.approx((3 / 4 + 1 / 2) / 2)
    # always predicting the majority class is chance, whatever the imbalance
    assert balanced_accuracy([1] * 9 + [0], [1] * 10) == 0.5


def test_roc_auc_rank_based_with_ties():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # pairs (pos, neg): (0.8,0.5)=1 (0.8,0.8)=.5 (0.4,0.5)=0 (0.4,0.8)=0 -> 1.5/4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.5, 0.4, 0.8]) == pytest.approx(0.375)
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError):
        roc_auc([1, 1], [0.2, 0.3])


def test_best_threshold_finds_the_separating_cut():
    labels = [0, 0, 1, 0, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7]
    t, acc = best_threshold(labels, scores)
    # cut at 0.6: recall 2/3 on positives, 3/3 on negatives -> 5/6 ; cut at 0.3: 3/3 and 2/3 -> 5/6 too
    assert acc == pytest.approx(5 / 6)
    assert t in (0.3, 0.6)


def test_reserved_halueval_rows_are_refused():
    with pytest.raises(datasets.ReservedRowsError):
        datasets.halueval_summarization(range(4990, 5001))
    with pytest.raises(datasets.ReservedRowsError):
        datasets.halueval_qa([5000])


def test_missing_data_package_says_make_setup(monkeypatch):
    monkeypatch.setattr(datasets, "find_spec", lambda name: None)
    with pytest.raises(datasets.DatasetMissingError, match="make setup"):
        datasets.halueval_qa(range(3))
    with pytest.raises(datasets.DatasetMissingError, match="make setup"):
        next(datasets.bbc_articles())
