"""Files to llama-index ``Document``s: text, stable id, source, title, content hash.

A file that cannot be read becomes a ``Skipped`` with a one-line reason;
loading never raises for a bad file. Supported: .txt .md .html/.htm .pdf .docx.

Hostile input: only regular files are read (a FIFO or device named ``x.txt`` is
skipped, never opened for a blocking read); the size limit is checked on the open
file before reading and the read itself is bounded; HTML goes through libxml2's
parser (linear time; the standard library's ``html.parser`` is quadratic on some
malformed markup: 100 KB of ``<a `` took over 8 s, growing with the square of the
size); a .docx whose parts would decompress past ``MAX_UNZIPPED_BYTES`` is refused
before it is unpacked (zip bomb); a file name that is not valid UTF-8 is skipped;
any other exception from a decoder becomes the file's skip reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from llama_index.core.schema import Document

from rag.index.markup import docx_text, html_text, markdown_text, plain_text

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv"}
MAX_FILE_BYTES = int(os.environ.get("RAG_MAX_FILE_MB", "50")) * 1024 * 1024
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024  # a .docx larger than this once unpacked is refused


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.source}: {self.reason}"


class LoadError(ValueError):
    """A file's content cannot be turned into text; the message is the reason."""


def doc_id_for(source: str) -> str:
    """Stable id of a document: derived from its source path, not its content."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def source_name(path: Path) -> str:
    """The path as shown to users: relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


# ---------------------------------------------------------------- decoders


LEGACY_ENCODINGS = ("cp1252", "iso8859_15", "latin_1", "cp1250", "cp1251", "iso8859_2", "mac_roman")


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without a BOM), UTF-16 with a BOM, else the legacy single-byte
    encoding charset-normalizer finds most likely (cp1252, latin-1 ...). Only binary data is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 at byte {exc.start}") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        at = exc.start
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data, cp_isolation=list(LEGACY_ENCODINGS)))
    if not matches:
        raise LoadError(f"not valid UTF-8 (byte {at}) and not text in a known single-byte encoding")
    # Western encodings first when they read the bytes as cleanly as any (charset-normalizer alone
    # took a French latin-1 note for cp1250: "Crčme brűlée")
    least = min(m.chaos for m in matches)
    for name in ("cp1252", "latin_1", "iso8859_15"):  # (a match lists every encoding that reads it alike)
        western = next((m for m in matches if name in (m.could_be_from_charset or [m.encoding])), None)
        if western is not None and western.chaos <= least + 0.01:
            return str(western), name
    best = min(matches, key=lambda m: (m.chaos, -m.coherence))
    return str(best), best.encoding


def _decode_text(data: bytes) -> str:
    return decode_text(data)[0]


def _html_text(data: bytes) -> tuple[str, str | None, list[tuple[int, int]]]:
    from lxml import etree

    try:
        return html_text(_decode_text(data))
    except (etree.LxmlError, RecursionError, ValueError) as exc:  # pathological markup
        raise LoadError(f"unparseable HTML ({type(exc).__name__})") from None


class PagedSource:
    """What a PDF leaves beside its text: the file and where its words sit on the pages
    (``rag.index.page_files`` keeps both so a citation can be shown on its page)."""

    def __init__(self, data: bytes, layout):
        self.data, self.layout = data, layout

    def __repr__(self) -> str:  # Document metadata is printed in places; keep it short
        return f"PagedSource({len(self.data)} bytes, {len(self.layout.words)} pages)"


MAX_PDF_PAGE_CHARS = 200_000  # a page with more characters than this is refused (decompression bomb)


def _pdf_text(data: bytes, on_page=None) -> tuple[str, str | None, dict]:
    import pypdfium2 as pdfium

    from rag.index.ocr import ocr_page
    from rag.index.pdf import read_pdf

    ocr = None if os.environ.get("RAG_OCR", "on") == "off" else ocr_page
    try:
        read = read_pdf(data, ocr=ocr, on_page=on_page, max_page_chars=MAX_PDF_PAGE_CHARS)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise LoadError("encrypted PDF (password required)") from None
        raise LoadError(f"corrupt or truncated PDF ({message[:80]})") from None
    except ValueError as exc:  # too many characters on a page
        raise LoadError(str(exc)) from None
    if not read.text.strip():
        why = read.unreadable_pages[0][1] if read.unreadable_pages else "no text"
        raise LoadError(f"PDF has no readable text ({why})")
    meta = {"page_starts": read.page_starts, "paged": PagedSource(data, read.layout)}
    if read.ocr_pages:
        meta["ocr_pages"] = read.ocr_pages
        meta["ocr_confidence"] = read.ocr_confidence
    if read.unreadable_pages:
        meta["unreadable_pages"] = read.unreadable_pages
    return read.text, read.title, meta


def _zip_checked(data: bytes, kind: str) -> None:
    """An Office file is a zip: refuse one that is not, or that would unpack past MAX_UNZIPPED_BYTES."""
    import zipfile

    if not data.startswith(b"PK"):
        raise LoadError(f"not a {kind} (not a zip container)")
    try:
        unzipped = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(f"corrupt {kind} ({type(exc).__name__})") from None
    if unzipped > MAX_UNZIPPED_BYTES:  # zipfile never inflates past the declared sizes
        raise LoadError(f"{kind} would unpack to {unzipped / 2**20:.0f} MB (limit "
                        f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MB): refused as a possible zip bomb")


def _docx_text(data: bytes) -> tuple[str, str | None, list[tuple[int, int]]]:
    import zipfile

    import docx

    _zip_checked(data, ".docx")
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"corrupt .docx ({type(exc).__name__})") from None
    text, headings = docx_text(document)  # paragraphs and tables in body order
    title = (document.core_properties.title or "").strip() or None
    return text, title, headings


def _first_line_title(text: str) -> str | None:
    """The first line when it reads like a headline: short and not a full sentence."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 120 and not line.endswith((".", "”", '"')) else None
    return None


def _title_from_name(source: str) -> str:
    name = source.split(":", 1)[1] if source.startswith("upload:") else source
    words = re.sub(r"[-_\s]+", " ", Path(name).stem).strip()
    return words[:1].upper() + words[1:] if words else source


def _decoded(decoder, data: bytes, kind: str, **options):
    """Run a format decoder; whatever a third-party parser raises becomes a LoadError."""
    try:
        return decoder(data, **options)
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(f"{kind} too large to parse in memory") from None
    except Exception as exc:  # noqa: BLE001  (hostile files reach parser corners we cannot list)
        raise LoadError(f"unreadable {kind} ({type(exc).__name__}: {str(exc)[:80]})") from None


def parse_bytes(data: bytes, suffix: str, on_page=None) -> tuple[str, str | None, dict]:
    """Extract (text, title-or-None, metadata) from file content. Metadata: ``encoding`` of a text
    file; for a PDF ``page_starts`` (where each page begins in the text), ``paged`` (the file and its
    word boxes), ``ocr_pages``/``ocr_confidence`` and ``unreadable_pages`` when pages had no text
    layer. ``on_page(n, total)`` is told of each PDF page read. Raises LoadError with the reason."""
    suffix = suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    if not data.strip():
        raise LoadError("empty file")
    meta: dict = {}
    if suffix in (".html", ".htm"):
        text, title, meta["headings"] = _decoded(_html_text, data, "HTML")
    elif suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise LoadError("not a PDF (missing %PDF header)")
        text, title, meta = _decoded(_pdf_text, data, "PDF", on_page=on_page)
    elif suffix == ".docx":
        text, title, meta["headings"] = _decoded(_docx_text, data, ".docx")
    elif suffix == ".pptx":  # one page per slide: citations say which slide
        from rag.index.office import pptx_text

        _zip_checked(data, ".pptx")
        text, title, meta["page_starts"], meta["headings"] = _decoded(pptx_text, data, ".pptx")
    elif suffix == ".xlsx":  # rows as sentences naming their columns
        from rag.index.office import xlsx_text

        _zip_checked(data, ".xlsx")
        text, title = _decoded(xlsx_text, data, ".xlsx")
    elif suffix == ".csv":
        from rag.index.office import csv_text

        decoded, meta["encoding"] = decode_text(data)
        text, title = _decoded(lambda d: csv_text(d), decoded, ".csv"), None
    else:
        text, encoding = decode_text(data)
        meta["encoding"] = encoding
        title = None
        if suffix in (".md", ".markdown"):  # stored as readable text: no Markdown syntax reaches a quote
            text, title, meta["headings"] = markdown_text(text)
        else:  # hard-wrapped lines of a paragraph joined
            text = plain_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("no text in file")
    control = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\t\f\v")
    if control > 0.01 * min(len(text), 20000):
        raise LoadError("binary content (control characters), not text")
    return text, title, meta


def make_document(text: str, source: str, title: str | None = None, **extra) -> Document:
    doc_id = doc_id_for(source)
    title = title or _first_line_title(text) or _title_from_name(source)
    metadata = {"doc_id": doc_id, "source": source, "title": title, "doc_hash": content_hash(text), **extra}
    return Document(id_=doc_id, text=text, metadata=metadata)


def load_file(path: Path, source: str | None = None, on_page=None) -> Document | Skipped:
    """One file to a Document, or a Skipped with the reason."""
    source = source or source_name(path)
    if not _utf8_ok(source):
        return Skipped(_printable(source), "file name is not valid UTF-8 (rename the file)")
    try:
        text, title, meta = parse_bytes(read_limited(path), path.suffix, on_page=on_page)
    except LoadError as exc:
        return Skipped(source, str(exc))
    except OSError as exc:
        return Skipped(source, f"cannot read ({exc.strerror or exc})")
    return make_document(text, source, title, **meta)


def _utf8_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a file name arrive as lone surrogates
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_limited(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (default MAX_FILE_BYTES).

    The size is checked before anything is read, and the read stops at limit + 1 bytes,
    so a file that grows meanwhile cannot exhaust memory. FIFOs, devices and sockets are
    refused without a blocking open (O_NONBLOCK). Raises LoadError or OSError."""
    limit = MAX_FILE_BYTES if limit is None else limit
    too_large = "too large ({} MB > " + f"{limit / 2**20:.0f} MB limit, RAG_MAX_FILE_MB)"
    if not stat.S_ISREG(path.stat().st_mode):
        raise LoadError("not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):  # swapped after the check above
            raise LoadError("not a regular file")
        if info.st_size > limit:
            raise LoadError(too_large.format(f"{info.st_size / 2**20:.0f}"))
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise LoadError(too_large.format(f"{len(data) / 2**20:.0f}+"))
    return data


def iter_files(paths: list[Path]) -> Iterator[Path | Skipped]:
    """Files under the given paths, sorted; symlinks leaving their folder and hidden files are skipped."""
    for root in paths:
        if not root.exists():
            yield Skipped(str(root), "no such file or directory")
            continue
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            yield Skipped(str(root), "not a regular file or folder")
            continue
        real_root = root.resolve()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                if not _utf8_ok(str(path)):
                    yield Skipped(_printable(source_name(path)), "file name is not valid UTF-8 (rename the file)")
                    continue
                if path.suffix.lower() not in SUPPORTED:
                    yield Skipped(source_name(path), f"unsupported file type {path.suffix or '(none)'}")
                    continue
                if path.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(real_root):  # named by the link, not its target
                        yield Skipped(source_name(Path(dirpath).resolve()) + "/" + name,
                                      "symlink points outside the folder")
                        continue
                yield path
