"""Uploads as jobs: a large upload is indexed in the background while questions keep being answered.

``POST /api/documents`` answers ``202`` with a job for a file whose text is long (or with
``?async=true``); ``GET /api/jobs/{job_id}`` tells its state (queued, running, done, failed), its
progress (chunks embedded of the chunks to embed) and, once it ended, the body a synchronous upload
returns or the error with its status (e.g. 409 when another document has that name). Jobs run one at
a time (writes to the index are serialised anyway), in this process; a finished job is kept for an
hour (at most 500 are kept), then forgotten. A restart forgets jobs, not what they indexed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from rag.serve.errors import APIError

log = logging.getLogger("rag.serve.jobs")

KEEP_SECONDS = 3600
KEEP_MAX = 500
MAX_WAITING = 8  # queued jobs (each holds its upload's bytes and text until it runs)


class JobError(BaseModel):
    status: int = Field(description="The HTTP status the synchronous upload would have answered")
    detail: str


class JobProgress(BaseModel):
    pages_read: int = Field(0, description="PDF pages read so far (scanned pages are read by OCR, seconds each)")
    pages_total: int | None = None
    chunks_embedded: int = 0
    chunks_total: int | None = Field(None, description="Chunks to embed (known once the text is chunked)")
    fraction: float = Field(0.0, description="chunks_embedded / chunks_total (1.0 when done)")


class JobInfo(BaseModel):
    job_id: str
    kind: Literal["upload"] = "upload"
    filename: str
    bytes: int
    state: Literal["queued", "running", "done", "failed"]
    progress: JobProgress
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = Field(None, description="When done: the body a synchronous upload returns")
    error: JobError | None = Field(None, description="When failed: the status and reason")
    status_url: str


class Job:
    def __init__(self, filename: str, size: int, collection: str | None = None):
        self.id = uuid.uuid4().hex[:16]
        self.filename, self.size = filename, size
        self.collection = collection  # a key limited to collections sees the jobs of its collections only
        self.state = "queued"
        self.done, self.total = 0, None
        self.pages, self.pages_total = 0, None
        self.created_at, self.started_at, self.finished_at = time.time(), None, None
        self.result: dict | None = None
        self.error: JobError | None = None

    def progress(self, done: int, total: int, *, pages: bool = False) -> None:
        """Chunks embedded of those to embed; with ``pages``, PDF pages read of the file's pages."""
        if pages:
            self.pages, self.pages_total = done, total
        else:
            self.done, self.total = done, total

    def info(self) -> JobInfo:
        total = self.total
        fraction = 1.0 if self.state == "done" else (self.done / total if total else 0.0)
        return JobInfo(job_id=self.id, filename=self.filename, bytes=self.size, state=self.state,
                       progress=JobProgress(pages_read=self.pages, pages_total=self.pages_total,
                                            chunks_embedded=self.done, chunks_total=total,
                                            fraction=round(min(fraction, 1.0), 4)),
                       created_at=self.created_at, started_at=self.started_at, finished_at=self.finished_at,
                       result=self.result, error=self.error, status_url=f"/api/jobs/{self.id}")


class Jobs:
    """The upload jobs of one server: one runs at a time, in a background thread."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-job")

    def submit(self, filename: str, size: int, work: Callable[[Callable[[int, int], None]], dict],
               collection: str | None = None) -> Job:
        """Run ``work(progress)`` as a job; it returns the result body or raises APIError(status, detail).
        At most ``MAX_WAITING`` jobs wait (each holds its upload in memory): past that, APIError 429."""
        job = Job(filename, size, collection)
        with self._lock:
            self._forget_old()
            waiting = sum(1 for j in self._jobs.values() if j.state == "queued")
            if waiting >= MAX_WAITING:
                raise APIError(429, f"{waiting} uploads are waiting to be indexed; try again when they are done",
                               {"Retry-After": "30"})
            self._jobs[job.id] = job

        def run() -> None:
            job.state, job.started_at = "running", time.time()
            try:
                job.result = work(job.progress)
                if job.total:
                    job.done = job.total
                job.state = "done"
            except APIError as exc:
                job.error, job.state = JobError(status=exc.status, detail=exc.detail), "failed"
            except Exception as exc:  # noqa: BLE001  (reported in the job, like a 503 of the sync upload)
                log.exception("upload job %s failed", job.id)
                job.error = JobError(status=503, detail=f"the server could not index the file ({type(exc).__name__})")
                job.state = "failed"
            finally:
                job.finished_at = time.time()

        self._pool.submit(run)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _forget_old(self) -> None:
        now = time.time()
        ended = [j for j in self._jobs.values() if j.finished_at is not None]
        for j in ended:
            if now - j.finished_at > KEEP_SECONDS:
                del self._jobs[j.id]
        ended = sorted((j for j in self._jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at)
        for j in ended[: max(0, len(self._jobs) - KEEP_MAX)]:
            del self._jobs[j.id]
