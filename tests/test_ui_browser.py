"""The chat UI in headless Chromium (Playwright) against the real server: a seed question
gets an answer with a citation card, the page loads nothing from outside, and markup
inside a document is shown as text and never runs."""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import pytest

from conftest import SEED_ARTICLE
from live_servers import rag_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                 reason="/usr/bin/chromium is missing (install it: make browser)")]

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
XSS_DOC = (f"Harbour Lights festival {IMG} report\n"
           f"The Harbour Lights festival in Tallinn drew 40,000 visitors in its first weekend, organisers said. "
           f"{SCRIPT} The lantern parade was moved to the old harbour because of strong winds. {IMG} "
           f"Tickets for the closing concert sold out within an hour.\n")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with rag_server(tmp_path_factory.mktemp("ui") / "data") as (url, _proc, _log):
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.outside_requests = outside
    yield page
    context.close()


def ask(page, question: str) -> None:
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.fill("#question textarea", question)
    page.click("#ask")


def test_seed_question_answer_with_citation_card(page, url, tmp_path):
    page.goto(url)
    page.wait_for_selector("#backend-indicator", timeout=60_000)
    assert "extractive" in page.inner_text("#backend-indicator")
    ask(page, "What did Zelenskyy say about Crimea?")
    card = page.locator("#chat .cite-card").first
    card.wait_for(timeout=30_000)
    quote = card.locator("mark").inner_text()
    article = SEED_ARTICLE.read_text(encoding="utf-8")
    assert quote and quote in article and "Crimea" in quote
    passage = card.locator(".cite-passage").inner_text()
    assert len(passage) > len(quote) + 100  # the quote is shown inside its surrounding text
    assert "Zelenskyy" in card.locator(".cite-head").inner_text()
    assert SEED_ARTICLE.name in card.locator(".cite-source").inner_text()
    assert "quote verified verbatim" in card.inner_text() and "score" not in card.inner_text()  # what was checked
    assert "[1]" in page.locator("#chat .message.bot, #chat [data-testid='bot']").last.inner_text()
    page.screenshot(path=str(tmp_path / "ui.png"))
    assert page.outside_requests == []


def test_markup_in_documents_is_shown_as_text(page, url, tmp_path):
    doc = tmp_path / "harbour-lights.txt"
    doc.write_text(XSS_DOC, encoding="utf-8")
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.get_by_text("Documents", exact=True).first.click()
    page.set_input_files("#upload input[type=file]", str(doc))
    page.wait_for_function("document.querySelector('#doc-status')?.innerText.includes('Added')", timeout=30_000)
    assert IMG in page.inner_text("#doc-table")  # the title holds markup too: shown as text

    ask(page, "How many visitors did the Harbour Lights festival draw?")
    card = page.locator("#chat .cite-card", has=page.locator("mark", has_text="40,000 visitors")).first
    card.wait_for(timeout=30_000)
    text = card.inner_text()
    assert SCRIPT in text and IMG in text  # in the quote or its surrounding passage, as text
    assert card.locator("mark").inner_text() in XSS_DOC
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#chat img[src='x'], #doc-table img, #header img").count() == 0
    assert not page.evaluate("[...document.scripts].some(s => s.textContent.includes('__pwned'))")
    assert page.outside_requests == []


def test_ui_with_api_key_opens_once_with_key_in_url(browser, tmp_path):
    key = "ui-test-key"
    with rag_server(tmp_path / "data", api_key=key) as (url, _proc, _log):
        context = browser.new_context()
        page = context.new_page()
        assert page.goto(url).status == 401
        assert page.goto(f"{url}/?key={key}").status == 200
        assert "key=" not in page.url  # the key is dropped from the address; a cookie carries it
        ask(page, "When was the NATO summit?")
        mark = page.locator("#chat .cite-card mark").first
        mark.wait_for(timeout=30_000)
        assert mark.inner_text() in SEED_ARTICLE.read_text(encoding="utf-8")
        context.close()


def test_a_browser_without_the_key_is_asked_for_it_then_sees_the_chat(browser, tmp_path):
    """With RAG_API_KEY set, opening / shows a page that asks for the key (not raw 401 JSON);
    a wrong key is said to be wrong; the right one opens the chat."""
    key = "s3cret-key-for-the-browser"
    with rag_server(tmp_path / "data", api_key=key) as (url, _proc, _log):
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(url)
            page.wait_for_selector("input#key", timeout=30_000)
            assert "needs its API key" in page.inner_text("body")
            page.fill("input#key", "not-the-key")
            page.click("button[type=submit]")
            page.wait_for_selector(".wrong", timeout=30_000)
            page.fill("input#key", key)
            page.click("button[type=submit]")
            page.wait_for_selector("#question textarea", timeout=60_000)  # the chat UI itself
            assert key not in page.url  # the key left the address bar once the cookie was set
        finally:
            context.close()


def test_documents_panel_shows_upload_progress_details_examples_and_confirms_deletes(page, url, tmp_path):
    """An upload shows its progress (chunks embedded) while it is indexed; the list gives type, size and
    date with counts in the right number; the examples follow the documents; delete asks first."""
    doc = tmp_path / "kestrabay-ledger.txt"
    doc.write_text("Kestrabay port ledger\n" + "".join(
        f"Entry {i}: harbour crane {i % 17} of the Kestrabay port lifted {i * 7} containers on day {i % 30} of the "
        f"season, and the night shift logged {i % 11} delays.\n" for i in range(500)), encoding="utf-8")
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.get_by_text("Documents", exact=True).first.click()
    page.set_input_files("#upload input[type=file]", str(doc))
    page.wait_for_function("document.querySelector('#doc-status')?.innerText.includes('chunks embedded')",
                           timeout=60_000)
    page.wait_for_function("document.querySelector('#doc-status')?.innerText.includes('Added')", timeout=300_000)
    row = page.locator("#doc-table tr", has_text="Kestrabay port ledger").inner_text()
    assert "Text" in row and "KB" in row and "UTC" in row and "upload:kestrabay-ledger.txt" in row
    assert " chunks." in page.inner_text("#doc-table") and "1 documents" not in page.inner_text("#header")
    example = "What are the main points of “Kestrabay port ledger”?"
    page.locator("#examples").get_by_text(example).click()
    page.wait_for_function(f"document.querySelector('#question textarea').value === {example!r}", timeout=10_000)

    page.click("#delete-choice input")
    page.get_by_role("option", name="Kestrabay port ledger — upload:kestrabay-ledger.txt").click()
    page.click("#delete")
    page.wait_for_selector("#delete-confirm", state="visible", timeout=10_000)
    assert "Kestrabay port ledger" in page.inner_text("#delete-confirm")
    page.click("#delete-cancel")
    page.wait_for_selector("#delete-confirm", state="hidden", timeout=10_000)
    assert "Kestrabay port ledger" in page.inner_text("#doc-table")  # nothing deleted without the yes
    page.click("#delete")
    page.wait_for_selector("#delete-confirm", state="visible", timeout=10_000)
    page.click("#delete-yes")
    page.wait_for_function("document.querySelector('#doc-status')?.innerText.includes('Deleted')", timeout=30_000)
    assert "Kestrabay port ledger" not in page.inner_text("#doc-table")
    counts = page.inner_text("#doc-table").strip().splitlines()[-1]
    assert re.fullmatch(r"(1 document|\d+ documents), (1 chunk|\d+ chunks)\.", counts), counts
    assert not re.search(r"\b1 (documents|chunks)\b", counts)
    assert example not in page.inner_text("#examples")
