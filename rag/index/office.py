"""Slides and spreadsheets to text: ``.pptx`` (one page per slide), ``.xlsx`` and ``.csv`` (one line
per row, naming its columns).

A slide's title is a heading line, its text boxes paragraphs, its tables one sentence per row;
``page_starts`` makes "p. 3" mean slide 3 in citations (no page images: those are PDF only).
Spreadsheet rows become sentences the way every other table does (``rag.index.markup.table_lines``:
"Northern Europe — Sales: 4.1 million euros; Owner: Ines Duarte."), a sheet's name heading its
rows when a workbook has several. Formulas give their cached values (what the file shows); at most
``MAX_ROWS`` rows per sheet are read.
"""

from __future__ import annotations

import csv
import io

from rag.index.markup import table_lines

MAX_ROWS = 100_000


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def _join(blocks: list[str]) -> str:
    return "\n\n".join(b for b in blocks if b.strip())


def pptx_text(data: bytes) -> tuple[str, str | None, list[int], list[tuple[int, int]]]:
    """(text, title, page_starts, heading spans) of a presentation: one page per slide."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    parts: list[str] = []
    starts: list[int] = []
    headings: list[tuple[int, int]] = []
    length = 0
    for slide in deck.slides:
        blocks: list[tuple[str, bool]] = []  # (text, is heading)
        title_shape = slide.shapes.title
        if title_shape is not None and title_shape.has_text_frame and title_shape.text_frame.text.strip():
            blocks.append((" ".join(title_shape.text_frame.text.split()), True))
        for shape in slide.shapes:
            if shape is title_shape:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [[_cell(c.text) for c in row.cells] for row in shape.table.rows]
                blocks += [(line, False) for line in table_lines(rows)]
            elif shape.has_text_frame:
                for para in shape.text_frame.paragraphs:
                    text = " ".join("".join(r.text for r in para.runs).split())
                    if text:
                        blocks.append((text, False))
        sep = "\n\n" if parts else ""
        starts.append(length + len(sep) if blocks else length)
        for text, heading in blocks:
            sep = "\n\n" if parts else ""
            if heading:
                headings.append((length + len(sep), length + len(sep) + len(text)))
            parts.append(sep + text)
            length += len(sep) + len(text)
    title = (deck.core_properties.title or "").strip() or None
    return "".join(parts), title, starts, headings


def _rows_text(rows, name: str | None) -> str:
    lines = table_lines([list(r) for r in rows])
    return _join(([name] if name and lines else []) + lines)


def xlsx_text(data: bytes) -> tuple[str, str | None]:
    """(text, title) of a workbook: each sheet's rows as sentences, under the sheet's name when there are several."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets = book.worksheets
        blocks = []
        for sheet in sheets:
            rows = []
            for i, row in enumerate(sheet.iter_rows(values_only=True)):
                if i >= MAX_ROWS:
                    break
                cells = [_cell(v) for v in row]
                while cells and not cells[-1]:
                    cells.pop()
                if any(cells):
                    rows.append(cells)
            blocks.append(_rows_text(rows, sheet.title if len(sheets) > 1 else None))
        title = (book.properties.title or "").strip() or None
    finally:
        book.close()
    return _join(blocks), title


def csv_text(text: str) -> str:
    """A CSV file's rows as sentences (the delimiter sniffed among , ; tab |)."""
    sample = text[:20_000]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = []
    for i, row in enumerate(csv.reader(io.StringIO(text), dialect)):
        if i >= MAX_ROWS:
            break
        cells = [_cell(c) for c in row]
        if any(cells):
            rows.append(cells)
    return _rows_text(rows, None)
