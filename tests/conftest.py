"""Shared fixtures. Outside network is blocked for every test: only loopback
connections are allowed, so a hidden download fails the test that caused it."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "zelenskyy-ceasefire-nato-umbrella-sky-news-interview.txt"

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
    from rag.ingest import Indexer
    from rag.store import Store

    cfg = Config(data_dir=tmp_path_factory.mktemp("seedindex"), chroma_url=None, collection="documents",
                 llm="extractive")
    store = Store(cfg)
    Indexer(store).ingest_paths([SEEDS])
    return cfg, store
