"""The chat UI in headless Chromium with a PDF: "ask only this document" scopes the chat (the header
says so, and answers cite nothing else), and a citation card opens the page image with the quote
highlighted on it. A real server, a real PDF (fpdf2), pdfium rendering, a real browser."""

from __future__ import annotations

import io
import os

import httpx
import numpy as np
import pytest
from PIL import Image

from live_servers import rag_server
from pdf_builders import report_pdf

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                 reason="/usr/bin/chromium is missing (install it: make browser)")]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with rag_server(tmp_path_factory.mktemp("ui-pages") / "data") as (url, _proc, _log):
        got = httpx.post(f"{url}/api/documents", params={"collection": "reports"}, timeout=120,
                         files={"file": ("digest.pdf", report_pdf(two_columns=False, table=False))})
        assert got.status_code == 200, got.text
        yield url


def test_ask_only_this_document_and_see_the_quote_on_its_page(url, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        assert "all documents" in page.inner_text("#scope-note")
        # the documents panel: pick the PDF, "Ask only this document"
        page.get_by_text("Documents", exact=True).first.click()
        page.click("#delete-choice input")
        page.get_by_role("option", name="BBC News digest — upload:reports/digest.pdf").click()
        page.click("#ask-only")
        page.wait_for_function("document.querySelector('#scope-note').innerText.includes('BBC News digest')",
                               timeout=10_000)
        # a question the seed article answers finds nothing in this scope: no card quotes the seed
        page.fill("#question textarea", "What did Zelenskyy say about Crimea?")
        page.click("#ask")
        page.wait_for_function("document.querySelector('#chat').innerText.includes('do not answer') || "
                               "document.querySelectorAll('#chat .cite-card').length > 0", timeout=60_000)
        page.wait_for_timeout(1000)
        assert "Zelenskyy" not in " ".join(page.locator("#chat .cite-card").all_inner_texts())
        # a question the PDF answers: the card says the page and opens it
        page.fill("#question textarea", "How many subscribers did AOL lose in the fourth quarter?")
        page.click("#ask")
        card = page.locator("#chat .cite-card", has_text="464,000").first
        card.wait_for(timeout=60_000)
        assert "p. 1" in card.locator(".cite-source").inner_text()
        card.locator(".cite-page summary").click()
        image = card.locator("img.page-image").first
        image.wait_for(state="visible", timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=30_000)
        src = image.get_attribute("src")
        png = page.request.get(url + src if src.startswith("/") else src)
        assert png.status == 200 and png.headers["content-type"] == "image/png"
        pixels = np.asarray(Image.open(io.BytesIO(png.body())).convert("RGB")).astype(int)
        yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 150) & (pixels[..., 2] < 140)
        assert yellow.sum() > 300
    finally:
        context.close()
