"""A PDF page as a PNG with a quote highlighted on it.

The page is rendered by pdfium from the file kept beside the index (``rag.index.page_files``),
and the boxes of the words of text[start:end] on that page (``PdfLayout.boxes``: text layer or
OCR alike) are drawn over it: a translucent yellow fill with an outline, one box per line, so a
quote over a line break shows as two boxes and a quote over a page break shows on both pages.

Bounded: at most ``MAX_WIDTH`` pixels wide and ``MAX_PIXELS`` in all, rendered under pdfium's lock
(one pdfium call at a time per process, which pdfium requires; a burst of requests queues), and
kept in a small LRU cache keyed by document version, page and span.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from rag.index.pdf import PDFIUM_LOCK, PdfLayout

MAX_WIDTH = 1400
MAX_PIXELS = 4_000_000
CACHE_ENTRIES = 64
FILL = (255, 214, 0, 90)
OUTLINE = (230, 120, 0, 255)

_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def render_png(pdf_path: Path, layout: PdfLayout, page: int, start: int | None = None, end: int | None = None,
               cache_key: tuple | None = None) -> bytes:
    """PNG of page ``page`` (1-based) with text[start:end]'s boxes on that page highlighted."""
    key = (cache_key, page, start, end) if cache_key is not None else None
    if key is not None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    width, height = layout.page_sizes[page - 1]
    scale = min(MAX_WIDTH / max(width, 1.0), (MAX_PIXELS / max(width * height, 1.0)) ** 0.5, 4.0)
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(str(pdf_path))
        try:
            image = doc[page - 1].render(scale=scale).to_pil().convert("RGBA")
        finally:
            doc.close()
    if start is not None and end is not None and end > start:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        pad = 2
        for x0, top, x1, bottom in layout.boxes(page - 1, start, end):
            draw.rectangle([x0 * scale - pad, top * scale - pad, x1 * scale + pad, bottom * scale + pad],
                           fill=FILL, outline=OUTLINE, width=2)
        image = Image.alpha_composite(image, overlay)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False)
    data = out.getvalue()
    if key is not None:
        with _cache_lock:
            _cache[key] = data
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return data
