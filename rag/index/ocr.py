"""OCR for PDF pages without a text layer: Tesseract (the Debian package ``tesseract-ocr``,
installed by ``make ocr``), run as a child process on the page rendered at 300 dpi.

Chosen over RapidOCR (``rapidocr-onnxruntime``) on scans of BBC pages (README, "Scanned PDFs"):
Tesseract read every word, RapidOCR's bundled PP-OCR models ran English words together
("Thefirm,which isnowoneofthebiggest") and missed lines. Tesseract's TSV output gives each word
with its box and confidence; the words become ``rag.index.pdf.Line``s (a word's box shared out
over its letters), so an OCR'd page gets paragraphs, a page map and highlights like a text layer.
Nothing is fetched at run time: the language data ships in ``tesseract-ocr-eng``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from rag.index.pdf import PDFIUM_LOCK, Line, PageLines

DPI = 300
MAX_PIXELS = 40_000_000  # a page rendered larger than this is rendered at a lower resolution
TIMEOUT = float(os.environ.get("RAG_OCR_TIMEOUT", "120"))
LANG = os.environ.get("RAG_OCR_LANG", "eng")


class OcrUnavailable(RuntimeError):
    """No OCR engine is installed; the message says how to install one."""


def engine() -> str | None:
    """Path of the tesseract binary, or None."""
    return shutil.which("tesseract")


def tsv_lines(tsv: str, scale: float) -> tuple[list[Line], float | None]:
    """Tesseract TSV (level 5 rows are words) to lines, boxes scaled to points; mean word confidence."""
    rows = tsv.splitlines()
    lines: dict[tuple, Line] = {}
    confidences = []
    for row in rows[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        word = cols[11].strip()
        conf = float(cols[10])
        if not word or conf < 0:
            continue
        left, top, width, height = (int(v) * scale for v in cols[6:10])
        key = tuple(int(v) for v in cols[1:5])  # page, block, paragraph, line
        line = lines.setdefault(key, Line([], [], 0.0))  # size 0: word heights are no font size
        if line.chars:
            line.chars.append(" ")
            line.boxes.append(None)
        step = width / len(word)
        for i, ch in enumerate(word):
            line.chars.append(ch)
            line.boxes.append((left + i * step, top, left + (i + 1) * step, top + height))
        confidences.append(conf)
    ordered = [lines[k] for k in sorted(lines)]
    return ordered, (sum(confidences) / len(confidences) if confidences else None)


def ocr_page(page, width: float, height: float) -> PageLines:
    """Read one pypdfium2 page by OCR. Raises OcrUnavailable when no engine is installed."""
    binary = engine()
    if binary is None:
        raise OcrUnavailable("no OCR engine: install Tesseract (make ocr, or apt-get install tesseract-ocr "
                             "tesseract-ocr-eng)")
    scale = DPI / 72
    if width * height * scale * scale > MAX_PIXELS:
        scale = (MAX_PIXELS / (width * height)) ** 0.5
    with PDFIUM_LOCK:
        image = page.render(scale=scale, grayscale=True).to_pil()
    with tempfile.TemporaryDirectory(prefix="rag-ocr-") as tmp:
        path = os.path.join(tmp, "page.png")
        image.save(path)
        env = {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}
        try:
            done = subprocess.run([binary, path, "stdout", "-l", LANG, "--psm", "3", "tsv"], capture_output=True,
                                  text=True, timeout=TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            return PageLines([], width, height, ocr=True, confidence=None,
                             problem=f"no text layer, and OCR took more than {TIMEOUT:.0f} s (RAG_OCR_TIMEOUT)")
    if done.returncode != 0:
        raise OcrUnavailable(f"tesseract failed: {done.stderr.strip()[:200]}")
    lines, confidence = tsv_lines(done.stdout, 1 / scale)
    return PageLines(lines, width, height, ocr=True, confidence=confidence)
