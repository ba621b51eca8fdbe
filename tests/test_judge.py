"""The offline faithfulness judge (the packaged MiniLM cross-encoder) on hand-made claims whose right
verdict is known, output aggregation, and the LLM judge against scripted models."""

from __future__ import annotations

import math

import pytest

from conftest import JUDGE_EVIDENCE as EVIDENCE
from rag.judge import judges
from rag.judge.judges import CrossEncoderJudge, Judge, Verdict, aggregate, judge_output


@pytest.fixture(scope="module")
def judge() -> CrossEncoderJudge:
    return judges.default_judge()


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
    assert v.supported, (claim, v.score)
    assert v.score >= judge.model["threshold"]


@pytest.mark.parametrize("claim", PARAPHRASED)
def test_light_paraphrases_are_supported(judge, claim):
    v = judge.judge(claim, EVIDENCE)
    assert v.supported, (claim, v.score)


SWAPS = ("number swapped", "vote swapped", "date swapped", "name swapped")


@pytest.mark.parametrize("kind", sorted(k for k in CONTRADICTED if k not in SWAPS))
def test_contradictions_in_the_documents_own_words_are_unsupported(judge, kind):
    v = judge.judge(CONTRADICTED[kind], EVIDENCE)
    assert not v.supported, (kind, v.score)


@pytest.mark.xfail(strict=True, reason="known defect: swapped names, numbers and dates pass; the model misses them "
                   "and the lexical swap cue cost about 30 points of HaluEval accuracy (rag/data/judge-minilm.md)")
@pytest.mark.parametrize("kind", SWAPS)
def test_swapped_names_numbers_and_dates_are_unsupported(judge, kind):
    v = judge.judge(CONTRADICTED[kind], EVIDENCE)
    assert not v.supported, (kind, v.score)


def test_contradiction_scores_below_its_faithful_twin(judge):
    for faithful, unfaithful in [
        ("Mayor Helen Park said the decision was irreversible.", "Mayor Helen Park said the decision was reversible."),
        ("Officials did not say when construction of the bridge would begin.",
         "Officials said when construction of the bridge would begin."),
    ]:
        assert judge.judge(faithful, EVIDENCE).score > judge.judge(unfaithful, EVIDENCE).score + 0.2


def test_verdict_carries_score_and_the_evidence_it_read(judge):
    v = judge.judge("The budget sets aside 40 million dollars for schools.", EVIDENCE)
    assert isinstance(v, Verdict) and 0.0 <= v.score <= 1.0
    assert v.evidence == EVIDENCE  # short evidence is read whole
    assert "threshold" in v.reasons[0]
    long_evidence = " ".join(f"Filler sentence number {i} talks about the weather in town." for i in range(60))
    v = judge.judge("Mayor Helen Park said the decision was irreversible.",
                    long_evidence + " Mayor Helen Park said the decision was irreversible. " + long_evidence)
    assert "Mayor Helen Park said the decision was irreversible." in v.evidence
    assert len(v.evidence) < 1200 and v.supported


def test_evidence_may_be_a_list_of_passages(judge):
    passages = ["Nothing relevant is here.", "Mayor Helen Park said the decision was irreversible."]
    assert judge.judge("Mayor Helen Park said the decision was irreversible.", passages).supported
    assert not judge.judge("Mayor Helen Park said the decision was reversible.", passages).supported


@pytest.mark.xfail(strict=True, reason="known defect: the model scores an unrelated claim 0.74 against short "
                   "evidence (HaluEval never pairs evidence with an unrelated claim); see rag/data/judge-minilm.md")
def test_unrelated_claim_is_unsupported(judge):
    v = judge.judge("Scientists discovered water on a distant exoplanet orbiting a red dwarf.", EVIDENCE)
    assert not v.supported
    assert v.score < 0.2


def test_a_contradicted_claim_sinks_the_whole_output(judge):
    good = "The city council approved the new budget on Tuesday."
    bad = "Mayor Helen Park said the decision was reversible."
    long_good = " ".join([good] * 10)  # over the claim budget: split into several claims
    score, verdicts = judge_output(EVIDENCE, f"{long_good} {bad}", judge)
    assert len(verdicts) >= 2 and verdicts[-1].claim.endswith(bad)
    assert score == pytest.approx(min(v.score for v in verdicts))
    assert score < judge.model["threshold"]
    only_good, _ = judge_output(EVIDENCE, good, judge)
    assert only_good >= judge.model["threshold"]
    assert judge_output(EVIDENCE, "", judge) == (1.0, [])


def test_short_outputs_are_judged_whole_and_long_ones_in_sentence_groups(judge):
    two = "The city council approved the new budget on Tuesday. The budget sets aside 40 million dollars."
    assert judge.split(two) == [two]
    many = " ".join(f"Sentence {i} says that the council met again to talk about the budget." for i in range(12))
    claims = judge.split(many)
    assert len(claims) > 1 and " ".join(claims) == many


def test_aggregate_blends_weakest_and_mean_on_the_logit_scale():
    def logit(p):
        return math.log(p / (1 - p))

    scores, sizes = [0.9, 0.5, 0.2], [2.0, 1.0, 1.0]
    assert aggregate(scores, sizes, 1.0) == pytest.approx(0.2)
    mean = (2 * logit(0.9) + logit(0.5) + logit(0.2)) / 4
    assert logit(aggregate(scores, sizes, 0.0)) == pytest.approx(mean)
    assert logit(aggregate(scores, sizes, 0.5)) == pytest.approx(0.5 * logit(0.2) + 0.5 * mean)
    assert aggregate([], [], 0.5) == 1.0


def test_default_judge_satisfies_the_protocol(judge):
    assert isinstance(judge, Judge)
    assert judge.name == "cross-encoder"
    assert 0.0 < judge.model["threshold"] < 1.0


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


def test_paraphrases_rank_above_contradictions_made_of_the_quotes_own_words(judge):
    """The defect issue 21 measured: the first judge ranked contradictions built from the quote's words above
    faithful paraphrases in new words (AUC 0.27 between the two kinds on the seed pairs). The judge trained
    with the Qwen pairs ranks them the right way round (0.66); swaps remain its weak kind (above)."""
    import json

    from conftest import ROOT
    from eval.metrics import roc_auc

    rows = [json.loads(x) for x in (ROOT / "eval" / "data" / "seed_judge_pairs.jsonl").read_text().splitlines() if x.strip()]
    para = [judge_output(r["context"], r["output"], judge)[0] for r in rows if r["kind"] == "paraphrase"]
    contra = [judge_output(r["context"], r["output"], judge)[0] for r in rows
              if r["kind"] in ("negation_flip", "antonym", "swapped_entity", "swapped_number_or_date")]
    assert len(para) == 12 and len(contra) == 21
    assert roc_auc([1] * len(para) + [0] * len(contra), para + contra) >= 0.6
    assert sum(s >= judge.model["threshold"] for s in para) >= 10, "paraphrases in new words are supported"
