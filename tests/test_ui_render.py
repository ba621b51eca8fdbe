"""The UI's HTML for citations (unit level; the browser test drives the real page)."""

from rag.models import Citation, Highlight
from rag.serve.ui import card_html

QUOTE = "In an interview with Sky News, he said <b>hi</b>"
DOC = "Intro. " + QUOTE + " More."


def cite(highlight=None) -> Citation:
    return Citation(id=1, quote=QUOTE, doc_id="d", source="s", title="T", start=7, end=7 + len(QUOTE), score=1.0,
                    highlight=highlight)


def test_the_short_answer_is_bold_inside_the_marked_quote():
    html = card_html(cite(Highlight(start=28, end=36, text="Sky News")), DOC)
    assert "<mark>In an interview with <strong class='short-answer'>Sky News</strong>, he said &lt;b&gt;" in html


def test_a_highlight_that_does_not_match_the_quote_is_ignored():
    html = card_html(cite(Highlight(start=28, end=36, text="BBC News")), DOC)
    assert "short-answer" not in html and "<mark>In an interview with Sky News" in html
    assert "<b>" not in html  # document markup stays text


def test_the_tagline_promises_what_the_backend_does():
    from rag.serve.ui import tagline

    assert "sentences quoted verbatim" in tagline("extractive")
    model = tagline("gguf:qwen2.5-coder-1.5b")
    assert "cites a sentence quoted verbatim" in model and "checks that the claim says what" in model
    assert "is a verbatim quote" not in model  # a model's claims are its own words
