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

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
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


class _HTMLText:
    """Event target for lxml's HTML parser: visible text with block breaks, the title and first h1."""

    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
             "section", "article", "header", "footer", "blockquote", "pre", "table", "hr", "title"}

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title = ""
        self.h1 = ""
        self._in: str | None = None

    def start(self, tag, attrib):
        tag = tag.lower() if isinstance(tag, str) else ""
        if tag in self.SKIP and tag != "head":
            self.skip_depth += 1
        if tag in ("title", "h1"):
            self._in = tag
        if tag in self.BLOCK:
            self.parts.append("\n")

    def end(self, tag):
        tag = tag.lower() if isinstance(tag, str) else ""
        if tag in self.SKIP and tag != "head" and self.skip_depth:
            self.skip_depth -= 1
        if tag == self._in:
            self._in = None
        if tag in self.BLOCK and tag not in ("br", "hr"):  # void elements: one break, at the start
            self.parts.append("\n")

    def data(self, data):
        if self._in == "title":
            self.title += data
            return
        if self.skip_depth:
            return
        if self._in == "h1":
            self.h1 += data
        self.parts.append(data)

    def close(self):
        return None


def _html_text(data: bytes) -> tuple[str, str | None]:
    from lxml import etree

    target = _HTMLText()
    parser = etree.HTMLParser(target=target, recover=True, no_network=True, remove_comments=True,
                              remove_pis=True)
    try:
        parser.feed(_decode_text(data))
        parser.close()
    except (etree.LxmlError, RecursionError, ValueError) as exc:  # pathological markup
        raise LoadError(f"unparseable HTML ({type(exc).__name__})") from None
    text = "".join(target.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = (target.title or target.h1).strip() or None
    return text, re.sub(r"\s+", " ", title) if title else None


def _pdf_text(data: bytes) -> tuple[str, str | None]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # pypdf raises several types for crypto problems
                raise LoadError(f"encrypted PDF ({exc})") from None
            if not opened:
                raise LoadError("encrypted PDF (password required)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = None
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise LoadError(f"corrupt or truncated PDF ({type(exc).__name__}: {str(exc)[:80]})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise LoadError("PDF has no text layer (scanned image?)")
    return text, title


def _docx_text(data: bytes) -> tuple[str, str | None]:
    import zipfile

    import docx

    try:
        unzipped = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(f"corrupt .docx ({type(exc).__name__})") from None
    if unzipped > MAX_UNZIPPED_BYTES:  # zipfile never inflates past the declared sizes
        raise LoadError(f".docx would unpack to {unzipped / 2**20:.0f} MB (limit "
                        f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MB): refused as a possible zip bomb")
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"corrupt .docx ({type(exc).__name__})") from None
    paragraphs = [p.text for p in document.paragraphs if p.text.strip()]
    title = (document.core_properties.title or "").strip() or None
    return "\n\n".join(paragraphs), title


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


def _decoded(decoder, data: bytes, kind: str) -> tuple[str, str | None]:
    """Run a format decoder; whatever a third-party parser raises becomes a LoadError."""
    try:
        return decoder(data)
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(f"{kind} too large to parse in memory") from None
    except Exception as exc:  # noqa: BLE001  (hostile files reach parser corners we cannot list)
        raise LoadError(f"unreadable {kind} ({type(exc).__name__}: {str(exc)[:80]})") from None


def parse_bytes(data: bytes, suffix: str) -> tuple[str, str | None, dict]:
    """Extract (text, title-or-None, metadata) from file content (metadata: ``encoding`` of a text
    file). Raises LoadError with the reason."""
    suffix = suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    if not data.strip():
        raise LoadError("empty file")
    meta: dict = {}
    if suffix in (".html", ".htm"):
        text, title = _decoded(_html_text, data, "HTML")
    elif suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise LoadError("not a PDF (missing %PDF header)")
        text, title = _decoded(_pdf_text, data, "PDF")
    elif suffix == ".docx":
        if not data.startswith(b"PK"):
            raise LoadError("not a .docx (not a zip container)")
        text, title = _decoded(_docx_text, data, ".docx")
    else:
        text, encoding = decode_text(data)
        meta["encoding"] = encoding
        title = None
        if suffix in (".md", ".markdown"):
            heading = re.search(r"^#\s+(.+)$", text, re.M)
            title = heading.group(1).strip() if heading else None
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


def load_file(path: Path, source: str | None = None) -> Document | Skipped:
    """One file to a Document, or a Skipped with the reason."""
    source = source or source_name(path)
    if not _utf8_ok(source):
        return Skipped(_printable(source), "file name is not valid UTF-8 (rename the file)")
    try:
        text, title, meta = parse_bytes(read_limited(path), path.suffix)
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
