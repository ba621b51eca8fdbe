"""Files kept beside the index for paged documents (PDFs): the file itself and where its words sit
on its pages, so a citation can be shown highlighted on its page (``rag.index.page_image``).

``DATA_DIR/pages/<doc_id>/<doc_hash[:16]>.pdf`` and ``.layout.json``, one pair per committed
version. They are written before the document's record is committed (a crash leaves an unused
pair, removed with the document's next version) and removed with the document. With a Chroma
server they live on the machine that indexed the file; a replica without them has no page images
(citations still carry their page numbers, which travel with the record).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rag.index.pdf import PdfLayout


def _dir(data_dir, doc_id: str) -> Path:
    if not doc_id.isalnum():
        raise ValueError("bad doc_id")
    return Path(data_dir) / "pages" / doc_id


def save(data_dir, doc_id: str, doc_hash: str, data: bytes, layout: PdfLayout) -> None:
    folder = _dir(data_dir, doc_id)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / doc_hash[:16]
    for suffix, payload in ((".pdf", data), (".layout.json", json.dumps(layout.to_json()).encode())):
        tmp = stem.with_suffix(suffix + ".tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, stem.with_suffix(suffix))


def load(data_dir, doc_id: str, doc_hash: str) -> tuple[Path, PdfLayout] | None:
    """(pdf path, layout) of that version, or None when this machine does not hold it."""
    stem = _dir(data_dir, doc_id) / doc_hash[:16]
    pdf, layout = stem.with_suffix(".pdf"), stem.with_suffix(".layout.json")
    if not (pdf.is_file() and layout.is_file()):
        return None
    return pdf, PdfLayout.from_json(json.loads(layout.read_text()))


def remove(data_dir, doc_id: str, keep_hash: str | None = None) -> None:
    """Remove the document's files (all versions but ``keep_hash``'s, when given)."""
    folder = _dir(data_dir, doc_id)
    if not folder.is_dir():
        return
    if keep_hash is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.iterdir():
        if not path.name.startswith(keep_hash[:16] + "."):
            path.unlink(missing_ok=True)
