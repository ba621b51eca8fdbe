"""What a new user meets in the first hour, through the real CLI, HTTP API and server: honest exit
codes, no silent overwrite, a taken port refused before anything is announced, the one model name
on /v1, usage that counts what a model read, search over HTTP, titles without the upload prefix."""

from __future__ import annotations

import socket
import time
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import seeded_assistant

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from rag.serve.app import create_app

    with TestClient(create_app(seeded_assistant(tmp_path_factory.mktemp("first-hour")))) as c:
        yield c


def rag_cli(*args, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_ingest_exits_non_zero_and_counts_the_files_it_could_not_read(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("The Lisbon office closes at 6 pm on Fridays.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    done = rag_cli("--data-dir", str(tmp_path / "d"), "ingest", str(folder))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 file(s) could not be indexed" in done.stderr and "1 added" in done.stdout
    as_json = rag_cli("--data-dir", str(tmp_path / "d"), "ingest", "--json", str(folder))
    assert as_json.returncode == 1 and '"failed"' in as_json.stdout
    (folder / "broken.pdf").unlink()
    (folder / "binary.txt").unlink()
    assert rag_cli("--data-dir", str(tmp_path / "d"), "ingest", str(folder)).returncode == 0


def test_serve_on_a_taken_port_fails_before_saying_ready(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = rag_cli("--data-dir", str(tmp_path / "d"), "serve", "--port", str(port), timeout=120)
    assert done.returncode == 1
    assert "ready" not in done.stdout and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "d" / "chroma").exists()  # refused before anything was opened or indexed


def test_an_upload_never_replaces_another_document_silently(client):
    first = client.post("/api/documents", files={"file": ("minutes.txt", b"The chair of the meeting is Dr. Amara Osei.")})
    assert first.status_code == 200, first.text
    same = client.post("/api/documents", files={"file": ("minutes.txt", b"The chair of the meeting is Dr. Amara Osei.")})
    assert same.status_code == 200 and same.json()["unchanged"] == ["upload:minutes.txt"]
    other = client.post("/api/documents", files={"file": ("minutes.txt", b"The chair is Mr. Tomas Berg.")})
    assert other.status_code == 409 and "replace=true" in other.json()["detail"]
    doc_id = first.json()["doc_id"]
    assert "Amara Osei" in client.get(f"/api/documents/{doc_id}").json()["text"]  # nothing was lost
    replaced = client.post("/api/documents?replace=true", files={"file": ("minutes.txt", b"The chair is Mr. Tomas Berg.")})
    assert replaced.status_code == 200 and replaced.json()["updated"] == ["upload:minutes.txt"]
    assert "Tomas Berg" in client.get(f"/api/documents/{doc_id}").json()["text"]
    client.delete(f"/api/documents/{doc_id}")


def test_an_untitled_upload_is_titled_by_its_file_name(client):
    r = client.post("/api/documents", files={"file": ("quarterly-review.txt", b"we met and agreed on the budget.")})
    assert r.status_code == 200
    doc = client.get(f"/api/documents/{r.json()['doc_id']}").json()
    assert doc["title"] == "Quarterly review"
    client.delete(f"/api/documents/{r.json()['doc_id']}")


def test_v1_knows_its_one_model_name(client):
    ok = client.post("/v1/chat/completions", json={"model": "grounded-rag",
                                                   "messages": [{"role": "user", "content": "When was the summit?"}]})
    assert ok.status_code == 200
    assert ok.json()["usage"] is None  # a quick answer was written by no model: nothing to count
    other = client.post("/v1/chat/completions", json={"model": "gpt-4o",
                                                      "messages": [{"role": "user", "content": "When was the summit?"}]})
    assert other.status_code == 404
    assert "grounded-rag" in other.json()["error"]["message"] and "gpt-4o" in other.json()["error"]["message"]


def test_search_over_http_gives_passages_with_exact_offsets(client):
    r = client.get("/api/search", params={"q": "NATO summit in July", "top_k": 3})
    assert r.status_code == 200, r.text
    passages = r.json()["passages"]
    assert 1 <= len(passages) <= 3 and passages[0]["rank"] == 1
    for p in passages:
        text = client.get(f"/api/documents/{p['doc_id']}").json()["text"]
        assert text[p["start"]:p["end"]] == p["text"]
    assert any("July" in p["text"] for p in passages)
    assert client.get("/api/search", params={"q": "   "}).status_code == 422
    assert client.get("/api/search").status_code == 422


# ------------------------------------------------------------------ uploads as jobs


@pytest.fixture(scope="module")
def job_client(tmp_path_factory):
    """A server whose uploads over 2,000 words are indexed as jobs."""
    from rag.serve.app import create_app

    with TestClient(create_app(seeded_assistant(tmp_path_factory.mktemp("jobs")), ui=False,
                               upload_job_words=2000)) as c:
        yield c


def ledger(lines: int) -> bytes:
    return "".join(f"Entry {i}: harbour crane {i % 17} of the Kestrabay port lifted {i * 7} containers on "
                   f"day {i % 30} of the season, and the night shift logged {i % 11} delays.\n"
                   for i in range(lines)).encode()


def wait_for_job(client, url: str, seconds: float = 300) -> tuple[dict, list[tuple[int, int | None]]]:
    seen, deadline = [], time.monotonic() + seconds
    while True:
        job = client.get(url).json()
        seen.append((job["progress"]["chunks_embedded"], job["progress"]["chunks_total"]))
        if job["state"] in ("done", "failed"):
            return job, seen
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_a_long_upload_is_a_job_with_progress_while_questions_are_answered(job_client):
    client = job_client
    started = client.post("/api/documents", files={"file": ("ledger.txt", ledger(1500))})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] in ("queued", "running") and started.headers["location"] == job["status_url"]
    # a different file under the same name, sent while the first is indexed: its job says 409
    clash = client.post("/api/documents?async=true", files={"file": ("ledger.txt", b"A short other ledger.")})
    assert clash.status_code == 202, clash.text
    # questions keep being answered meanwhile
    asked = client.post("/api/ask", json={"question": "When was the NATO summit?"})
    assert asked.status_code == 200 and asked.json()["citations"]
    assert client.get(job["status_url"]).json()["state"] in ("queued", "running")  # answered during the job
    done, seen = wait_for_job(client, job["status_url"])
    assert done["state"] == "done" and done["error"] is None, done
    total = done["progress"]["chunks_total"]
    assert total > 100 and done["progress"]["chunks_embedded"] == total and done["progress"]["fraction"] == 1.0
    assert any(0 < embedded < total for embedded, _ in seen), seen  # progress was seen between start and end
    result = done["result"]
    assert result["added"] == ["upload:ledger.txt"] and result["chunks"] == total and result["doc_id"]
    listed = {d["doc_id"]: d for d in client.get("/api/documents").json()["documents"]}
    assert listed[result["doc_id"]]["chunks"] == total
    failed, _ = wait_for_job(client, clash.json()["status_url"])
    assert failed["state"] == "failed" and failed["result"] is None
    assert failed["error"]["status"] == 409 and "replace=true" in failed["error"]["detail"]
    assert "Entry 0:" in client.get(f"/api/documents/{result['doc_id']}").json()["text"]  # nothing was replaced


def test_upload_job_on_request_and_its_refusals(job_client):
    client = job_client
    r = client.post("/api/documents?async=true", files={"file": ("short-note.txt", b"The Lisbon office closes at 6 pm.")})
    assert r.status_code == 202
    done, _ = wait_for_job(client, r.json()["status_url"], 60)
    assert done["state"] == "done" and done["result"]["added"] == ["upload:short-note.txt"]
    # what can be refused at once is refused at once, never as a job
    assert client.post("/api/documents?async=true", files={"file": ("x.exe", b"MZ")}).status_code == 415
    assert client.post("/api/documents?async=true", files={"file": ("empty.txt", b"  ")}).status_code == 422
    taken = client.post("/api/documents?async=true", files={"file": ("short-note.txt", b"Other content.")})
    assert taken.status_code == 409
    # async=false waits even for a long text
    r = client.post("/api/documents?async=false", files={"file": ("small-ledger.txt", ledger(200))})
    assert r.status_code == 200 and r.json()["added"] == ["upload:small-ledger.txt"]
    assert client.get("/api/jobs/not-a-job").status_code == 404
