"""Real servers for live tests: `chroma run` and `rag serve`, each in a subprocess on a free
loopback port, stopped when the block ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from rag.localhost import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def chroma_server(path: Path):
    """`chroma run --path PATH`; yields its URL."""
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for_port(port, 60):
            raise RuntimeError("chroma run did not start within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextmanager
def rag_server(data_dir: Path, *extra: str, options: tuple[str, ...] = (), api_key: str | None = None,
               timeout: float = 120.0):
    """`rag --data-dir DIR [options] serve --port N [extra]` from the repo root; yields (url, process, log path)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEY", "RAG_CHROMA_URL", "RAG_LLM")}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    if api_key:
        env["RAG_API_KEY"] = api_key
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), *options, "serve",
                             "--host", "127.0.0.1", "--port", str(port), *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url, proc, log_path
    finally:
        stop_process(proc, 15)
        log.close()
