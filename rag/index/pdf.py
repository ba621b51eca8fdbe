"""PDFs to text with pages: printed lines joined back into paragraphs, a page map, and word boxes.

A PDF is read page by page with pypdfium2 (chosen over pdfplumber: see README, "PDFs"). Each page
becomes ``Line``s (characters with their boxes, in reading order); a page without a text layer is
read by OCR (``rag.index.ocr``) into the same ``Line``s. ``assemble`` then:

* drops running headers and footers (a first or last line that repeats, digits aside, on at least
  half the pages) and bare page numbers;
* joins printed lines into paragraphs: a line-end hyphen before a lower-case letter is removed, a
  short line (a heading, a paragraph's last line), a wider vertical gap, or a change of font size
  ends a paragraph; a paragraph that ends without final punctuation continues on the next page
  or column;
* records where each page starts in the text (``page_starts``) and the box of every word
  (``PdfLayout.words``: text offsets and the box on its page, in points from the top-left), which
  ``rag.index.page_image`` uses to highlight a quote on its page.

The text is what the index stores and quotes, so ``text[start:end] == quote`` holds on it as on
any other document.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from statistics import median

FINAL = tuple('.!?:;"”’)')
# pdfium may not be called from two threads at once, not even on different documents (pypdfium2's
# documentation): every use in this process (reading, the OCR renders, page images) holds this lock.
PDFIUM_LOCK = threading.RLock()
MAX_PAGE_OBJECTS = 100_000  # text runs, paths and images one page may draw (a page of text has a few thousand)
MIN_TEXT_CHARS = 16  # a page with an image and fewer non-space characters in its text layer is read by OCR


@dataclass
class Line:
    """One printed line: its characters with their boxes (x0, top, x1, bottom in points from the
    page's top-left; None for characters the PDF does not place, such as generated spaces)."""

    chars: list[str]
    boxes: list[tuple[float, float, float, float] | None]
    size: float = 0.0  # font size (0: unknown)
    standalone: bool = False  # a paragraph of its own (a table row made into a sentence)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, top, x1, bottom) around the placed characters, computed once (a line is complete
        before its layout is read; the paragraph rules read it for every pair of lines)."""
        placed = [b for b in self.boxes if b is not None]
        if not placed:
            return 0.0, 0.0, 0.0, 0.0
        return (min(b[0] for b in placed), min(b[1] for b in placed), max(b[2] for b in placed),
                max(b[3] for b in placed))

    x0 = property(lambda self: self.bounds[0])
    top = property(lambda self: self.bounds[1])
    x1 = property(lambda self: self.bounds[2])
    bottom = property(lambda self: self.bounds[3])


@dataclass
class PageLines:
    lines: list[Line]
    width: float
    height: float
    ocr: bool = False
    confidence: float | None = None  # OCR's mean word confidence (0..100)
    problem: str | None = None  # why a page without a text layer could not be read


@dataclass
class PdfLayout:
    """Where the text sits on the pages: ``words[p]`` = [(start, end, x0, top, x1, bottom)] on page p
    (0-based), offsets into the document text; page sizes in points."""

    page_sizes: list[tuple[float, float]]
    words: list[list[tuple[int, int, float, float, float, float]]]

    def to_json(self) -> dict:
        return {"page_sizes": self.page_sizes, "words": self.words}

    @classmethod
    def from_json(cls, data: dict) -> "PdfLayout":
        return cls([tuple(s) for s in data["page_sizes"]], [[tuple(w) for w in ws] for ws in data["words"]])

    def boxes(self, page: int, start: int, end: int) -> list[tuple[float, float, float, float]]:
        """Boxes of the words of page ``page`` (0-based) overlapping text[start:end], merged per line."""
        out: list[list[float]] = []
        for s, e, x0, top, x1, bottom in self.words[page]:
            if e <= start or s >= end:
                continue
            if s < start or e > end:  # part of the word: its share of the box
                span = max(e - s, 1)
                a, b = max(s, start), min(e, end)
                x0, x1 = x0 + (x1 - x0) * (a - s) / span, x0 + (x1 - x0) * (b - s) / span
            if out and abs(out[-1][1] - top) < 0.5 * (bottom - top) and x0 >= out[-1][0]:
                last = out[-1]
                last[2], last[1], last[3] = max(last[2], x1), min(last[1], top), max(last[3], bottom)
            else:
                out.append([x0, top, x1, bottom])
        return [tuple(b) for b in out]


@dataclass
class PdfText:
    text: str
    page_starts: list[int]
    layout: PdfLayout
    title: str | None = None
    ocr_pages: list[int] = field(default_factory=list)  # 1-based
    ocr_confidence: float | None = None
    unreadable_pages: list[tuple[int, str]] = field(default_factory=list)  # (1-based page, why)


# ---------------------------------------------------------------- reading pages


def text_layer_lines(textpage, page_height: float) -> list[Line]:
    """The page's characters as pdfium orders them, cut into lines at its line breaks."""
    import pypdfium2.raw as pdfium_c

    lines: list[Line] = []
    chars: list[str] = []
    boxes: list = []
    sizes: list[float] = []

    def close():
        if "".join(chars).strip():
            lines.append(Line(list(chars), list(boxes), median(sizes) if sizes else 0.0))
        chars.clear(), boxes.clear(), sizes.clear()

    for i in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(textpage, i)
        ch = chr(code) if code else ""
        if ch in ("\r", "\n"):
            if ch == "\n":
                close()
            continue
        if not ch or ch in "\x00\ufffe\uffff":
            continue
        if ch == "\x02":  # pdfium's mark for a soft hyphen at a line end
            ch = "-"
        generated = pdfium_c.FPDFText_IsGenerated(textpage, i) == 1
        box = None
        if not generated and not ch.isspace():
            left, bottom, right, top = textpage.get_charbox(i, loose=False)
            box = (left, page_height - top, right, page_height - bottom)
            sizes.append(pdfium_c.FPDFText_GetFontSize(textpage, i))
        chars.append(" " if ch.isspace() else ch)
        boxes.append(box)
    close()
    return lines


def read_pages(data: bytes, ocr=None, on_page=None, max_page_chars: int = 200_000) -> tuple[list[PageLines], str | None]:
    """Every page's lines (OCR for pages without a text layer, when ``ocr`` is given) and the title.
    A page with more than ``max_page_chars`` characters raises ValueError (a decompression bomb)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(data)
        title = (doc.get_metadata_dict().get("Title") or "").strip() or None
        n_pages = len(doc)
    try:
        pages: list[PageLines] = []
        for index in range(n_pages):
            with PDFIUM_LOCK:  # page by page: other threads may render between two pages
                page = doc[index]
                width, height = page.get_size()
                objects = pdfium_c.FPDFPage_CountObjects(page.raw)
                if objects > MAX_PAGE_OBJECTS:
                    raise ValueError(f"PDF page {index + 1} draws {objects:,} objects (limit {MAX_PAGE_OBJECTS:,}): "
                                     "refused as a possible decompression bomb")
                textpage = page.get_textpage()
                if textpage.count_chars() > max_page_chars:
                    raise ValueError(f"PDF page {index + 1} holds {textpage.count_chars():,} characters (limit "
                                     f"{max_page_chars:,}): refused as a possible decompression bomb")
                lines = text_layer_lines(textpage, height)
                textpage.close()
            item = PageLines(lines, width, height)
            if sum(len(line.text.replace(" ", "")) for line in lines) < MIN_TEXT_CHARS:
                with PDFIUM_LOCK:
                    scanned = has_image(page)
                if scanned:  # a scan: an image and (almost) no text
                    item = _read_by_ocr(ocr, page, item)  # renders under the lock, reads outside it
                elif not lines:
                    item.problem = "no text and no image on the page"
            with PDFIUM_LOCK:
                page.close()
            pages.append(item)
            if on_page:
                on_page(index + 1, n_pages)
        return pages, title
    finally:
        with PDFIUM_LOCK:
            doc.close()


def has_image(page) -> bool:
    """Does the page draw an image (a scan does; a blank page or a page of vector text does not)?
    Call under PDFIUM_LOCK."""
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)), None) is not None


def _read_by_ocr(ocr, page, item: PageLines) -> PageLines:
    """The page read by ``ocr``; the text layer's few characters (if any) when OCR is missing or fails."""
    if ocr is None:
        item.problem = "no text layer (OCR is off)"
        return item
    try:
        read = ocr(page, item.width, item.height)
    except (RuntimeError, OSError) as exc:  # OcrUnavailable (no engine, or it failed), or it could not start
        item.problem = f"no text layer; {exc}"
        return item
    if not read.lines:
        read.problem = read.problem or "no text layer, and OCR found no text"
    return read


# ---------------------------------------------------------------- assembling text


def _key(line: Line) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", " ", line.text.strip().lower()))


_PAGE_NUMBER = re.compile(r"^(page\s+)?[-–—(]?\s*\d{1,4}\s*[-–—)]?(\s*(of|/)\s*\d{1,4})?$", re.I)


def drop_running_lines(pages: list[PageLines]) -> None:
    """Remove running headers/footers (first/last two lines repeating on >= half the pages) and
    bare page numbers at the top or bottom of a page."""
    n = len(pages)
    if n >= 2:
        counts: dict[str, int] = {}
        for page in pages:
            edge = {_key(line) for line in page.lines[:2] + page.lines[-2:]}
            for key in edge:
                counts[key] = counts.get(key, 0) + 1
        running = {k for k, c in counts.items() if c >= max(2, (n + 1) // 2) and k.strip("# ")}
    else:
        running = set()
    for page in pages:
        keep = []
        last = len(page.lines) - 1
        for i, line in enumerate(page.lines):
            at_edge = i < 2 or i > last - 2
            if at_edge and (_key(line) in running or _PAGE_NUMBER.match(line.text.strip())):
                continue
            keep.append(line)
        page.lines = keep


def _column_right(line: Line, lines: list[Line], page_right: float) -> float:
    """The right edge of the column ``line`` sits in: the right end of the widest quarter of the lines
    starting where it starts (three or more such lines make a column; a few wider lines, such as a
    table under the column, do not move it), else the page's right edge."""
    same = sorted(other.x1 for other in lines if abs(other.x0 - line.x0) < 12)
    return same[(3 * len(same)) // 4] if len(same) >= 3 else page_right


def _cells(line: Line) -> list[tuple[int, int]]:
    """(start, end) character ranges of the line's cells: runs separated by a horizontal gap wider
    than the line's height (a word space is a quarter of it)."""
    height = max(line.bottom - line.top, 1.0)
    cells, start, last_right = [], None, None
    for i, box in enumerate(line.boxes):
        if box is None:
            continue
        if start is None:
            start = i
        elif box[0] - last_right > 0.9 * height:
            end = i
            while end > start and line.chars[end - 1] == " ":
                end -= 1
            cells.append((start, end))
            start = i
        last_right = box[2]
    if start is not None:
        cells.append((start, len(line.chars)))
    return cells


def _aligned(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 14 for x, y in zip(a, b))


def tables_to_sentences(page: PageLines) -> None:
    """Runs of two or more lines split into the same aligned cells are a table: each row becomes one
    sentence that names its columns ("Northern Europe — Quarterly sales: 4.1 million euros; Owner: Ines
    Duarte."), its own paragraph. The cells' characters keep their boxes (the column names added to a
    row have none), so a quote of a row is highlighted on the page."""
    from rag.index.markup import table_lines

    lines, out, i = page.lines, [], 0
    while i < len(lines):
        cells = _cells(lines[i])
        j = i + 1
        if len(cells) >= 2:
            starts = [lines[i].boxes[c[0]][0] for c in cells]
            while j < len(lines):
                nxt = _cells(lines[j])
                if not _aligned(starts, [lines[j].boxes[c[0]][0] for c in nxt]):
                    break
                j += 1
        lengths = [b - a for line in lines[i:j] for a, b in _cells(line)]
        if j - i < 2 or len(cells) < 2 or max(lengths) > 60 or sum(lengths) / len(lengths) > 30:
            # (long cells are two columns of running text printed on one line, not a table)
            out.append(lines[i])
            i += 1
            continue
        rows = [[(line, rng) for rng in _cells(line)] for line in lines[i:j]]
        texts = [["".join(line.chars[a:b]) for line, (a, b) in row] for row in rows]
        sentences = table_lines(texts)
        body = rows[1:] if len(sentences) == len(rows) - 1 else rows
        for sentence, row in zip(sentences, body):
            chars, boxes, at = list(sentence), [None] * len(sentence), 0
            for line, (a, b) in row:  # give each cell's characters their boxes where the cell sits in the sentence
                cell = "".join(line.chars[a:b])
                found = sentence.find(cell, at) if cell else -1
                if found >= 0:
                    boxes[found:found + len(cell)] = line.boxes[a:b]
                    at = found + len(cell)
            out.append(Line(chars, boxes, row[0][0].size, standalone=True))
        i = j
    page.lines = out


def _ends_paragraph(a: Line, b: Line, right: float, gap_limit: float) -> bool:
    if a.standalone or b.standalone:
        return True
    text = a.text.rstrip()
    if a.size and b.size and abs(a.size - b.size) > 0.15 * max(a.size, b.size):
        return True
    if b.top - a.bottom > gap_limit:
        return True
    if b.top < a.top - 1:  # the next line is higher up: a new column
        return text.endswith(FINAL)
    if a.x1 < right - 0.25 * max(right - a.x0, 1.0):  # a short line: a heading or a paragraph's end
        return True
    return False


def _paragraphs(page: PageLines) -> list[list[Line]]:
    lines = page.lines
    if not lines:
        return []
    gaps = [b.top - a.bottom for a, b in zip(lines, lines[1:]) if b.top > a.top]
    heights = [line.bottom - line.top for line in lines if line.bottom > line.top]
    height = median(heights) if heights else 10.0
    usual = median(gaps) if gaps else 0.3 * height
    gap_limit = usual + 0.45 * height
    right = max(line.x1 for line in lines)
    paragraphs = [[lines[0]]]
    for a, b in zip(lines, lines[1:]):
        if _ends_paragraph(a, b, _column_right(a, lines, right), gap_limit):
            paragraphs.append([b])
        else:
            paragraphs[-1].append(b)
    return paragraphs


class _Writer:
    """Appends characters to the text and collects word boxes per page."""

    def __init__(self, n_pages: int):
        self.parts: list[str] = []
        self.length = 0
        self.words: list[list] = [[] for _ in range(n_pages)]
        self._word: list | None = None  # [page, start, end, x0, top, x1, bottom]

    def _close_word(self):
        if self._word is not None:
            page, *rest = self._word
            self.words[page].append(tuple(round(v, 2) if isinstance(v, float) else v for v in rest))
            self._word = None

    def put(self, text: str, box=None, page: int = 0):
        if not text:
            return
        self.parts.append(text)
        if box is None or text.isspace():
            self._close_word()
        else:
            w = self._word
            if w is not None and w[0] == page and w[2] == self.length and abs(box[1] - w[4]) < 0.8 * (w[6] - w[4] + 1):
                w[2] = self.length + len(text)
                w[3], w[4], w[5], w[6] = min(w[3], box[0]), min(w[4], box[1]), max(w[5], box[2]), max(w[6], box[3])
            else:
                self._close_word()
                self._word = [page, self.length, self.length + len(text), *box]
        self.length += len(text)

    def text(self) -> str:
        self._close_word()
        return "".join(self.parts)


def _line_chars(line: Line) -> list[tuple[str, object]]:
    """The line's characters with runs of spaces collapsed and the ends trimmed."""
    out: list[tuple[str, object]] = []
    for ch, box in zip(line.chars, line.boxes):
        if ch == " " and (not out or out[-1][0] == " "):
            continue
        out.append((ch, box))
    while out and out[-1][0] == " ":
        out.pop()
    return out


def assemble(pages: list[PageLines]) -> tuple[str, list[int], PdfLayout]:
    """(text, page_starts, layout) of the pages' lines; see the module docstring."""
    drop_running_lines(pages)
    for page in pages:
        if not page.ocr:
            tables_to_sentences(page)
    out = _Writer(len(pages))
    page_starts: list[int] = []
    open_sentence = False  # the text so far ends inside a paragraph that may continue
    for p, page in enumerate(pages):
        page_starts.append(out.length)
        for k, paragraph in enumerate(_paragraphs(page)):
            rows = [_line_chars(line) for line in paragraph]
            if not rows[0]:
                continue
            if out.length:
                continues = k == 0 and open_sentence and rows[0][0][0].islower()
                out.put(" " if continues else "\n\n")
                if k == 0:  # the page starts at its first character, after the separator
                    page_starts[-1] = out.length
            # a line ending in letter + hyphen before a lower-case line: the word goes on there
            hyphenated = [len(a) > 1 and a[-1][0] == "-" and a[-2][0].isalpha() and bool(b) and b[0][0].islower()
                          for a, b in zip(rows, rows[1:])] + [False]
            for j, chars in enumerate(rows):
                if j and not hyphenated[j - 1]:
                    out.put(" ")
                for ch, box in chars[:-1] if hyphenated[j] else chars:
                    out.put(ch, box, p)
            open_sentence = not "".join(c for c, _ in rows[-1]).endswith(FINAL)
    text = out.text()
    return text, page_starts, PdfLayout([(round(pg.width, 2), round(pg.height, 2)) for pg in pages], out.words)


def pages_to_ocr(data: bytes) -> int:
    """How many pages of a PDF are scans (an image, no text layer: read by OCR, seconds each); 0 for a file
    pdfium cannot open (its reader says why)."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return 0
        try:
            count = 0
            for index in range(len(doc)):
                page = doc[index]
                textpage = page.get_textpage()
                text = textpage.get_text_range() if textpage.count_chars() < 4 * MIN_TEXT_CHARS else "x" * MIN_TEXT_CHARS
                few = len(text.replace(" ", "").replace("\r", "").replace("\n", "")) < MIN_TEXT_CHARS
                count += few and has_image(page)
                textpage.close()
                page.close()
            return count
        except pdfium.PdfiumError:  # a damaged page: the reader says what is wrong
            return 0
        finally:
            doc.close()


def read_pdf(data: bytes, ocr=None, on_page=None, max_page_chars: int = 200_000) -> PdfText:
    """A PDF's text, page map and layout; ``ocr(page, width, height) -> PageLines`` reads pages
    without a text layer."""
    pages, title = read_pages(data, ocr, on_page, max_page_chars)
    ocr_pages = [i + 1 for i, p in enumerate(pages) if p.ocr]
    confidences = [p.confidence for p in pages if p.ocr and p.confidence is not None and p.lines]
    unreadable = [(i + 1, p.problem or "no text") for i, p in enumerate(pages) if not p.lines]
    text, page_starts, layout = assemble(pages)
    return PdfText(text, page_starts, layout, title, ocr_pages,
                   round(sum(confidences) / len(confidences), 1) if confidences else None, unreadable)


def page_of(page_starts: list[int], offset: int) -> int:
    """The 1-based page holding text offset ``offset``."""
    from bisect import bisect_right

    return max(1, bisect_right(page_starts, offset))
