from pathlib import Path

from rag.index.loaders import Skipped, iter_files, load_file, parse_bytes, LoadError

import pytest

from conftest import pdf_bytes


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_txt_md_html_pdf_docx_load(tmp_path):
    import docx

    _write(tmp_path, "a.txt", "Headline here\nBody text of the article.".encode())
    _write(tmp_path, "b.md", b"# Markdown Title\n\nSome *text*.")
    _write(tmp_path, "c.html", b"<html><head><title>Page T</title><style>p{color:red}</style>"
           b"<script>alert('x')</script></head><body><h1>Big</h1><p>Visible &amp; kept.</p></body></html>")
    _write(tmp_path, "d.pdf", pdf_bytes("Hello from a PDF text layer"))
    d = docx.Document()
    d.add_paragraph("Word paragraph one.")
    d.add_paragraph("Word paragraph two.")
    d.save(tmp_path / "e.docx")

    docs = {p.name: load_file(p) for p in iter_files([tmp_path])}
    assert all(not isinstance(d, Skipped) for d in docs.values()), docs
    assert docs["a.txt"].metadata["title"] == "Headline here"
    assert docs["b.md"].metadata["title"] == "Markdown Title"
    html = docs["c.html"]
    assert html.metadata["title"] == "Page T"
    assert "Visible & kept." in html.text and "alert" not in html.text and "color" not in html.text
    assert "Hello from a PDF text layer" in docs["d.pdf"].text
    assert docs["e.docx"].text == "Word paragraph one.\n\nWord paragraph two."
    for doc in docs.values():
        assert len(doc.metadata["doc_id"]) == 16 and len(doc.metadata["doc_hash"]) == 64


def test_doc_id_is_stable_and_hash_tracks_content(tmp_path):
    path = _write(tmp_path, "x.txt", b"first version")
    a = load_file(path)
    path.write_bytes(b"second version")
    b = load_file(path)
    assert a.metadata["doc_id"] == b.metadata["doc_id"]
    assert a.metadata["doc_hash"] != b.metadata["doc_hash"]


@pytest.mark.parametrize("name,data,reason", [
    ("empty.txt", b"", "empty"),
    ("blank.txt", b"  \n\t ", "empty"),
    ("binary.txt", b"\x00\x01\x02ELF\x00\x00", "binary"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj <<", "PDF"),
    ("fake.pdf", b"just text pretending", "not a PDF"),
    ("fake.docx", b"not a zip", "docx"),
])
def test_bad_files_are_skipped_with_reason(tmp_path, name, data, reason):
    result = load_file(_write(tmp_path, name, data))
    assert isinstance(result, Skipped)
    assert reason.lower() in result.reason.lower()
    assert "\n" not in result.reason


def test_bad_file_does_not_stop_the_rest(tmp_path):
    _write(tmp_path, "good.txt", b"A good article about ceasefires.")
    _write(tmp_path, "bad.txt", b"\x00\x00\x00")
    _write(tmp_path, "image.png", b"\x89PNG")
    results = [f if isinstance(f, Skipped) else load_file(f) for f in iter_files([tmp_path])]
    good = [r for r in results if not isinstance(r, Skipped)]
    bad = {r.source.rsplit("/", 1)[-1]: r.reason for r in results if isinstance(r, Skipped)}
    assert [d.text for d in good] == ["A good article about ceasefires."]
    assert set(bad) == {"bad.txt", "image.png"}


def test_symlink_outside_folder_is_skipped(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    (folder / "ok.txt").write_text("fine")
    results = list(iter_files([folder]))
    skipped = [r for r in results if isinstance(r, Skipped)]
    assert len(skipped) == 1 and "outside" in skipped[0].reason
    assert [p.name for p in results if not isinstance(p, Skipped)] == ["ok.txt"]


def test_unsupported_type_raises_load_error():
    with pytest.raises(LoadError):
        parse_bytes(b"data", ".exe")


@pytest.mark.parametrize("data,encoding,expected", [
    ("The caf\u00e9 closes at 6 pm \u2013 \u201cevery Friday\u201d, \u20ac5 a coffee.".encode("cp1252"), "cp1252",
     "The caf\u00e9 closes at 6 pm \u2013 \u201cevery Friday\u201d, \u20ac5 a coffee."),
    ("Cr\u00e8me br\u00fbl\u00e9e, na\u00efve fa\u00e7ade, se\u00f1or, \u00fcber: a latin-1 note.".encode("latin-1"),
     None, "Cr\u00e8me br\u00fbl\u00e9e, na\u00efve fa\u00e7ade, se\u00f1or, \u00fcber: a latin-1 note."),
    ("Notes in UTF-16 with a byte order mark: \u00e9t\u00e9.".encode("utf-16"), "utf-16",
     "Notes in UTF-16 with a byte order mark: \u00e9t\u00e9."),
])
def test_text_in_the_encodings_people_have_is_read_and_recorded(tmp_path, data, encoding, expected):
    doc = load_file(_write(tmp_path, "note.txt", data))
    assert not isinstance(doc, Skipped), doc
    assert doc.text == expected
    if encoding:
        assert doc.metadata["encoding"] == encoding
    assert doc.metadata["encoding"] != "utf-8"
