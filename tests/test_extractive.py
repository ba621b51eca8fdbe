"""Pure parts of the extractive answerer: question kinds, short answers, overview intent and centrality,
and the short-answer metric."""

import numpy as np
import pytest

from eval.metrics import short_answer, short_answer_f1
from rag.answer.extractive.question_kinds import answer_type, short_answer as span_of
from rag.answer.extractive.overview import central_sentences, is_overview, overview_topic
from rag.index.sentences import Span


@pytest.mark.parametrize("question,kind", [
    ("Who interviewed Zelenskyy?", "who"), ("Which news outlet interviewed Zelenskyy?", "org"),
    ("Which Russian leader is mentioned?", "person"), ("When was the summit?", "date"),
    ("What month was the summit in?", "month"), ("In what year was the settlement reached?", "year"),
    ("How many subscribers did AOL lose?", "number"), ("By how much did profits rise?", "number"),
    ("In which city was the play due to open?", "city"), ("Where will the championships be held?", "place"),
    ("What did Zelenskyy say about Crimea?", None), ("Why has the bid been difficult?", None)])
def test_answer_type(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize("question,sentence,short", [
    ("Which news outlet interviewed Zelenskyy?",
     "In an interview with Sky News, Zelenskyy emphasized that NATO membership could end the war.", "Sky News"),
    ("Which Russian leader is mentioned?",
     "Russian President Vladimir Putin has repeatedly stated that membership is a red line.", "Vladimir Putin"),
    ("In which month was the summit held?", "At NATO’s summit in July, member nations reiterated it.", "July"),
    ("How many subscribers did AOL lose?", "It lost 464,000 subscribers in the fourth quarter.",
     "464,000 subscribers"),
    ("Who announced the proposals?", "Pay is to rise as part of proposals announced by the Trade and Industry "
                                     "Secretary Patricia Hewitt.", "Patricia Hewitt")])
def test_short_answer_span(question, sentence, short):
    span = span_of(question, sentence)
    assert span is not None and sentence[span[0]:span[1]] == short


def test_no_short_answer_without_a_kind_or_a_fit():
    assert span_of("What did Zelenskyy say about Crimea?", "Zelenskyy spoke about Crimea.") is None
    assert span_of("When was the summit?", "The summit reiterated the commitment.") is None


@pytest.mark.parametrize("question", ["Summarize the article.", "summarise this", "What is this article about?",
                                      "Give me the main points of the document.", "key takeaways?", "TL;DR",
                                      "Give me an overview of the text", "What's this about?"])
def test_overview_intent(question):
    assert is_overview(question)


@pytest.mark.parametrize("question", ["Which article could be invoked?", "What is Article 5 about?",
                                      "What did Zelenskyy say about the article?", "Who interviewed Zelenskyy?"])
def test_not_overview(question):
    assert not is_overview(question)


def test_overview_topic():
    assert overview_topic("Summarize the article.") == []
    assert overview_topic("Summarize the article about the tobacco case") == ["tobacco", "case"]


def test_central_sentences_lead_plus_most_central_in_order():
    spans = [Span(i * 10, i * 10 + 9) for i in range(6)]
    v = np.array([[1, 0, 0], [0, 1, 0], [0.1, 1, 0.1], [0, 0, 1], [0.1, 0.9, 0.2], [0, 0.3, 0.95]], dtype=float)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    picked = central_sentences(spans, v, k=3)
    assert picked[0] == 0 and picked == sorted(picked) and len(picked) == 3
    assert central_sentences(spans, v, k=3, skip_first=True)[0] == 1
    assert central_sentences(spans[:2], v[:2], k=4) == [0, 1]


def test_short_answer_metric():
    answer = {"answer": "In an interview with Sky News, he said so. [1]", "abstained": False,
              "citations": [{"role": "support", "highlight": {"start": 21, "end": 29, "text": "Sky News"}}]}
    assert short_answer(answer) == "Sky News"
    assert short_answer_f1(answer, "Sky News") == 1.0
    whole = {"answer": "In an interview with Sky News, he said so. [1]", "abstained": False, "citations": []}
    assert short_answer(whole) == "In an interview with Sky News, he said so."
    assert 0 < short_answer_f1(whole, "Sky News") < 1
    assert short_answer_f1({**answer, "abstained": True}, "Sky News") == 0.0


def test_a_learned_scorer_plugs_in_behind_the_scorer_interface():
    from rag.answer.extractive.scoring import Candidate, CrossEncoderScorer, FeatureScorer, SentenceEmbeddings, choose

    class Stub:  # stands in for rag.judge.cross_encoder.sentence_scorer(): P(answer) per (question, sentence pair)
        threshold = 0.5

        def predict(self, pairs):
            return np.array([0.9 if "Sky News" in b else 0.1 for _, b in pairs], dtype=np.float32)

    class Vectors(SentenceEmbeddings):
        def get(self, cands):
            return np.ones((len(cands), 3), dtype=np.float32) / np.sqrt(3)

    features = FeatureScorer(lambda q: np.ones(3, dtype=np.float32) / np.sqrt(3), lambda: {}, Vectors())
    scorer = CrossEncoderScorer(Stub(), features, threshold=0.5)
    texts = ["Zelenskyy spoke about NATO.", "In an interview with Sky News, Zelenskyy spoke.", "Putin objects."]
    cands = [Candidate("d", "h", "s", "t", i * 50, i * 50 + len(x), x, 0, features={"rank": 1.0}, context="")
             for i, x in enumerate(texts)]
    ranked = scorer.rank("Who interviewed Zelenskyy?", cands)
    assert "Sky News" in ranked[0].text and ranked[0].prob == pytest.approx(0.9)
    assert scorer.answerable("Who interviewed Zelenskyy?", ranked) == pytest.approx(0.9)
    assert choose(ranked, scorer=scorer, question="Who interviewed Zelenskyy?")[0] is ranked[0]
    low = CrossEncoderScorer(Stub(), features, threshold=0.95)
    assert choose(low.rank("Who interviewed Zelenskyy?", cands), scorer=low, question="Who interviewed Zelenskyy?") == []
