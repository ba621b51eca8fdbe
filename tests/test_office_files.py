"""Slides and spreadsheets: a .pptx is read slide by slide (a citation's page is its slide), .xlsx and
.csv rows become sentences naming their columns. The files are made with python-pptx and openpyxl."""

from __future__ import annotations

import io

import pytest

from conftest import empty_assistant

from rag.index.loaders import LoadError, parse_bytes


def deck() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for title, lines in (("Project Heron kickoff", ["The project starts on 3 March.", "Joana Ferreira leads it."]),
                         ("Budget", ["The budget is 2.4 million euros.", "Finance signs off every quarter."]),
                         ("Risks", ["Supplier delays could push the launch to June."])):
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "Owners"
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate((("Workstream", "Owner"), ("Hiring plan", "Maria Santos"), ("Vendors", "Ines Duarte"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def workbook() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sales"
    for row in (("Region", "Quarterly sales", "Owner"), ("Northern Europe", "4.1 million euros", "Ines Duarte"),
                ("Southern Europe", 2700000, "Marco Bellini")):
        sheet.append(row)
    other = book.create_sheet("Offices")
    for row in (("Office", "Closes on Fridays"), ("Lisbon", "6 pm"), ("Madrid", "5 pm")):
        other.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_slides_are_pages():
    from rag.index.pdf import page_of

    text, title, meta = parse_bytes(deck(), ".pptx")
    assert meta["page_starts"][0] == 0 and len(meta["page_starts"]) == 4
    at = text.index("The budget is 2.4 million euros.")
    assert page_of(meta["page_starts"], at) == 2
    assert "Hiring plan — Owner: Maria Santos." in text
    assert page_of(meta["page_starts"], text.index("Hiring plan")) == 4
    assert text[meta["headings"][0][0]:meta["headings"][0][1]] == "Project Heron kickoff"


def test_spreadsheet_rows_are_sentences():
    text, _, _ = parse_bytes(workbook(), ".xlsx")
    assert "Northern Europe — Quarterly sales: 4.1 million euros; Owner: Ines Duarte." in text
    assert "Southern Europe — Quarterly sales: 2700000; Owner: Marco Bellini." in text
    assert "Offices" in text and "Lisbon — Closes on Fridays: 6 pm." in text
    csv = "Region;Quarterly sales;Owner\nNorthern Europe;4.1 million euros;Ines Duarte\n".encode("cp1252")
    text, _, meta = parse_bytes(csv, ".csv")
    assert text == "Northern Europe — Quarterly sales: 4.1 million euros; Owner: Ines Duarte."


def test_a_slide_citation_carries_its_slide_number(tmp_path):

    assistant = empty_assistant(tmp_path / "data")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "heron.pptx").write_bytes(deck())
    (tmp_path / "docs" / "sales.xlsx").write_bytes(workbook())
    assert len(assistant.ingest([tmp_path / "docs"]).added) == 2
    answer = assistant.ask("What is the budget of Project Heron?")
    cite = answer.citations[0]
    assert "2.4 million euros" in cite.quote and cite.page == 2
    answer = assistant.ask("Who owns the Northern Europe sales?")
    assert "Ines Duarte" in answer.answer and answer.citations[0].page is None
    record = assistant.store.document(cite.doc_id)
    with pytest.raises(LookupError, match="only PDFs"):
        assistant.page_image(record, 2)


@pytest.mark.parametrize("suffix", [".pptx", ".xlsx"])
def test_broken_office_files_are_refused_with_a_reason(suffix):
    with pytest.raises(LoadError, match="zip"):
        parse_bytes(b"not a zip at all", suffix)
    with pytest.raises(LoadError):
        parse_bytes(b"PK\x03\x04" + b"\x00" * 100, suffix)
