"""Shared fixtures. Outside network is blocked for every test: only loopback
connections are allowed, so a hidden download fails the test that caused it."""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import socket
import zlib
from pathlib import Path

import pytest

from rag.localhost import free_port, stop_process  # noqa: F401  (tests import them from conftest)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "zelenskyy-ceasefire-nato-umbrella-sky-news-interview.txt"
# a short evidence paragraph the judge tests check claims against
JUDGE_EVIDENCE = (
    "The city council approved the new budget on Tuesday by a vote of 7 to 2. "
    "Mayor Helen Park said the decision was irreversible. "
    "Officials did not say when construction of the bridge would begin. "
    "A ceasefire between the two rebel groups was agreed in March after weeks of talks. "
    "The budget sets aside 40 million dollars for schools."
)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class OutsideNetworkBlocked(OSError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutsideNetworkBlocked(f"test tried to reach {address!r}; only loopback is allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutsideNetworkBlocked(f"test tried to reach {address!r}; only loopback is allowed")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not _is_loopback((host,)):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise OutsideNetworkBlocked(f"test tried to resolve {host!r}; only loopback is allowed") from None
        raise OutsideNetworkBlocked(f"test tried to reach {host!r}; only loopback is allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo


def pdf_bytes(text: str, compress: bytes | None = None) -> bytes:
    """A one-page PDF with a text layer (hand-written); ``compress`` replaces the content stream
    with that FlateDecode-compressed payload."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    head = b"<< /Length %d >>" % len(stream)
    if compress is not None:
        stream = zlib.compress(compress, 9)
        head = b"<< /Length %d /Filter /FlateDecode >>" % len(stream)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        head + b"\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def config(data_dir):
    from rag.config import Config

    return Config(data_dir=data_dir, chroma_url=None, collection="documents", llm="extractive")


@pytest.fixture
def seed_copy(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_ARTICLE, folder / SEED_ARTICLE.name)
    return folder


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory):
    """One indexed copy of seeds/ shared by read-only tests."""
    from rag.config import Config
    from rag.index.ingest import Indexer
    from rag.index.store import Store

    cfg = Config(data_dir=tmp_path_factory.mktemp("seedindex"), chroma_url=None, collection="documents",
                 llm="extractive")
    store = Store(cfg)
    Indexer(store).ingest_paths([SEEDS])
    return cfg, store


def seeded_assistant(root: Path):
    """An Assistant (extractive) over its own indexed copy of the seed article under ``root``, for
    tests that add or delete documents."""
    from rag.assistant import Assistant
    from rag.config import Config

    seeds = root / "seeds"
    seeds.mkdir()
    shutil.copy(SEED_ARTICLE, seeds / SEED_ARTICLE.name)
    assistant = Assistant.open(Config(data_dir=root / "data", chroma_url=None, collection="documents",
                                      llm="extractive", api_key=None))
    assistant.ingest([seeds])
    return assistant


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, one per test module (Playwright's own download fails here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def empty_assistant(data_dir: Path):
    """An Assistant (extractive, no key) over a new, empty index in ``data_dir``."""
    from rag.assistant import Assistant
    from rag.config import Config

    return Assistant.open(Config(data_dir=data_dir, chroma_url=None, collection="documents", llm="extractive",
                                 api_key=None))
