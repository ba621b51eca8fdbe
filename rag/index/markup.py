"""Marked-up text to the readable text we store: Markdown, HTML and Word documents become plain
paragraphs, headings on lines of their own, list items one per line and each table row one sentence
("Hiring plan — Owner: Maria Santos; Due: March 2025.").

The stored document text is this converted text: quotes are checked against it
(``document_text[start:end] == quote``), so no Markdown syntax, navigation menu or table pipe can
reach an answer. Each converter also returns where its headings are (character spans of the
converted text): headings are structure, not answers (see ``rag.index.sentences.heading_spans``).

Blocks are joined in one way for every format: a heading or a paragraph is separated from what
surrounds it by a blank line; consecutive list items, table rows or lines of code by one line break.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass

HEADING, PARA, ITEM, ROW, CODE = "heading", "para", "item", "row", "code"
_TIGHT = {ITEM, ROW, CODE}  # kinds whose consecutive blocks are joined by one line break


@dataclass(frozen=True)
class Block:
    text: str
    kind: str = PARA
    group: int = 0  # rows of one table share a group; another table starts a new paragraph


def join_blocks(blocks: list[Block]) -> tuple[str, list[tuple[int, int]]]:
    """(text, heading spans): blocks joined by a blank line, or by one line break between consecutive
    blocks of the same tight kind (list items, table rows, code lines)."""
    parts: list[str] = []
    headings: list[tuple[int, int]] = []
    size, previous = 0, None
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if parts:
            sep = "\n" if (block.kind, block.group) == previous and block.kind in _TIGHT else "\n\n"
            parts.append(sep)
            size += len(sep)
        if block.kind == HEADING:
            headings.append((size, size + len(text)))
        parts.append(text)
        size += len(text)
        previous = (block.kind, block.group)
    return "".join(parts), headings


# ------------------------------------------------------------------ tables

GENERIC_HEADERS = frozenset("value values detail details description info information answer notes note "
                            "content contents text".split())
_END_PUNCT = ".!?…"


def sentence_end(text: str) -> str:
    """``text`` ending as a sentence: a full stop added unless it already ends with . ! ? or …"""
    text = text.rstrip().rstrip(":;,").rstrip()
    if not text:
        return text
    return text if text[-1] in _END_PUNCT or text[-2:-1] in tuple(_END_PUNCT) and text[-1] in "\"'”’)" \
        else text + "."


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _looks_like_header(rows: list[list[str]]) -> bool:
    """A first row of short labels without figures, above at least one other row."""
    if len(rows) < 2:
        return False
    first = rows[0]
    return all(c and len(c.split()) <= 5 and not re.search(r"\d", c) for c in first)


def table_lines(rows: list[list[str]], header: bool | None = None) -> list[str]:
    """One readable sentence per table row. With a header row, each row reads "<first cell> — <column>:
    <value>; <column>: <value>." (a column named "Value" or "Details" gives its value alone); without one,
    "<first cell>: <other cells>." ``header`` None: guessed (a first row of short labels without figures)."""
    rows = [[_cell(c) for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    if header is None:
        header = _looks_like_header(rows)
    head, body = (rows[0], rows[1:]) if header and len(rows) > 1 else (None, rows)
    out = []
    for row in body:
        filled = [c for c in row if c]
        if len(set(filled)) == 1 and len(filled) == len(row) > 1 or len(filled) == 1:
            line = filled[0]  # a row spanning the table (a group label) or a single value
        elif head is not None:
            label = row[0]
            parts = [f"{h}: {v}" if h and h.lower() not in GENERIC_HEADERS else v
                     for h, v in zip(head[1:], row[1:]) if v]
            if label and parts:
                line = f"{label} — {'; '.join(parts)}"
            elif label:
                line = f"{head[0]}: {label}" if head[0] else label
            else:
                line = "; ".join(parts)
        else:
            line = f"{filled[0]}: {'; '.join(filled[1:])}"
        out.append(sentence_end(line))
    return out


# ------------------------------------------------------------------ Markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?(.*)$")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?")
_REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S+.*$")
_TABLE_SEP = re.compile(r"^[ \t]*\|?[ \t]*:?-{1,}:?[ \t]*(?:\|[ \t]*:?-{1,}:?[ \t]*)*\|?[ \t]*$")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)

# Every pattern below scans a bounded stretch or up to the next delimiter: linear on hostile input.
_CODE_SPAN = re.compile(r"(`+)[ ]?([^`]+?)[ ]?\1(?!`)")
_IMAGE = re.compile(r"!\[([^\[\]]{0,500})\](?:\((?:[^()\s]|\([^()]{0,500}\)){0,2000}(?:\s+[\"'(][^\"')]{0,500}[\"')])?\s*\)"
                    r"|\[[^\[\]]{0,500}\])")
_LINK = re.compile(r"\[([^\[\]]{1,500})\]\((?:[^()\s]|\([^()]{0,500}\)){0,2000}(?:\s+[\"'(][^\"')]{0,500}[\"')])?\s*\)")
_REFLINK = re.compile(r"\[([^\[\]]{1,500})\]\[[^\[\]]{0,500}\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^<>\s]+|[^<>\s@]+@[^<>\s@]+\.[A-Za-z]{2,})>")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_EMPHASIS = [re.compile(r"(\*\*\*)(?=\S)([^*]+?)(?<=\S)\*\*\*"), re.compile(r"(___)(?=\S)([^_]+?)(?<=\S)___"),
             re.compile(r"(\*\*)(?=\S)([^*]+?)(?<=\S)\*\*"), re.compile(r"(__)(?=\S)([^_]+?)(?<=\S)__"),
             re.compile(r"(\*)(?=[^\s*])([^*]+?)(?<=[^\s*])\*"),
             re.compile(r"(?<![\w])(_)(?=[^\s_])([^_]+?)(?<=[^\s_])_(?![\w])"),
             re.compile(r"(~~)(?=\S)([^~]+?)(?<=\S)~~")]
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")


def inline_markdown(text: str) -> str:
    """One block's inline Markdown to plain text: emphasis, links (their text), images (dropped), code
    ticks, inline HTML tags, backslash escapes and entities removed; whitespace collapsed."""
    codes: list[str] = []

    def keep(m: re.Match) -> str:
        codes.append(m.group(2))
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE_SPAN.sub(keep, text)
    text = _IMAGE.sub("", text)
    for _ in range(3):  # [![badge](img)](link) and links inside emphasis
        text = _LINK.sub(r"\1", text)
    text = _REFLINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    for _ in range(2):
        for pattern in _EMPHASIS:
            text = pattern.sub(r"\2", text)
    text = _ESCAPE.sub(r"\1", text)
    text = html.unescape(text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)
    return re.sub(r"[ \t\u00a0]+", " ", text).strip()


def _table_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [inline_markdown(c.replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", line)]


def markdown_text(source: str) -> tuple[str, str | None, list[tuple[int, int]]]:
    """(readable text, title, heading spans) of a Markdown document. The title is the first level-1
    heading (else a ``title:`` in YAML front matter, else None)."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    title = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = re.search(r"^title:[ \t]*[\"']?(.+?)[\"']?[ \t]*$", front.group(1), re.M)
        title = found.group(1).strip() if found else None
        text = text[front.end():]
    text = _COMMENT.sub("", text)
    lines = text.split("\n")
    blocks: list[Block] = []
    current: list[str] = []  # lines of the paragraph or list item being read
    kind = PARA
    h1 = None

    def flush() -> None:
        nonlocal current
        if current:
            pieces = []
            for k, line in enumerate(current):  # soft breaks join with a space; two trailing spaces or "\" keep it
                hard = line.endswith(("  ", "\\"))
                line = line.strip()
                pieces.append(line[:-1].rstrip() if hard and line.endswith("\\") else line)
                if k < len(current) - 1:
                    pieces.append("\n" if hard else " ")
            text = "\n".join(inline_markdown(part) for part in "".join(pieces).split("\n"))
            if text.strip():
                blocks.append(Block(text, kind))
        current = []

    i = 0
    while i < len(lines):
        line = lines[i]
        while _QUOTE.match(line):  # block quotes: their content, without the markers
            line = _QUOTE.sub("", line, count=1)
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker, code = fence.group(1), []
            i += 1
            while i < len(lines) and not re.match(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$",
                                                   _QUOTE.sub("", lines[i])):
                code.append(_QUOTE.sub("", lines[i]))
                i += 1
            blocks += [Block(c.rstrip(), CODE) for c in code if c.strip()]
            i += 1
            continue
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            heading = inline_markdown(atx.group(2) or "")
            if heading:
                blocks.append(Block(heading, HEADING))
                if h1 is None and len(atx.group(1)) == 1:
                    h1 = heading
            i += 1
            continue
        if _SETEXT.match(line) and kind == PARA and len(current) == 1 and not _ITEM.match(current[0]):
            heading = inline_markdown(current[0])
            current = []
            if heading:
                blocks.append(Block(heading, HEADING))
                if h1 is None and line.strip().startswith("="):
                    h1 = heading
            i += 1
            continue
        if _RULE.match(line):
            flush()
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]) and "-" in lines[i + 1]:
            flush()
            rows = [_table_row(line)]
            i += 2
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                rows.append(_table_row(lines[i]))
                i += 1
            blocks += [Block(row, ROW, len(blocks)) for row in table_lines(rows, header=True)]
            continue
        if _REFDEF.match(line):
            i += 1
            continue
        item = _ITEM.match(line)
        if item and not (kind == PARA and current and re.match(r"^[ \t]*\d", line) and not re.match(r"^\s*1[.)]", line)):
            flush()
            kind = ITEM
            current = [item.group(1)]
            i += 1
            continue
        if not current:
            kind = PARA
        current.append(line)
        i += 1
    flush()
    text, headings = join_blocks(blocks)
    return text, h1 or title, headings


# ------------------------------------------------------------------ HTML

HTML_SKIP = frozenset("script style noscript template svg head nav aside iframe object embed select button "
                      "canvas map audio video".split())
SKIP_ROLES = frozenset("navigation search menu menubar tablist toolbar".split())
HTML_BLOCK = frozenset("p div br li ul ol dl dt dd h1 h2 h3 h4 h5 h6 tr section article header footer main "
                       "blockquote pre table hr title address figure figcaption fieldset legend details summary "
                       "center form caption".split())
HEADING_TAGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_MENU_SEP = re.compile(r"\s*(?:[|·•›»]|\s/\s)\s*")


def menu_line(text: str, link_chars: int) -> bool:
    """A line of navigation: mostly link text and short ("Home | About | Contact", "Read more"), or three or
    more short items separated by | · • › » or " / "."""
    words = text.split()
    if not words:
        return True
    chars = sum(1 for ch in text if not ch.isspace())
    if link_chars >= 0.5 * chars and len(words) <= 12:
        return True
    items = [p for p in _MENU_SEP.split(text) if p.strip()]
    return len(items) >= 3 and len(items) > len(_MENU_SEP.findall(text)) - 1 and \
        all(len(p.split()) <= 3 for p in items) and bool(_MENU_SEP.search(text))


class _Table:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.header_cells: list[list[bool]] = []
        self.thead_rows = 0
        self.in_thead = False
        self.cell: list[str] | None = None
        self.caption: list[str] = []
        self.in_caption = False

    def new_row(self) -> None:
        self.close_cell()
        self.rows.append([])
        self.header_cells.append([])
        if self.in_thead:
            self.thead_rows += 1

    def new_cell(self, is_header: bool) -> None:
        self.close_cell()
        if not self.rows:
            self.new_row()
        self.cell = []
        self.header_cells[-1].append(is_header)

    def close_cell(self) -> None:
        if self.cell is not None and self.rows:
            self.rows[-1].append("".join(self.cell))
        self.cell = None

    def lines(self) -> list[str]:
        self.close_cell()
        header: bool | None = None
        if self.thead_rows or (self.header_cells and self.header_cells[0] and all(self.header_cells[0])
                               and len(self.header_cells[0]) > 1):
            header = True
        elif any(any(h) for h in self.header_cells):
            header = False  # <th> only down the first column: rows of "label: value"
        return table_lines(self.rows, header=header)


class HTMLBlocks:
    """Event target for lxml's HTML parser (no tree is built: linear in the input, whatever its depth):
    the readable blocks of a page, its <title> and first <h1>. Skipped: scripts, styles, <nav>, <aside>,
    forms' controls, elements with a navigation role or ``hidden``; lines that are mostly link text or
    short items between | or · (menus, breadcrumbs, footers). Tables become one sentence per row."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, skips its content)
        self.open = Counter()
        self.skip_depth = 0
        self.link_depth = 0
        self.heading_depth = 0
        self.item_depth = 0
        self.pre_depth = 0
        self.lines: list[list[tuple[str, bool]]] = [[]]  # current block: lines of (text, inside a link)
        self.tables: list[_Table] = []
        self.title = ""
        self.h1 = ""
        self._in_title = False
        self._in_h1 = False

    # -- block assembly

    def _flush(self) -> None:
        lines = self.lines
        if len(lines) == 1 and not lines[0]:
            return
        self.lines = [[]]
        if self.tables:  # text between cells of a table: part of the current cell
            return
        kind = HEADING if self.heading_depth else ITEM if self.item_depth else CODE if self.pre_depth else PARA
        kept = []
        for segments in lines:
            text = "".join(t for t, _ in segments)
            text = re.sub(r"\s+", " ", text).strip() if kind != CODE else text.rstrip()  # HTML whitespace
            if not text.strip():
                continue
            links = sum(sum(1 for ch in t if not ch.isspace()) for t, in_link in segments if in_link)
            if kind != HEADING and menu_line(text, links):
                continue
            kept.append(text)
        if not kept:
            return
        if kind == CODE:
            self.blocks += [Block(line, CODE) for line in "\n".join(kept).split("\n") if line.strip()]
        else:
            self.blocks.append(Block("\n".join(kept), kind))

    def start(self, tag, attrib):
        tag = tag.lower() if isinstance(tag, str) else ""
        role = (attrib.get("role") or "").strip().lower()
        hidden = "hidden" in attrib or (attrib.get("aria-hidden") or "").strip().lower() == "true"
        skips = tag in HTML_SKIP or role in SKIP_ROLES or hidden
        if tag == "title":
            self._in_title = True
        if self.skip_depth == 0 and not skips:
            if tag in HTML_BLOCK and not self.tables:
                self._flush()
            if tag == "br" and not self.tables:
                self.lines.append([])
            self._open_structure(tag)
        self.stack.append((tag, skips))
        self.open[tag] += 1
        self.skip_depth += skips

    def _open_structure(self, tag: str) -> None:
        if tag == "table":
            if self.tables and self.tables[-1].cell is None:
                self.tables[-1].new_cell(False)
            self.tables.append(_Table())
        elif self.tables:
            table = self.tables[-1]
            if tag == "thead":
                table.in_thead = True
            elif tag == "tr":
                table.new_row()
            elif tag in ("td", "th"):
                table.new_cell(tag == "th")
            elif tag == "caption":
                table.in_caption = True
            elif tag in HTML_BLOCK and table.cell is not None:
                table.cell.append(" ")
        if tag in HEADING_TAGS:
            self.heading_depth += 1
            if tag == "h1" and not self.h1:
                self._in_h1 = True
        elif tag == "li":
            self.item_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "a":
            self.link_depth += 1

    def end(self, tag):
        tag = tag.lower() if isinstance(tag, str) else ""
        if tag == "title":
            self._in_title = False
        if not self.open[tag]:
            return  # a stray end tag
        while self.stack:
            open_tag, skips = self.stack.pop()
            self.open[open_tag] -= 1
            self.skip_depth -= skips
            if self.skip_depth == 0 and not skips:
                self._close_structure(open_tag)
            if open_tag == tag:
                break

    def _close_structure(self, tag: str) -> None:
        if tag in HTML_BLOCK and tag not in ("br", "hr") and not self.tables:
            self._flush()
        if tag == "table" and self.tables:
            table = self.tables.pop()
            lines = table.lines()
            caption = re.sub(r"\s+", " ", "".join(table.caption)).strip()
            if self.tables and self.tables[-1].cell is not None:  # a table inside a cell: its rows, inline
                self.tables[-1].cell.append(" " + " ".join([caption] + lines if caption else lines))
            else:
                if caption:
                    self.blocks.append(Block(caption, PARA))
                self.blocks += [Block(line, ROW, len(self.blocks)) for line in lines]
            return
        if self.tables:
            table = self.tables[-1]
            if tag in ("td", "th"):
                table.close_cell()
            elif tag == "thead":
                table.in_thead = False
            elif tag == "caption":
                table.in_caption = False
            elif tag in HTML_BLOCK and table.cell is not None:
                table.cell.append(" ")
        if tag in HEADING_TAGS:
            self.heading_depth = max(0, self.heading_depth - 1)
            self._in_h1 = False
        elif tag == "li":
            self.item_depth = max(0, self.item_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag == "a":
            self.link_depth = max(0, self.link_depth - 1)

    def data(self, data):
        data = data.replace("\r\n", "\n").replace("\r", "\n")
        if self._in_title:
            self.title += data
            return
        if self.skip_depth:
            return
        if self._in_h1:
            self.h1 += data
        if self.tables:
            table = self.tables[-1]
            if table.in_caption:
                table.caption.append(data)
            elif table.cell is not None:
                table.cell.append(data)
            else:
                pass  # text between table rows (whitespace, stray text): dropped
            return
        if self.pre_depth:
            parts = data.split("\n")
            self.lines[-1].append((parts[0], self.link_depth > 0))
            for part in parts[1:]:
                self.lines.append([(part, self.link_depth > 0)])
            return
        self.lines[-1].append((data, self.link_depth > 0))

    def close(self):
        while self.tables:  # an unclosed table
            self._close_structure("table")
        self._flush()
        return None


def html_text(markup: str) -> tuple[str, str | None, list[tuple[int, int]]]:
    """(readable text, title, heading spans) of an HTML page, parsed by libxml2 (lxml) event by event.
    Raises lxml's errors, RecursionError or ValueError on markup it cannot parse."""
    from lxml import etree

    target = HTMLBlocks()
    parser = etree.HTMLParser(target=target, recover=True, no_network=True, remove_comments=True, remove_pis=True)
    parser.feed(markup)
    parser.close()
    text, headings = join_blocks(target.blocks)
    title = (target.title or target.h1).strip()
    return text, re.sub(r"\s+", " ", title) if title else None, headings


# ------------------------------------------------------------------ Word


def docx_text(document) -> tuple[str, list[tuple[int, int]]]:
    """(readable text, heading spans) of a python-docx ``Document``: paragraphs and tables in body order;
    Heading and Title styles are headings, list styles (or numbered paragraphs) list items, each table row
    a sentence."""
    from docx.table import Table

    blocks: list[Block] = []
    for part in document.iter_inner_content():
        if isinstance(part, Table):
            rows = []
            for row in part.rows:
                cells, seen = [], set()
                for cell in row.cells:  # a merged cell is listed once per grid column it spans
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    cells.append(cell.text)
                rows.append(cells)
            blocks += [Block(line, ROW, len(blocks)) for line in table_lines(rows)]
            continue
        text = part.text.strip()
        if not text:
            continue
        style = (part.style.name if part.style is not None else "") or ""
        numbered = part._p.pPr is not None and part._p.pPr.numPr is not None
        if style.startswith("Heading") or style == "Title":
            kind = HEADING
        elif "List" in style or numbered:
            kind = ITEM
        else:
            kind = PARA
        blocks.append(Block(text, kind))
    return join_blocks(blocks)


# ------------------------------------------------------------------ plain text

_WRAPPED = re.compile(r"(?<=[^\s.!?:;…])[ \t]*\n(?=[ \t]*[a-z0-9€$£(])")


def plain_text(text: str) -> str:
    """A plain-text file's text with hard-wrapped paragraph lines joined: a single line break inside a
    sentence (the line before it is 40 characters or more and ends without punctuation, the next line
    starts in lower case, a digit, a currency sign or a bracket) becomes a space. Everything else is kept
    as written."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    def join(m: re.Match) -> str:
        line_start = text.rfind("\n", 0, m.start()) + 1
        line = text[line_start:m.start()].strip()
        if len(line) < 40 or re.match(r"^(?:[-*+•]|\d{1,3}[.)])\s", line) and len(line) < 60:
            return m.group(0)
        if re.match(r"[ \t]*\(?\d{1,3}[.)]\s", text[m.end():]):  # the next line opens a numbered item
            return m.group(0)
        return " "

    return _WRAPPED.sub(join, text)
