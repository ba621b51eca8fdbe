"""The offline faithfulness judge on hand-made claims whose right verdict is known,
its contradiction cues one by one, and the logistic fit on synthetic data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval import judges
from eval.judges import (
    CALIBRATION_PATH,
    Judge,
    OfflineJudge,
    Verdict,
    aggregate,
    aligned_clauses,
    antonym_flips,
    fit_logistic,
    fit_multi_instance,
    judge_output,
    names,
    negated,
    negation_flips,
    quantities,
    words_lower,
)

EVIDENCE = (
    "The city council approved the new budget on Tuesday by a vote of 7 to 2. "
    "Mayor Helen Park said the decision was irreversible. "
    "Officials did not say when construction of the bridge would begin. "
    "A ceasefire between the two rebel groups was agreed in March after weeks of talks. "
    "The budget sets aside 40 million dollars for schools."
)


@pytest.fixture(scope="module")
def judge() -> OfflineJudge:
    return OfflineJudge()


# ------------------------------------------------------------------ verdicts on hand-made claims

SUPPORTED = [
    "The city council approved the new budget on Tuesday.",
    "Officials did not say when construction of the bridge would begin.",
    "The budget sets aside 40 million dollars for schools.",
]
PARAPHRASED = [
    "A truce between the two rebel groups was agreed in March after weeks of talks.",  # truce for ceasefire
    "On Tuesday the council passed the new budget by a vote of 7 to 2.",  # passed for approved, reordered
]
CONTRADICTED = {
    "negation dropped": "Officials said when construction of the bridge would begin.",
    "negation added": "The city council did not approve the new budget on Tuesday.",
    "number swapped": "The budget sets aside 60 million dollars for schools.",
    "vote swapped": "The city council approved the new budget on Tuesday by a vote of 8 to 1.",
    "date swapped": "The city council approved the new budget on Friday by a vote of 7 to 2.",
    "antonym prefix": "Mayor Helen Park said the decision was reversible.",
    "name swapped": "Mayor John Smith said the decision was irreversible.",
}


@pytest.mark.parametrize("claim", SUPPORTED)
def test_verbatim_claims_are_supported(judge, claim):
    v = judge.judge(claim, EVIDENCE)
    assert v.supported, (claim, v.score, v.reasons)
    assert v.score >= judge.model["threshold"]


@pytest.mark.parametrize("claim", PARAPHRASED)
def test_light_paraphrases_are_supported(judge, claim):
    v = judge.judge(claim, EVIDENCE)
    assert v.supported, (claim, v.score, v.reasons)


@pytest.mark.parametrize("kind", sorted(CONTRADICTED))
def test_contradictions_in_the_documents_own_words_are_unsupported(judge, kind):
    v = judge.judge(CONTRADICTED[kind], EVIDENCE)
    assert not v.supported, (kind, v.score, v.reasons)


def test_contradiction_scores_below_its_faithful_twin(judge):
    for faithful, unfaithful in [
        ("Mayor Helen Park said the decision was irreversible.", "Mayor Helen Park said the decision was reversible."),
        ("The budget sets aside 40 million dollars for schools.",
         "The budget sets aside 60 million dollars for schools."),
        ("Officials did not say when construction of the bridge would begin.",
         "Officials said when construction of the bridge would begin."),
    ]:
        assert judge.judge(faithful, EVIDENCE).score > judge.judge(unfaithful, EVIDENCE).score + 0.2


def test_verdict_names_best_sentence_and_reasons(judge):
    v = judge.judge("Mayor Helen Park said the decision was reversible.", EVIDENCE)
    assert v.evidence == "Mayor Helen Park said the decision was irreversible."
    assert any("'reversible'" in r and "'irreversible'" in r for r in v.reasons), v.reasons
    v = judge.judge("Officials said when construction of the bridge would begin.", EVIDENCE)
    assert v.evidence.startswith("Officials did not say")
    assert any("negation" in r for r in v.reasons), v.reasons
    v = judge.judge("The budget sets aside 60 million dollars for schools.", EVIDENCE)
    assert any("60" in r for r in v.reasons), v.reasons


def test_evidence_may_be_a_list_of_passages(judge):
    passages = ["Nothing relevant is here.", "Mayor Helen Park said the decision was irreversible."]
    assert judge.judge("Mayor Helen Park said the decision was irreversible.", passages).supported
    assert not judge.judge("Mayor Helen Park said the decision was reversible.", passages).supported


def test_unrelated_claim_is_unsupported(judge):
    v = judge.judge("Scientists discovered water on a distant exoplanet orbiting a red dwarf.", EVIDENCE)
    assert not v.supported
    assert v.score < 0.2


def test_a_contradicted_claim_sinks_the_whole_output(judge):
    good = "The city council approved the new budget on Tuesday."
    bad = "Mayor Helen Park said the decision was reversible."
    score, verdicts = judge_output(EVIDENCE, f"{good} {bad}", judge)
    assert [v.claim for v in verdicts] == [good, bad]
    assert verdicts[0].supported and not verdicts[1].supported
    assert score == verdicts[1].score  # the antonym flip caps the output at that claim's score
    assert score < judge.model["threshold"]
    only_good, _ = judge_output(EVIDENCE, good, judge)
    assert only_good >= judge.model["threshold"]
    assert judge_output(EVIDENCE, "", judge) == (1.0, [])


def test_aggregate_blends_weakest_and_mean_on_the_logit_scale():
    def logit(p):
        return math.log(p / (1 - p))

    scores, sizes = [0.9, 0.5, 0.2], [2.0, 1.0, 1.0]
    assert aggregate(scores, sizes, 1.0) == pytest.approx(0.2)
    mean = (2 * logit(0.9) + logit(0.5) + logit(0.2)) / 4
    assert logit(aggregate(scores, sizes, 0.0)) == pytest.approx(mean)
    assert logit(aggregate(scores, sizes, 0.5)) == pytest.approx(0.5 * logit(0.2) + 0.5 * mean)
    # a claim flagged as contradicted caps the result whatever the blend
    assert aggregate([0.99, 0.99, 0.3], [1, 1, 1], 0.0, [False, False, True]) == pytest.approx(0.3)
    assert aggregate([], [], 0.5) == 1.0


def test_offline_judge_satisfies_the_protocol(judge):
    assert isinstance(judge, Judge)
    assert judge.name == "offline"
    v = judge.judge("The budget sets aside 40 million dollars for schools.", EVIDENCE)
    assert isinstance(v, Verdict) and 0.0 <= v.score <= 1.0
    assert set(v.features) == set(judges.FEATURES)


# ------------------------------------------------------------------ the cues one by one


def test_quantities_normalise_digits_words_and_dates():
    assert quantities("About 1,000 people, 22% of them, came on Friday in March.") == {"1000", "22", "friday", "march"}
    assert quantities("three of the twelve") == {"3", "12"}
    assert "may" not in quantities("He may resign.")
    assert quantities("It rose 2.50 points") == {"2.5"}


def test_names_skip_the_first_word_and_strip_possessives():
    assert names("Officials said NATO’s plan angered Putin and the Kremlin.") == {"nato", "putin", "kremlin"}
    assert names("Ukraine's army") == set()  # first word: capitalised anyway
    assert "putin" in names("He met Putin's envoy")


def test_negation_detection():
    assert negated("He did not go.") and negated("She can't come.") and negated("They never said so.")
    assert negated("He didn’t go.")
    assert not negated("He went home and notes were taken.")


def test_negation_flips_point_at_the_negated_word():
    assert negation_flips("The proposal does mean Ukraine would cede land.",
                          "The proposal does not mean Ukraine would cede land.") == [("evidence", "mean")]
    assert negation_flips("Russia no longer demands recognition.",
                          "Russia continues to demand recognition.") == [("claim", "demand")]
    # both negated, 'not only' and 'No. 1' are no flips; a negation elsewhere in the sentence is none either
    assert negation_flips("He did not go home.", "He didn't go home.") == []
    assert negation_flips("The report blames not only the army.", "The report blames the army.") == []
    assert negation_flips("The song was No. 1 in 1972.", "The song hit No. 1 in 1972.") == []
    assert negation_flips("The student is no longer on campus.",
                          "The student was no longer on campus and will face review.") == []


def test_antonym_flips_prefix_and_list():
    assert ("reversible", "irreversible") in antonym_flips("a reversible path", words_lower("an irreversible path"))
    assert ("likely", "unlikely") in antonym_flips("likely to win", words_lower("unlikely to win"))
    assert ("legal", "illegal") in antonym_flips("legal move", words_lower("illegal move"))
    assert antonym_flips("prices rose", words_lower("prices fell")) == [("rose", "fell")]
    # the same word on both sides is no flip, and unrelated words are none
    assert antonym_flips("an irreversible path", words_lower("an irreversible and reversible path")) == []
    assert antonym_flips("the cat sat", words_lower("the dog ran")) == []


def test_clauses_align_on_shared_words():
    pairs = aligned_clauses(
        "Member nations reiterated their commitment to the path, and a concrete timeline was provided.",
        "Member nations reiterated their commitment to the path to membership, though no concrete timeline "
        "was provided.")
    assert len(pairs) == 2
    (c1, e1), (c2, e2) = pairs
    assert c1.startswith("Member nations") and e1.startswith("Member nations")
    assert "timeline" in c2 and "no concrete timeline" in e2


# ------------------------------------------------------------------ fitting


def test_fit_logistic_recovers_the_direction_of_known_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3))
    true_w, true_b = np.array([2.0, -1.0, 0.0]), 0.5
    y = (rng.random(4000) < 1 / (1 + np.exp(-(X @ true_w + true_b)))).astype(float)
    w, b = fit_logistic(X, y, l2=0.1)
    assert w[0] == pytest.approx(2.0, abs=0.25)
    assert w[1] == pytest.approx(-1.0, abs=0.2)
    assert abs(w[2]) < 0.15
    assert b == pytest.approx(0.5, abs=0.2)


def test_multi_instance_fit_learns_from_the_one_bad_claim():
    rng = np.random.default_rng(1)
    outputs, labels = [], []
    for i in range(400):
        claims = rng.normal(0, 0.3, size=(3, 2))
        claims[:, 0] += 1.0  # all claims of good outputs: feature 0 high
        if i % 2:  # a bad output has exactly one bad claim: feature 0 low
            claims[rng.integers(3), 0] -= 2.0
        outputs.append(claims)
        labels.append(0 if i % 2 else 1)
    w, b = fit_multi_instance(outputs, labels)
    scores = [min(o @ w + b) for o in outputs]
    good = [s for s, lab in zip(scores, labels) if lab]
    bad = [s for s, lab in zip(scores, labels) if not lab]
    assert w[0] > 0 and abs(w[1]) < w[0] / 3
    assert np.mean([g > max(bad) for g in good]) > 0.9


def test_calibration_file_documents_its_fit():
    model = json.loads(CALIBRATION_PATH.read_text())
    assert model["features"] == judges.FEATURES
    assert set(model["weights"]) == set(judges.FEATURES)
    assert 0.0 < model["threshold"] < 1.0
    assert "date" in model and "data" in model
    # fitted on rows 0-4999 only: reserved rows are never named as used
    for used in model["data"].values():
        lo, hi = (int(x) for x in used.split("rows ")[1].split(" ")[0].split("-"))
        assert 0 <= lo <= hi < 5000
    # meaning-bearing directions: similarity can only help, unseen words and contradiction cues only hurt
    assert model["weights"]["dense"] >= 0
    for feature in judges.FEATURES:
        if feature != "dense":
            assert model["weights"][feature] <= 0, feature
    for cue in ("novel_count", "negation", "antonym"):
        assert model["weights"][cue] < 0, cue


# ------------------------------------------------------------------ the LLM judge (fake model, no server)


class FakeLLM:
    def __init__(self, answer: str):
        self.answer = answer
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answer


def test_llm_judge_accepts_a_verbatim_quote():
    fake = FakeLLM('Sure: {"verdict": "supported", "quote": "Mayor Helen Park said the decision was '
                   'irreversible.", "reason": "stated"}')
    judge = judges.LLMJudge(fake)
    v = judge.judge("The mayor called the decision irreversible.", EVIDENCE)
    assert v.supported and v.score == 0.9
    assert v.evidence == "Mayor Helen Park said the decision was irreversible."
    assert "The mayor called the decision irreversible." in fake.prompts[0] and EVIDENCE in fake.prompts[0]
    assert isinstance(judge, Judge)


def test_llm_judge_rejects_an_invented_quote_or_unreadable_answer():
    invented = FakeLLM('{"verdict": "supported", "quote": "The mayor resigned.", "reason": "x"}')
    v = judges.LLMJudge(invented).judge("The mayor resigned.", EVIDENCE)
    assert not v.supported and any("not in the evidence" in r for r in v.reasons)
    garbage = FakeLLM("I think so!")
    v = judges.LLMJudge(garbage).judge("The mayor resigned.", EVIDENCE)
    assert not v.supported and v.score == 0.0
    said_no = FakeLLM('{"verdict": "unsupported", "quote": "", "reason": "not stated"}')
    v = judges.LLMJudge(said_no).judge("The mayor resigned.", EVIDENCE)
    assert not v.supported and v.reasons == ["not stated"]


def test_llm_judge_fails_closed_when_the_model_errors():
    def broken(prompt):
        raise ConnectionError("refused")

    v = judges.LLMJudge(broken).judge("The mayor resigned.", EVIDENCE)
    assert not v.supported and "ConnectionError" in v.reasons[0]


def test_minilm_similarity_feature_when_embeddings_are_on():
    judge = OfflineJudge(use_embeddings=True)
    verbatim = judge.judge("Mayor Helen Park said the decision was irreversible.", EVIDENCE)
    reworded = judge.judge("The ceasefire between the rebel factions came after weeks of negotiations.", EVIDENCE)
    unrelated = judge.judge("Scientists discovered water on a distant exoplanet.", EVIDENCE)
    assert verbatim.features["dense"] > 0.95
    assert reworded.features["dense"] > unrelated.features["dense"] + 0.2
    assert any("similarity" in r for r in verbatim.reasons)
    assert not OfflineJudge().uses_embeddings or OfflineJudge().model["weights"]["dense"] != 0


class ScriptedLLM:
    """Answers from a script, one per call (the last repeats)."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers[min(len(self.prompts), len(self.answers)) - 1]


def test_llm_judge_asks_again_after_malformed_output():
    llm = ScriptedLLM("Yes, I think it is supported.",
                      '{"verdict": "supported", "quote": "Mayor Helen Park said the decision was irreversible."}')
    v = judges.LLMJudge(llm).judge("The mayor called the decision irreversible.", EVIDENCE)
    assert v.supported and len(llm.prompts) == 2
    assert judges.RETRY_NOTE.strip() in llm.prompts[1]
    stubborn = ScriptedLLM('{"verdict": "maybe"}')
    v = judges.LLMJudge(stubborn, attempts=3).judge("The mayor resigned.", EVIDENCE)
    assert not v.supported and len(stubborn.prompts) == 3 and "after 3 attempts" in v.reasons[0]


def test_llm_judge_decomposes_an_output_into_claims():
    llm = ScriptedLLM('{"claims": ["The council approved the budget.", "The budget was rejected by the mayor."]}',
                      '{"verdict": "supported", "quote": "The city council approved the new budget on Tuesday by a '
                      'vote of 7 to 2."}',
                      '{"verdict": "unsupported", "quote": "", "reason": "not stated"}')
    judge = judges.LLMJudge(llm, decompose=True)
    score, verdicts = judge_output(EVIDENCE, "The council approved the budget, which the mayor then rejected.", judge)
    assert [v.claim for v in verdicts] == ["The council approved the budget.", "The budget was rejected by the mayor."]
    assert [v.supported for v in verdicts] == [True, False] and score < judge.model["threshold"]
    # an unusable decomposition falls back to the sentences
    fallback = judges.LLMJudge(ScriptedLLM('{"claims": []}', '{"verdict": "unsupported"}'), decompose=True)
    assert fallback.split("The council approved the budget. The mayor rejected it.") == [
        "The council approved the budget.", "The mayor rejected it."]


def test_near_synonyms_are_rewording_but_new_names_are_not():
    judge = OfflineJudge(use_embeddings=True)
    evidence = "Investors were cautious about the merger. The firm hired Anna Berg as its new chief."
    reworded = judge.judge("Investors were wary of the merger.", evidence)
    assert reworded.features["unexplained"] < reworded.features["novel_count"]
    assert any("wary ~ cautious" in r for r in reworded.reasons)
    renamed = judge.judge("The firm hired Maria Lund as its new chief.", evidence)
    assert renamed.features["unexplained"] == renamed.features["novel_count"] > 0
    unrelated = judge.judge("Investors were furious about the merger.", evidence)
    assert unrelated.features["unexplained"] == unrelated.features["novel_count"] > 0


def test_antonyms_match_through_inflection():
    v = OfflineJudge().judge("Profits were buoyed by one-off losses.", "Profits were buoyed by one-off gains.")
    assert v.features["antonym"] > 0 and not v.supported


def test_acronyms_and_hyphenated_names_of_the_evidence_are_not_new_names():
    evidence = ("The Food and Drug Administration recalled the product. Somalia-based Al-Shabaab claimed the "
                "attack. Australian Prime Minister Tony Abbott spoke.")
    judge = OfflineJudge()
    for claim in ("The FDA recalled the product.", "Al-Shabaab claimed the attack.", "The Australian PM spoke."):
        assert judge.judge(claim, evidence).features["novel_names"] == 0, claim
    assert judge.judge("The CIA recalled the product.", evidence).features["novel_names"] == 1
    assert judges.quantities("One passenger fainted; one must act.") == set()
    assert judges.quantities("Five people, 12 cars, on Monday.") == {"5", "12", "monday"}
