"""The answer engine on the seed article: the quote invariant, abstention,
false premises, follow-ups, and citing the right one of two articles."""

import json

import pytest

from rag.assistant import Assistant, BadRequest
from rag.answer.followup import rewrite

from conftest import ROOT, SEED_ARTICLE

DEV = [json.loads(line) for line in (ROOT / "eval" / "data" / "seed_dev.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def assistant(seed_index):
    cfg, store = seed_index
    return Assistant(cfg, store)


def _check_invariant(assistant, answer):
    for c in answer.citations:
        text = assistant.store.document(c.doc_id).text
        assert text[c.start:c.end] == c.quote
        assert f"[{c.id}]" in answer.answer


@pytest.mark.parametrize("row", DEV, ids=[r["id"] for r in DEV])
def test_quote_invariant_on_every_dev_answer(assistant, row):
    answer = assistant.ask(row["question"], history=row.get("history"))
    _check_invariant(assistant, answer)
    assert answer.backend == "extractive"
    assert answer.timings_ms["retrieve"] >= 0


def _score(assistant, kind):
    rows = [r for r in DEV if r["kind"] == kind]
    good = 0
    for r in rows:
        a = assistant.ask(r["question"], history=r.get("history"))
        if kind == "unanswerable":
            good += a.abstained
        elif kind == "false_premise":
            good += a.status == "premise_contradicted" or a.answer.startswith("No.")
        else:
            good += (not a.abstained) and any(e.lower() in a.answer.lower() for e in r["expected"])
    return good / len(rows)


# Floors set just under the measured dev-set scores (bench/answer_quality.py prints the table);
# they catch regressions, the README reports the real figures.
@pytest.mark.parametrize("kind,floor", [("answerable", 0.45), ("unanswerable", 0.5),
                                        ("false_premise", 0.3), ("conversation", 0.6)])
def test_dev_set_scores_do_not_regress(assistant, kind, floor):
    assert _score(assistant, kind) >= floor


@pytest.mark.parametrize("question", ["What is the capital of Australia?",
                                      "Who won the 1998 football world cup?",
                                      "How do I bake sourdough bread?"])
def test_off_topic_questions_abstain(assistant, question):
    answer = assistant.ask(question)
    assert answer.abstained and answer.status == "abstained"
    assert all(c.role == "related" for c in answer.citations)
    _check_invariant(assistant, answer)


def test_false_premise_gets_the_contradicting_quote(assistant):
    answer = assistant.ask("Why did Zelenskyy agree to cede Crimea to Russia?")
    assert answer.status == "premise_contradicted"
    assert "does not mean Ukraine would cede" in answer.citations[0].quote
    assert answer.citations[0].role == "contradiction"


def test_follow_up_is_rewritten_before_retrieval(assistant):
    history = [{"role": "user", "content": "What did Zelenskyy propose to end the war?"},
               {"role": "assistant", "content": "He proposed placing Ukrainian territory under the NATO umbrella."}]
    answer = assistant.ask("What did he say about Crimea?", history=history)
    assert answer.question_used == "What did Zelenskyy say about Crimea?"
    assert "Crimea" in answer.citations[0].quote


def test_rewrite_rules():
    h = [{"role": "user", "content": "What did Zelenskyy say about NATO membership?"}]
    assert rewrite("What about Crimea?", h) == "What did Zelenskyy say about Crimea?"
    assert rewrite("What did he want?", h) == "What did Zelenskyy want?"
    assert rewrite("Where is Kyiv?", []) == "Where is Kyiv?"


@pytest.mark.parametrize("bad", ["", "   \n", "x" * 5000, "a\x00b"])
def test_bad_questions_are_refused(assistant, bad):
    with pytest.raises(BadRequest):
        assistant.ask(bad)


VOLCANO = ("Iceland volcano erupts near Grindavik\n"
           "A volcano on Iceland's Reykjanes peninsula erupted on Monday night, sending lava towards the town "
           "of Grindavik. The town's 3,700 residents had been evacuated in November. Scientists said the "
           "eruption fissure was about four kilometres long.")


def seed_and_volcano(config, tmp_path) -> Assistant:
    """An assistant over two documents: the seed article and a short volcano report."""
    folder = tmp_path / "two"
    folder.mkdir()
    (folder / SEED_ARTICLE.name).write_text(SEED_ARTICLE.read_text())
    (folder / "volcano.txt").write_text(VOLCANO)
    assistant = Assistant.open(config)
    assistant.ingest([folder])
    return assistant


def test_two_articles_cite_the_right_one(config, tmp_path):
    assistant = seed_and_volcano(config, tmp_path)
    lava = assistant.ask("How long was the eruption fissure?")
    assert lava.citations and lava.citations[0].source.endswith("volcano.txt")
    assert "four kilometres" in lava.answer
    nato = assistant.ask("When was NATO's summit?")
    assert nato.citations[0].source.endswith(SEED_ARTICLE.name)
    _check_invariant(assistant, lava)
    _check_invariant(assistant, nato)


def test_tampered_citation_is_dropped(assistant):
    answer = assistant.ask("When was NATO's summit?")
    assert answer.citations
    bad = answer.model_copy(deep=True)
    bad.citations[0].start += 1  # quote no longer matches the document at these offsets
    checked = assistant._checked(bad)
    assert checked.abstained and checked.citations == []
    assert checked.dropped_claims


# ---------------------------------------------------------------- overview and typed questions

def _check_highlight(assistant, answer):
    for c in answer.citations:
        if c.highlight is not None:
            text = assistant.store.document(c.doc_id).text
            assert c.start <= c.highlight.start < c.highlight.end <= c.end
            assert text[c.highlight.start:c.highlight.end] == c.highlight.text


@pytest.mark.parametrize("question", ["Summarize the article.", "Give me the main points of the document.",
                                      "What is this article about?", "What are the key takeaways?", "tl;dr",
                                      "Can you give me an overview?"])
def test_overview_questions_get_the_lead_and_central_sentences(assistant, question):
    answer = assistant.ask(question)
    assert not answer.abstained and answer.status == "answered"
    assert 3 <= len(answer.citations) <= 4
    assert answer.citations[0].start == 0  # the lead sentence
    starts = [c.start for c in answer.citations]
    assert starts == sorted(starts)  # document order
    assert "Article 5" not in answer.citations[0].quote
    _check_invariant(assistant, answer)


@pytest.mark.parametrize("question,short", [("Who interviewed Zelenskyy?", "Sky News"),
                                            ("Which news outlet interviewed Zelenskyy?", "Sky News"),
                                            ("Which Russian leader is mentioned?", "Vladimir Putin"),
                                            ("When was NATO's summit?", "July"),
                                            ("What month was the NATO summit in?", "July")])
def test_typed_questions_highlight_the_short_answer(assistant, question, short):
    answer = assistant.ask(question)
    assert not answer.abstained
    assert answer.citations[0].highlight is not None
    assert answer.citations[0].highlight.text == short
    _check_invariant(assistant, answer)
    _check_highlight(assistant, answer)
    assert "highlight" in answer.model_dump(mode="json")["citations"][0]


def test_overview_with_several_documents(config, tmp_path):
    assistant = seed_and_volcano(config, tmp_path)
    named = assistant.ask("Summarize the article about the volcano.")
    assert not named.abstained
    assert {c.source for c in named.citations} == {"volcano.txt"} or all(
        c.source.endswith("volcano.txt") for c in named.citations)
    assert named.citations[0].quote.startswith("A volcano on Iceland")  # the lead, not the headline
    generic = assistant.ask("Summarize the article.")
    assert not generic.abstained
    assert len({c.doc_id for c in generic.citations}) == 2  # the lead of each, labelled
    assert "Iceland volcano erupts near Grindavik" in generic.answer
    for a in (named, generic):
        _check_invariant(assistant, a)


def test_a_name_the_documents_never_mention_is_shown_whole():
    from rag.answer.extractive.premises import as_named, missing_entities

    q = "How did the United States government respond to Zelenskyy's proposal?"
    absent = missing_entities(q, "Zelenskyy proposed a ceasefire; member states of NATO were wary.")
    assert absent == ["United"]  # "States" is in the text, lower-case
    assert as_named(q, absent) == ["United States"]
    assert as_named("Did the Bank of England cut rates?", ["Bank", "England"]) == ["Bank of England"]
