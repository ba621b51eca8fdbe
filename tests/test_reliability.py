"""Reliability of the real server (uvicorn on 127.0.0.1) under concurrent use.

* Queries keep answering correctly while documents are uploaded, replaced and deleted
  in the same server, and no request ever sees a half-written document: every
  citation is an exact slice of a version of its document that the test wrote, and
  every document a reader can see has all of its chunks visible (checked inside the
  server's own store while the writes run). No 5xx.
* A short run of the load benchmark (bench/load.py, 8 clients x 5 s) against
  `rag serve`: zero errors and bounded memory growth.

The helpers here (``serve_app``, ``free_port``) are shared by test_fuzz_api.py and
test_hostile_files.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, SEED_ARTICLE, free_port  # noqa: F401  (free_port is re-exported to test_fuzz_api)

pytestmark = pytest.mark.slow

SEED_QUESTIONS = ["What did Zelenskyy say about Crimea?", "When was the NATO summit?",
                  "What does Putin consider a red line?", "What would a ceasefire require?"]


@contextmanager
def serve_app(app, timeout: float = 60.0):
    """Run an ASGI app on a real uvicorn server on 127.0.0.1 in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def open_assistant(root: Path):
    """An extractive Assistant on a fresh data dir under ``root`` with the seed article indexed."""
    from rag.assistant import Assistant
    from rag.config import Config

    seeds = root / "seeds"
    seeds.mkdir(parents=True)
    shutil.copy(SEED_ARTICLE, seeds / SEED_ARTICLE.name)
    assistant = Assistant.open(Config(data_dir=root / "data", chroma_url=None, collection="documents",
                                      llm="extractive", api_key=None))
    assistant.ingest([seeds])
    return assistant


# ------------------------------------------------------------------ documents written by the test

TOWNS = ["Varnholm", "Quillbridge", "Ostravik", "Pellmere", "Drunmoor", "Kestrabay"]
TOPICS = [("harbour authority", "recorded {n} ship arrivals"), ("library board", "lent {n} books"),
          ("water utility", "repaired {n} pipes"), ("fire brigade", "answered {n} calls"),
          ("tram company", "carried {n} passengers"), ("school council", "enrolled {n} pupils"),
          ("tourist office", "counted {n} visitors"), ("bakers guild", "baked {n} loaves"),
          ("cycling club", "rode {n} kilometres"), ("choir society", "sold {n} concert tickets")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def town_document(town: str, version: int = 1) -> str:
    """A multi-chunk report whose every sentence is a distinct checkable fact about ``town``."""
    rng = random.Random(f"{town}-{version}")
    lines = [f"Annual report of {town} (edition {version})", ""]
    for topic, verb in TOPICS:
        for month in MONTHS:
            n = rng.randint(100, 99_999) + version
            lines.append(f"In {month} the {town} {topic} {verb.format(n=f'{n:,}')}, the municipal "
                         f"statistics office of {town} reported in its edition {version} review.")
        lines.append("")
    return "\n".join(lines)


def doc_id_of(name: str) -> str:
    from rag.index.loaders import doc_id_for

    return doc_id_for(f"upload:{name}")


class Probe:
    """Everything the clients saw; failures are collected, not raised, so every thread runs out."""

    def __init__(self, assistant, known: dict[str, set[str]]):
        self.assistant = assistant
        self.known = known  # doc_id -> every text the test (or the seed) ever gave it
        self.failures: list[str] = []
        self.statuses: Counter = Counter()
        self.checks = Counter()
        self.lock = threading.Lock()

    def fail(self, message: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(message)

    def status(self, what: str, r: httpx.Response) -> None:
        with self.lock:
            self.statuses[(what, r.status_code)] += 1
        if r.status_code >= 500:
            self.fail(f"{what}: {r.status_code} {r.text[:300]}")

    def chunks_complete(self, doc_id: str, where: str) -> None:
        """White-box: the committed record of ``doc_id`` and its visible chunks agree."""
        from rag.index.store import Store

        store = self.assistant.store
        for _attempt in range(3):
            try:
                record = store.document(doc_id)
            except Store.DoesNotExist:
                return  # deleted meanwhile: readers no longer see it at all
            got = store.chunks.get(where={"$and": [{"doc_id": doc_id}, {"doc_hash": record.doc_hash}]},
                                   include=["metadatas"])
            indexes = sorted(int(m["chunk_index"]) for m in got["metadatas"])
            if indexes == list(range(record.n_chunks)):
                with self.lock:
                    self.checks["complete documents"] += 1
                return
            try:  # a concurrent replace or delete may have committed between the two reads
                if store.document(doc_id).doc_hash == record.doc_hash:
                    break
            except Store.DoesNotExist:
                return
        self.fail(f"{where}: document {doc_id} is visible with chunks {indexes} of {record.n_chunks}")

    def citation_ok(self, c: dict, where: str) -> None:
        texts = self.known.get(c["doc_id"])
        if not texts:
            self.fail(f"{where}: citation of an unknown document {c['doc_id']}")
        elif not any(t[c["start"]:c["end"]] == c["quote"] for t in texts):
            self.fail(f"{where}: quote {c['quote'][:60]!r} is not text[{c['start']}:{c['end']}] of any version")
        else:
            with self.lock:
                self.checks["verified citations"] += 1


def test_queries_stay_correct_during_uploads_and_deletes(tmp_path):
    """4 reader threads and a document lister keep running while two writer threads upload six
    multi-chunk documents, replace one and delete three; bounded to ~60 s."""
    from rag.serve.app import create_app

    assistant = open_assistant(tmp_path)
    seed_id = assistant.documents()[0].doc_id
    texts = {town: town_document(town) for town in TOWNS}
    replaced = TOWNS[3]
    new_version = town_document(replaced, version=2)
    known = {seed_id: {assistant.store.document(seed_id).text}}
    for town, text in texts.items():
        known[doc_id_of(f"{town}.txt")] = {text} | ({new_version} if town == replaced else set())
    probe = Probe(assistant, known)
    writing = threading.Event()
    stop = threading.Event()
    uploaded_chunks: dict[str, int] = {}

    def reader(n: int, url: str) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, timeout=60) as client:
            i = 0
            while not stop.is_set():
                i += 1
                town = rng.choice(TOWNS)
                topic, verb = rng.choice(TOPICS)
                if i % 2:
                    question = rng.choice(SEED_QUESTIONS)
                else:
                    question = f"How many did the {town} {topic} report in {rng.choice(MONTHS)}?"
                path = "/api/ask" if i % 5 else "/v1/chat/completions"
                body = {"question": question} if path == "/api/ask" else {
                    "model": "grounded-rag", "messages": [{"role": "user", "content": question}]}
                during = writing.is_set()
                r = client.post(path, json=body)
                probe.status(path, r)
                if r.status_code != 200:
                    probe.fail(f"{path} {question!r}: {r.status_code} {r.text[:200]}")
                    continue
                answer = r.json() if path == "/api/ask" else r.json()["grounded_answer"]
                with probe.lock:
                    probe.checks["answers during writes" if during else "answers"] += 1
                if question in SEED_QUESTIONS:  # the seed must keep answering, whatever else happens
                    if answer["abstained"] or not any(c["doc_id"] == seed_id for c in answer["citations"]):
                        probe.fail(f"seed question {question!r} lost its answer: {answer['answer'][:200]}")
                for c in answer["citations"]:
                    probe.citation_ok(c, question)
                    probe.chunks_complete(c["doc_id"], question)

    def lister(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                r = client.get("/api/documents")
                probe.status("GET /api/documents", r)
                if r.status_code != 200:
                    continue
                body = r.json()
                if body["count"] != len(body["documents"]) or body["chunks"] != sum(
                        d["chunks"] for d in body["documents"]):
                    probe.fail(f"inconsistent listing: {body}")
                for d in body["documents"]:
                    if d["doc_id"] not in known:
                        probe.fail(f"unknown document listed: {d}")
                        continue
                    if not any(hashlib.sha256(t.encode()).hexdigest() == d["doc_hash"] for t in known[d["doc_id"]]):
                        probe.fail(f"listed hash matches no version written: {d}")
                    probe.chunks_complete(d["doc_id"], "listing")
                time.sleep(0.05)

    def writer(url: str, towns: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for town in towns:
                r = client.post("/api/documents", files={"file": (f"{town}.txt", texts[town].encode())})
                probe.status("POST /api/documents", r)
                if r.status_code != 200:
                    probe.fail(f"upload {town}: {r.status_code} {r.text[:200]}")
                    continue
                uploaded_chunks[town] = r.json()["chunks"]

    app = create_app(assistant, ui=False)
    with serve_app(app) as url:
        threads = [threading.Thread(target=reader, args=(n, url)) for n in range(4)]
        threads.append(threading.Thread(target=lister, args=(url,)))
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)  # readers warm up before any write
            writing.set()
            writers = [threading.Thread(target=writer, args=(url, TOWNS[0::2])),
                       threading.Thread(target=writer, args=(url, TOWNS[1::2]))]
            for w in writers:
                w.start()
            for w in writers:
                w.join(60)
            with httpx.Client(base_url=url, timeout=60) as client:
                # every new document answers its own questions once its upload returned
                for town in TOWNS:
                    question = f"How many ship arrivals did the {town} harbour authority record in March?"
                    answer = client.post("/api/ask", json={"question": question}).json()
                    assert any(c["doc_id"] == doc_id_of(f"{town}.txt") for c in answer["citations"]), answer
                # then, still under read load: replace one document and delete three, two at a time
                replace = threading.Thread(target=lambda: probe.status("replace", client.post(
                    "/api/documents?replace=true", files={"file": (f"{replaced}.txt", new_version.encode())})))
                replace.start()
                for town in TOWNS[:3]:
                    r = client.delete(f"/api/documents/{doc_id_of(town + '.txt')}")
                    probe.status("DELETE", r)
                    assert r.status_code == 200, r.text
                replace.join(60)
                time.sleep(1.0)  # readers run on the final state too
                writing.clear()
                time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        elapsed = time.monotonic() - started

        with httpx.Client(base_url=url, timeout=30) as client:
            listed = {d["doc_id"]: d for d in client.get("/api/documents").json()["documents"]}
            assert client.get("/healthz").status_code == 200
    assert not probe.failures, "\n".join(probe.failures)
    assert set(listed) == {seed_id} | {doc_id_of(f"{t}.txt") for t in TOWNS[3:]}
    assert listed[doc_id_of(f"{replaced}.txt")]["doc_hash"] == hashlib.sha256(new_version.encode()).hexdigest()
    assert all(uploaded_chunks[t] >= 5 for t in TOWNS), uploaded_chunks  # multi-chunk documents
    assert not [k for k in probe.statuses if k[1] >= 500], probe.statuses
    assert probe.checks["answers during writes"] >= 20, probe.checks
    assert probe.checks["verified citations"] >= 50 and probe.checks["complete documents"] >= 50, probe.checks
    assert elapsed < 60, f"took {elapsed:.0f}s"
    print(f"\n{elapsed:.1f}s; {dict(probe.checks)}; statuses {dict(probe.statuses)}")


# ------------------------------------------------------------------ load (short run of bench/load.py)


@pytest.mark.slow
def test_load_benchmark_short_run(tmp_path):
    """bench/load.py with 8 clients for 5 s against `rag serve` on the seed index: zero errors,
    every citation verified, server RSS growth within the benchmark's bound."""
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--clients", "8", "--seconds", "5",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == 0 and result["requests"] >= 20, result
    assert result["verified_citations"] > 0
    assert result["rss_growth_mb"] < result["rss_bound_mb"]
    assert "p99" in proc.stdout and "requests/s" in proc.stdout


def test_streams_pull_items_in_batches_in_order():
    """The SSE routes fetch a stream's items from the threadpool in batches (one thread hop per
    batch, not per word): order is kept, a slow producer still streams, and an error raised by
    the producer comes after the items before it."""
    import asyncio

    from rag.models import Answer
    from rag.serve.streaming import BatchedNext

    def words(fail: bool = False, slow: float = 0.0):
        for w in ["one", " two", " three"]:
            time.sleep(slow)
            yield w
        if fail:
            raise ValueError("model went away")
        yield Answer(answer="one two three", backend="extractive")

    async def drain(iterator):
        end, got = object(), []
        pull = BatchedNext(iterator, end, budget=0.05)
        try:
            while (item := await pull()) is not end:
                got.append(item)
        except ValueError as exc:
            got.append(f"error: {exc}")
        return got, pull

    got, _ = asyncio.run(drain(words()))
    assert got[:3] == ["one", " two", " three"] and isinstance(got[3], Answer) and len(got) == 4
    got, _ = asyncio.run(drain(words(fail=True)))
    assert got == ["one", " two", " three", "error: model went away"]
    got, _ = asyncio.run(drain(words(slow=0.03)))  # a slow producer: batches end at the time budget
    assert got[:3] == ["one", " two", " three"]
