"""Hostile files and documents.

* A corpus of hostile files generated here (binary renamed .txt, invalid UTF-8, truncated,
  encrypted and decompression-bomb PDFs, a .docx zip bomb, a 200 MB sparse file, 100k
  nested <div>s, tag soup that is quadratic for Python's html.parser, a zero-byte file,
  symlinks out of the folder and to nowhere, a FIFO, a name that is not UTF-8): a folder
  ingest skips each with a reason, indexes the rest, and finishes quickly; the size limit
  is applied before a byte of the big file is read.
* The same files uploaded to the real server (uvicorn on 127.0.0.1): each refused with a
  4xx and a reason (415 type, 413 size, 422 unreadable), upload names with path
  separators and `..` are reduced to a base name, nothing is written outside the data
  directory (the working directory, the data directory's parent and the temp directory
  are compared before and after), and the server keeps answering.
* A document carrying `javascript:` links (HTML and Markdown forms) shown in the chat UI
  in headless Chromium: no <a href="javascript:..."> exists in the rendered page and
  nothing runs.
"""

from __future__ import annotations

import io
import os
import random
import re
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import httpx
import pytest

from conftest import SEED_ARTICLE, pdf_bytes
from test_reliability import SEED_QUESTIONS, open_assistant, serve_app

GOOD_TXT = ("Harbour report\n\nThe Varnholm harbour authority recorded 4,812 ship arrivals in March, "
            "the port office said. Night pilots guided most of the larger vessels.\n")
GOOD_HTML = (b"<html><head><title>Lantern parade</title><script>window.__pwned=1</script></head><body>"
             b"<h1>Lantern parade</h1><p>The Quillbridge lantern parade drew 12,300 people on Saturday "
             b"evening, organisers said.</p></body></html>")
DEEP_TEXT = "The deep document says the Ostravik ferry carried 7,777 passengers."


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes("A secret harbour memo"))))
    writer.encrypt(user_password="user-secret", owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bomb() -> bytes:
    """A real .docx whose document.xml claims 300 MB once inflated (about 300 KB on disk)."""
    import docx

    doc = docx.Document()
    doc.add_paragraph("bomb")
    buf = io.BytesIO()
    doc.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                data = data.replace(b"bomb", b"A" * 300_000_000)
            z.writestr(info.filename, data)
    return out.getvalue()


# name -> (bytes, expected reason) for files that must be refused, whatever the route
HOSTILE = {
    "binary.txt": (random.Random(1).randbytes(50_000), "binary"),
    "renamed-png.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(2000), "binary"),
    "control-chars.md": (("text\x01\x02\x03\x1b[31m" * 2000).encode(), "binary"),
    "zero.txt": (b"", "empty"),
    "truncated.pdf": (pdf_bytes("This PDF will be cut in half")[:180], "PDF"),
    "bomb.pdf": (pdf_bytes("", compress=b"BT /F1 12 Tf 72 720 Td (x) Tj ET\n" * 5_000_000), "PDF"),
    "fake.pdf": (b"MZ\x90\x00 not a pdf at all", "not a PDF"),
    "fake.docx": (b"PK\x03\x04 truncated zip", "docx"),
}


@pytest.fixture(scope="module")
def hostile_bytes():
    files = {name: data for name, (data, _) in HOSTILE.items()}
    files["encrypted.pdf"] = encrypted_pdf()
    files["bomb.docx"] = docx_bomb()
    return files


REASONS = {**{name: reason for name, (_, reason) in HOSTILE.items()},
           "encrypted.pdf": "encrypted", "bomb.docx": "zip bomb"}


def build_corpus(root: Path, hostile_bytes: dict[str, bytes]) -> Path:
    folder = root / "corpus"
    folder.mkdir(parents=True)
    for name, data in hostile_bytes.items():
        (folder / name).write_bytes(data)
    (folder / "good.txt").write_text(GOOD_TXT, encoding="utf-8")
    (folder / "good.html").write_bytes(GOOD_HTML)
    (folder / "good.pdf").write_bytes(pdf_bytes("The Pellmere tram company carried 91,000 passengers in May"))
    (folder / "nested.html").write_text("<html><body>" + "<div>" * 100_000 + DEEP_TEXT + "</div>" * 100_000
                                        + "</body></html>", encoding="utf-8")
    # quadratic for the standard library's html.parser (minutes); must stay linear
    (folder / "tagsoup.html").write_text("<p>Tag soup from Drunmoor survived the parser.</p>" + "<a " * 200_000
                                         + "<!" * 200_000 + "</" * 200_000, encoding="utf-8")
    with open(folder / "huge.txt", "wb") as fh:  # 200 MB, sparse: costs no disk
        fh.truncate(200 * 2**20)
    outside = root / "outside-secret.txt"
    outside.write_text("A secret outside the folder.", encoding="utf-8")
    (folder / "link-outside.txt").symlink_to(outside)
    (folder / "link-to-etc.txt").symlink_to("/etc/passwd")
    (folder / "dangling.txt").symlink_to(folder / "does-not-exist.txt")
    os.mkfifo(folder / "fifo.txt")  # reading it would block forever
    (folder / "sub").mkdir()
    (folder / "sub" / "loop").symlink_to(folder)  # a directory loop
    with open(os.path.join(os.fsencode(folder), b"name-\xff\xfe.txt"), "wb") as fh:  # not UTF-8
        fh.write(b"A file whose name is not UTF-8.")
    (folder / "malware.exe").write_bytes(b"MZ\x90\x00")
    return folder


EXPECTED_FOLDER_REASONS = {**REASONS, "huge.txt": "too large", "link-outside.txt": "outside",
                           "link-to-etc.txt": "outside",
                           "does-not-exist.txt": "cannot read",  # dangling.txt, named by its target
                           "fifo.txt": "not a regular file",
                           "name-\ufffd\ufffd.txt": "not valid UTF-8", "malware.exe": "unsupported"}


@pytest.mark.timeout(120)
def test_folder_ingest_skips_hostile_files_with_reasons(tmp_path, hostile_bytes, config):
    from rag.index.ingest import Indexer
    from rag.index.store import Store

    folder = build_corpus(tmp_path, hostile_bytes)
    store = Store(config)
    started = time.monotonic()
    report = Indexer(store).ingest_paths([folder])
    elapsed = time.monotonic() - started
    failed = {Path(s.source).name: s.reason for s in report.failed}
    for name, reason in EXPECTED_FOLDER_REASONS.items():
        assert name in failed, (name, failed)
        assert reason.lower() in failed[name].lower(), (name, failed[name])
        assert "\n" not in failed[name] and len(failed[name]) < 300
    added = {Path(s).name for s in report.added}
    assert added == {"good.txt", "good.html", "good.pdf", "nested.html", "tagsoup.html"}, (added, failed)
    assert set(failed) == set(EXPECTED_FOLDER_REASONS), set(failed) ^ set(EXPECTED_FOLDER_REASONS)
    assert elapsed < 60, f"ingest took {elapsed:.0f}s"
    texts = {Path(r.source).name: store.document(r.doc_id).text for r in store.documents()}
    assert DEEP_TEXT in texts["nested.html"]
    assert "window.__pwned" not in texts["good.html"] and "12,300 people" in texts["good.html"]
    assert "Drunmoor survived" in texts["tagsoup.html"]
    assert not any("secret" in t.lower() for t in texts.values())  # nothing from outside the folder

    # idempotent: a second run changes nothing and skips the same files
    again = Indexer(store).ingest_paths([folder])
    assert not again.added and not again.updated and len(again.unchanged) == len(added)
    assert {Path(s.source).name for s in again.failed} == set(failed)


def test_size_limit_is_checked_before_reading(tmp_path):
    """The 200 MB file is refused from its size: no buffer of it is ever allocated."""
    from rag.index.loaders import LoadError, Skipped, load_file, read_limited

    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(200 * 2**20)
    tracemalloc.start()
    try:
        result = load_file(huge)
        with pytest.raises(LoadError, match="too large"):
            read_limited(huge)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, Skipped) and "too large (200 MB > 50 MB" in result.reason
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MB allocated while refusing a 200 MB file"
    # the limit is a parameter: the same check serves other callers
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 2000)
    with pytest.raises(LoadError, match="too large"):
        read_limited(small, limit=1000)


@pytest.mark.timeout(60)
def test_pathological_html_parses_in_linear_time():
    from rag.index.loaders import LoadError, parse_bytes

    for unit in ("<a ", "<!", "</", "<", "<a b='", "<![ >", "<div>", "<table><tr><td>"):
        data = (unit * (2_000_000 // len(unit)) + "<p>end of soup</p>").encode()
        started = time.monotonic()
        try:
            parse_bytes(data, ".html")
        except LoadError:
            pass
        assert time.monotonic() - started < 10, unit


# ------------------------------------------------------------------ uploads to the real server


def snapshot(*folders: Path) -> set[str]:
    found = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                found.add(os.path.join(dirpath, name))
    return found


UPLOAD_NAMES = {  # name sent -> name it must be indexed under
    "../../evil-one.txt": "evil-one.txt",
    "..\\..\\..\\evil-two.txt": "evil-two.txt",
    "/etc/evil-three.txt": "evil-three.txt",
    "sub/dir/evil-four.txt": "evil-four.txt",
    "C:\\Windows\\evil-five.txt": "evil-five.txt",
    "..evil-six.txt": "evil-six.txt",
    ".evil-seven.md": "evil-seven.md",
    "evil\u202eeight.txt": "evileight.txt",  # the bidi override is dropped
    "%2e%2e%2fevil-nine.txt": "%2e%2e%2fevil-nine.txt",  # no decoding: stays a harmless literal name
}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_uploads_refuse_hostile_files_and_never_write_outside(tmp_path, hostile_bytes, monkeypatch):
    from rag.serve.app import create_app

    work = tmp_path / "work"  # the server's working directory
    work.mkdir()
    spool = tmp_path / "spool"  # where Starlette spools large multipart parts
    spool.mkdir()
    assistant = open_assistant(tmp_path / "srv")
    data_dir = Path(assistant.config.data_dir)
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    watched = [work, data_dir.parent, spool]
    before = snapshot(*watched)

    with serve_app(create_app(assistant, ui=False, max_upload_bytes=2 * 2**20)) as url:
        client = httpx.Client(base_url=url, timeout=120)
        for name, data in hostile_bytes.items():
            r = client.post("/api/documents", files={"file": (name, data)})
            assert r.status_code == 422, (name, r.status_code, r.text[:300])
            assert REASONS[name].lower() in r.json()["detail"].lower(), (name, r.json()["detail"])
        # type limit
        for name in ("malware.exe", "noext", "archive.tar.gz", "page.php", "image.svg"):
            r = client.post("/api/documents", files={"file": (name, b"<svg onload=alert(1)>")})
            assert r.status_code == 415 and "unsupported" in r.json()["detail"], (name, r.text)
        # size limit: a 3 MB file over the 2 MB limit, and a 200 MB body announced in the headers
        r = client.post("/api/documents", files={"file": ("big.txt", b"word " * (600 * 1024))})
        assert r.status_code == 413 and "larger" in r.json()["detail"], r.text
        from test_fuzz_api import raw_http  # httpx refuses to send a false Content-Length

        status, raw = raw_http(url, b"POST /api/documents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                    b"Content-Type: multipart/form-data; boundary=x\r\n"
                                    b"Content-Length: 209715200\r\n\r\n--x\r\n")
        assert status == 413, raw[:300]
        # a 1.2 MB upload is under the limit but over Starlette's 1 MB in-memory spool (mostly markup,
        # so it makes one chunk: embedding megabytes of text takes minutes on 2 cores)
        big_ok = ("<p>Spooled upload about the Kestrabay choir.</p>" + "<b></b>" * 180_000).encode()
        r = client.post("/api/documents", files={"file": ("spooled.html", big_ok)})
        assert r.status_code == 200, r.text[:300]
        # deeply nested and tag-soup HTML, uploaded: parsed quickly
        started = time.monotonic()
        r = client.post("/api/documents", files={"file": ("nested.html", (
            "<div>" * 100_000 + DEEP_TEXT + "</div>" * 100_000).encode())})
        assert r.status_code == 200, r.text[:300]
        r = client.post("/api/documents", files={"file": ("soup.html", ("<p>Soup from Drunmoor.</p>"
                                                                         + "<a " * 300_000).encode())})
        assert r.status_code in (200, 422), r.text[:300]
        assert time.monotonic() - started < 30
        # names with path separators and ..: reduced to a base name, indexed under upload:NAME
        for sent, expected in UPLOAD_NAMES.items():
            r = client.post("/api/documents", files={"file": (sent, f"Upload named {expected} about harbours.".encode())})
            assert r.status_code == 200, (sent, r.text[:300])
            assert r.json()["filename"] == expected and r.json()["added"] == [f"upload:{expected}"], (sent, r.json())
        for bad in ("..", "../..", "/", "...", "\x00", "\u202e"):
            r = client.post("/api/documents", files={"file": (bad, b"x")})
            assert r.status_code in (415, 422), (bad, r.status_code, r.text[:200])
        # a file name that is not UTF-8, sent as raw multipart bytes
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"na\xff\xfe\x00me.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\nRaw name upload about harbours.\r\n--b--\r\n")
        r = client.post("/api/documents", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code in (200, 415, 422), r.text[:300]

        # the server is up and still answers from the seed and from what was accepted
        assert client.get("/healthz").json()["status"] == "ok"
        answer = client.post("/api/ask", json={"question": SEED_QUESTIONS[0]}).json()
        assert not answer["abstained"] and any(c["source"].endswith(SEED_ARTICLE.name) for c in answer["citations"])
        answer = client.post("/api/ask", json={"question": "How many passengers did the Ostravik ferry carry?"}).json()
        assert any("7,777" in c["quote"] for c in answer["citations"]), answer
        sources = {d["source"] for d in client.get("/api/documents").json()["documents"]}
        client.close()

    assert {f"upload:{n}" for n in UPLOAD_NAMES.values()} <= sources
    after = snapshot(*watched)
    new = after - before
    outside_data = [p for p in new if not Path(p).is_relative_to(data_dir)]
    assert not outside_data, outside_data  # nothing new in the cwd, next to the data dir, or in temp
    assert not [p for p in snapshot(data_dir) if "evil" in p or "spooled" in p or "soup" in p]
    assert not list(Path("/").glob("evil*")) and not list(Path("/etc").glob("evil*"))
    assert not list(tmp_path.rglob("evil*"))


# ------------------------------------------------------------------ hostile documents in the UI

JS_DOC = ("Harbour Lights programme\n"
          "The Harbour Lights festival in Tallinn drew 40,000 visitors in its first weekend, organisers said; "
          "see [the programme](javascript:window.__pwned=1) and <a href=\"javascript:window.__pwned=2\">tickets</a> "
          "or [map](  JaVaScRiPt:window.__pwned=3 ) and <javascript:window.__pwned=4> for details.\n"
          "The lantern parade was moved to the old harbour because of strong winds, "
          "as [the weather office](javascript:void(window.__pwned=5)) warned.\n")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="/usr/bin/chromium is missing")
@pytest.mark.timeout(180)
def test_javascript_links_in_documents_are_never_links_in_the_ui(tmp_path):
    from playwright.sync_api import sync_playwright

    from rag.serve.app import create_app

    assistant = open_assistant(tmp_path)
    assistant.add_document(JS_DOC.encode(), "harbour-lights.txt")
    with serve_app(create_app(assistant)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page()
            outside: list[str] = []
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                (url, "data:", "blob:")) else (outside.append(route.request.url), route.abort()))
            page.goto(url)
            for question in ("How many visitors did the Harbour Lights festival draw?",
                             "Why was the lantern parade moved to the old harbour?"):
                page.wait_for_selector("#question textarea", timeout=60_000)
                page.fill("#question textarea", question)
                page.click("#ask")
                page.locator("#chat .cite-card mark").last.wait_for(timeout=60_000)
                page.wait_for_function("!document.querySelector('#chat')?.innerText.includes('▍')", timeout=30_000)
            chat = page.inner_text("#chat")
            assert "javascript:window.__pwned=1" in chat and "40,000 visitors" in chat  # shown, as text
            hrefs = page.evaluate("[...document.querySelectorAll('a[href], area[href], [xlink\\\\:href]')]"
                                  ".map(a => a.getAttribute('href') || a.getAttribute('xlink:href'))")
            assert not [h for h in hrefs if re.sub(r"[\s\x00-\x1f]", "", h or "").lower().startswith("javascript:")], hrefs
            for link in page.locator("#chat a").all():  # whatever links exist in the chat, clicking runs nothing
                try:
                    link.click(timeout=2000, modifiers=[])
                except Exception:  # noqa: BLE001  (not clickable is fine)
                    pass
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert outside == []
        finally:
            browser.close()
