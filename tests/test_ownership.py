"""The data-directory owner lock (rag/index/ownership.py) on its own."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from rag.index.ownership import LOCK_NAME, DataDirBusy, own


def test_second_owner_is_refused_with_who_holds_it(tmp_path):
    with own(tmp_path, "serve", "http://127.0.0.1:7860/"):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["role"] == "serve" and holder["url"] == "http://127.0.0.1:7860/"
        with pytest.raises(DataDirBusy, match=r"served by `rag serve`.*curl -F file=@report.pdf "
                                              r"http://127.0.0.1:7860/api/documents"):
            with own(tmp_path, "ingest"):
                pass
        with pytest.raises(DataDirBusy, match="already served by"):
            with own(tmp_path, "serve", "http://127.0.0.1:9999/"):
                pass
    with own(tmp_path, "ingest"):  # released on exit
        with pytest.raises(DataDirBusy, match="`rag ingest` .* is writing"):
            with own(tmp_path, "serve"):
                pass


def _hold_and_die(path, ready):
    import os

    with own(path, "ingest"):
        ready.set()
        os._exit(9)  # no cleanup at all, like kill -9


def test_a_dead_owner_releases_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_and_die, args=(tmp_path, ready))
    proc.start()
    assert ready.wait(30)
    proc.join(30)
    with own(tmp_path, "serve"):  # the kernel dropped the dead process's lock
        pass
