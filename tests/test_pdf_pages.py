"""PDFs read page by page: paragraphs whole across printed lines and page breaks, a page on every
citation, the quote highlighted on its page image, and scanned pages read by OCR (Tesseract).
The PDFs are real (fpdf2, from BBC articles), parsed by pdfium, rendered by pdfium, OCR'd by
Tesseract: nothing here stands in for them."""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pytest

from conftest import empty_assistant
from PIL import Image

from pdf_builders import bbc_article, report_pdf, scanned_pdf

from rag.index.pdf import page_of, read_pdf



@pytest.fixture(scope="module")
def report() -> bytes:
    return report_pdf()


@pytest.fixture(scope="module")
def read(report):
    return read_pdf(report)


def test_printed_lines_become_paragraphs(read):
    text = read.text
    # every paragraph of the source articles is one paragraph of the text (no cut at a printed line's end)
    for name in ("business/001.txt", "entertainment/001.txt"):
        head, paragraphs = bbc_article(name)
        assert f"{head}\n\n" in text  # a headline is its own paragraph, not run into the first sentence
        for para in paragraphs:
            para = para.encode("latin-1", "replace").decode("latin-1")
            if "?" in para:  # characters the PDF's core font cannot show
                continue
            assert para in text, para[:80]
    assert "\n" not in text.replace("\n\n", "")  # no single line breaks left
    assert "BBC News digest - internal" not in text and not re.search(r"\bPage \d\b", text)  # running lines


def test_page_map_and_a_paragraph_across_a_page_break(read):
    assert len(read.page_starts) == 4 and read.page_starts[0] == 0
    assert read.page_starts == sorted(read.page_starts)
    crossing = [s for s in read.page_starts[1:] if read.text[s - 1] == " "]  # a page that starts mid-sentence
    assert crossing, "the test report should have a paragraph running over a page break"
    at = crossing[0]
    sentence_start = read.text.rfind(". ", 0, at) + 2
    assert page_of(read.page_starts, sentence_start) == page_of(read.page_starts, at) - 1
    # every word box lies on its page and inside the page's bounds
    for page, words in enumerate(read.layout.words):
        width, height = read.layout.page_sizes[page]
        for start, end, x0, top, x1, bottom in words:
            assert 0 <= x0 < x1 <= width and 0 <= top < bottom <= height
            assert page_of(read.page_starts, start) == page + 1


def test_two_column_page_and_table(read):
    head, paragraphs = bbc_article("politics/001.txt")
    last = read.text[read.page_starts[-1]:]
    for para in paragraphs[:3]:
        assert para.encode("latin-1", "replace").decode("latin-1") in last
    # a table row is one sentence naming its columns, and its cells keep their boxes
    row = "Northern Europe — Quarterly sales: 4.1 million euros; Owner: Ines Duarte."
    assert row in last
    start = read.text.index(row)
    boxed = {read.text[s:e] for s, e, *_ in read.layout.words[-1] if start <= s < start + len(row)}
    assert {"Northern", "Europe", "4.1", "Ines", "Duarte"} <= boxed and "Quarterly" not in boxed


def _yellow(png: bytes) -> np.ndarray:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return (r > 200) & (g > 150) & (b < 140)  # the highlight's fill over white paper


@pytest.fixture(scope="module")
def pdf_assistant(tmp_path_factory, report):
    from rag.assistant import Assistant
    from rag.config import Config

    root = tmp_path_factory.mktemp("pdfidx")
    folder = root / "docs"
    folder.mkdir()
    (folder / "digest.pdf").write_bytes(report)
    assistant = Assistant.open(Config(data_dir=root / "data", chroma_url=None, collection="documents",
                                      llm="extractive", api_key=None))
    got = assistant.ingest([folder])
    assert got.added and not got.failed
    return assistant


def test_citations_carry_their_page_and_the_page_image_highlights_the_quote(pdf_assistant, read):
    answer = pdf_assistant.ask("What did Patricia Hewitt say about maternity pay?")
    assert not answer.abstained
    cite = answer.citations[0]
    record = pdf_assistant.store.document(cite.doc_id)
    assert record.text[cite.start:cite.end] == cite.quote
    assert cite.page == page_of(read.page_starts, cite.start) == 4
    png = pdf_assistant.page_image(record, cite.page, cite.start, cite.end)
    lit = _yellow(png)
    plain = _yellow(pdf_assistant.page_image(record, cite.page))
    assert lit.sum() > 500 and plain.sum() == 0
    # the highlight covers the quote's words where pdfium itself finds them on the page
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf_assistant.config.data_dir / "pages" / cite.doc_id /
                             f"{record.doc_hash[:16]}.pdf")
    page = doc[cite.page - 1]
    width, height = page.get_size()
    textpage = page.get_textpage()
    first_words = " ".join(cite.quote.split()[:3])
    searcher = textpage.search(first_words)
    found = searcher.get_next()
    assert found is not None
    left, bottom, right, top = textpage.get_charbox(found[0])
    scale = Image.open(io.BytesIO(png)).size[0] / width
    x, y = int((left + right) / 2 * scale), int((height - (top + bottom) / 2) * scale)
    assert lit[max(0, y - 6):y + 6, max(0, x - 6):x + 6].any()


def test_page_image_errors(pdf_assistant):
    record = pdf_assistant.store.document(pdf_assistant.documents()[0].doc_id)
    with pytest.raises(LookupError):
        pdf_assistant.page_image(record, 99)


def test_scanned_pages_are_read_by_ocr_and_cited_on_their_page(tmp_path, report):
    assert shutil.which("tesseract"), "Tesseract is not installed: make ocr (make test installs it)"

    scan = scanned_pdf(report, pages=[0])
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(scan)
    assistant = empty_assistant(tmp_path / "data")
    got = assistant.ingest([folder])
    assert got.added and not got.failed
    assert any("page 1 read by OCR (mean word confidence" in note for note in got.notes), got.notes
    record = assistant.store.document(assistant.documents()[0].doc_id)
    truth = read_pdf(report).text[: read_pdf(report).page_starts[1]]
    words = lambda s: re.findall(r"\w+", s.lower())  # noqa: E731
    import difflib

    matcher = difflib.SequenceMatcher(None, words(truth), words(record.text), autojunk=False)
    accuracy = sum(b.size for b in matcher.get_matching_blocks()) / len(words(truth))
    assert accuracy > 0.95, accuracy
    answer = assistant.ask("How many subscribers did AOL lose in the fourth quarter?")
    cite = answer.citations[0]
    assert "464,000" in cite.quote and cite.page == 1
    assert record.text[cite.start:cite.end] == cite.quote
    lit = _yellow(assistant.page_image(record, 1, cite.start, cite.end))
    assert lit.sum() > 300


def test_a_pdf_without_text_and_without_ocr_is_skipped_with_the_reason(tmp_path, report, monkeypatch):
    from rag.index.loaders import Skipped, load_file

    monkeypatch.setenv("RAG_OCR", "off")
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(report, pages=[0], dpi=72))
    got = load_file(path)
    assert isinstance(got, Skipped) and "no text layer" in got.reason


def test_a_scanned_upload_is_read_as_a_job_with_its_pages_counted(tmp_path, report):
    """Over HTTP a PDF with scanned pages answers 202 at once; the job reads its pages by OCR (counted
    in its progress), indexes it, and the document answers with its page."""
    import time

    from fastapi.testclient import TestClient

    from rag.serve.app import create_app

    assert shutil.which("tesseract"), "Tesseract is not installed: make ocr (make test installs it)"
    assistant = empty_assistant(tmp_path / "data")
    with TestClient(create_app(assistant, ui=False)) as client:
        got = client.post("/api/documents", files={"file": ("scan.pdf", scanned_pdf(report, pages=[0, 1]))})
        assert got.status_code == 202, got.text
        job = got.json()
        deadline = time.monotonic() + 180
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(job["status_url"]).json()
        assert job["state"] == "done", job
        assert job["progress"]["pages_read"] == job["progress"]["pages_total"] == 2
        assert any("pages 1-2 read by OCR" in n for n in job["result"]["notes"])
        answer = client.post("/api/ask", json={"question": "When did the Federal Reserve decide to boost "
                                                           "interest rates?"}).json()
        assert "2 February" in answer["answer"] and answer["citations"][0]["page"] == 2
        # a text PDF is read at once (200), as before
        got = client.post("/api/documents", files={"file": ("text.pdf", report)})
        assert got.status_code == 200 and got.json()["added"]
