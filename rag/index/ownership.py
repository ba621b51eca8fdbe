"""One process at a time owns an embedded index (a data directory without ``--chroma-url``).

Chroma's local files are not safe for two processes: each keeps its own in-memory vector index, so a
server does not see what a separate ``rag ingest`` wrote (its queries then fail with "Error finding
id"), and two writers can corrupt the files. So ``rag serve`` owns the data directory for as long as
it runs and ``rag ingest`` for as long as it writes; ``rag eval`` builds its indexes in
``DATA_DIR/eval``, which it owns while it runs. A second owner is refused with a message that says
who holds it and what to do instead. Reading commands (``ask``, ``search``, ``chat``) open the files
without owning them. With a Chroma server (``--chroma-url``) the server arbitrates and nothing here
applies.

The lock is an advisory ``flock`` on ``DATA_DIR/owner.lock``, released by the kernel when the owner
exits, however it exits (kill -9 included); the file holds the owner's pid, role and URL as JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = "owner.lock"


class DataDirBusy(RuntimeError):
    """Another process owns the data directory."""


def _holder(fh) -> dict:
    fh.seek(0)
    try:
        value = json.loads(fh.read() or "{}")
    except json.JSONDecodeError:
        value = {}
    return value if isinstance(value, dict) else {}


def busy_message(data_dir: Path, role: str, holder: dict) -> str:
    """What the refused ``role`` ("serve", "ingest" or "eval") should be told about ``holder``."""
    pid = holder.get("pid", "?")
    url = holder.get("url") or ""
    if holder.get("role") == "serve":
        if role == "ingest":
            return (f"{data_dir} is served by `rag serve` (pid {pid}{', ' + url if url else ''}). A second process "
                    "writing the same local index would corrupt it, and the server would not see the new documents. "
                    "Add files through the server instead (the UI's documents panel, or "
                    f"`curl -F file=@report.pdf {url.rstrip('/') or 'http://HOST:PORT'}/api/documents`), stop the "
                    "server first, or keep the index on a Chroma server (`chroma run`, then --chroma-url) that "
                    "both can use.")
        return (f"{data_dir} is already served by pid {pid}{' at ' + url if url else ''}; use that server, stop it, "
                "or pass another --data-dir.")
    return (f"`rag {holder.get('role') or 'ingest'}` (pid {pid}) is writing {data_dir}; wait for it to finish, "
            "then try again.")


@contextmanager
def own(data_dir: Path, role: str, url: str | None = None) -> Iterator[None]:
    """Hold the data directory for ``role`` ("serve" or "ingest"); raise DataDirBusy if another process does."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(busy_message(data_dir, role, _holder(fh))) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "role": role, "url": url}))
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
