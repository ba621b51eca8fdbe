"""HTTP latency of the real server on loopback: POST /api/ask sequentially and with N
concurrent clients, throughput, start-up time of `rag serve` and its memory after 1,000 requests.

    .venv/bin/python bench/http_latency.py                 # builds a seed index, starts the server itself
    .venv/bin/python bench/http_latency.py --url http://127.0.0.1:7860 [--pid PID]

Bounded: a fixed number of requests (defaults: 10 warm-up + 200 sequential + 400 at
8 clients + the rest up to 1,000) and --max-seconds overall; loopback only. By default
each question is made unique (a request number is appended) so the per-process query
embedding cache does not hide the work; --repeat-questions measures the cached path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import SEED_QUESTIONS as QUESTIONS, free_port, loopback_url, percentile, stop_process  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]


class Stop(Exception):
    pass


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (MB), from /proc."""
    total, seen = 0, False
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    seen = True
        except OSError:
            continue
    return total / 1024 if seen else None


class Runner:
    def __init__(self, url: str, deadline: float, unique: bool):
        self.url = url
        self.deadline = deadline
        self.unique = unique
        self.count = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def client(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(timeout=60)
        return self._local.client

    def ask(self, i: int) -> float:
        if time.monotonic() > self.deadline:
            raise Stop()
        q = QUESTIONS[i % len(QUESTIONS)]
        if self.unique:
            q = f"{q} (request {i})"
        t0 = time.perf_counter()
        r = self.client().post(f"{self.url}/api/ask", json={"question": q})
        dt = time.perf_counter() - t0
        with self._lock:
            self.count += 1
            if r.status_code != 200:
                self.errors += 1
        return dt

    def sequential(self, n: int, start: int = 0) -> list[float]:
        return [self.ask(start + i) for i in range(n)]

    def concurrent(self, n: int, workers: int, start: int = 0) -> tuple[list[float], float]:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            lat = list(pool.map(self.ask, range(start, start + n)))
        return lat, time.perf_counter() - t0


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, float, str]:
    """Index seeds/ (untimed), then time `rag serve` from process start to /healthz ready."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEY", "RAG_CHROMA_URL", "RAG_LLM")}
    subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "ingest", "--json", "seeds"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    log = open(data_dir.parent / "server.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: see {data_dir.parent / 'server.log'}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0, url
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > 180:
            proc.kill()
            raise SystemExit("server not ready after 180 s")
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="benchmark a running server (loopback only) instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for its RSS")
    ap.add_argument("--sequential", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--concurrent-requests", type=int, default=400)
    ap.add_argument("--total", type=int, default=1000, help="requests before RSS is read")
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--repeat-questions", action="store_true", help="reuse the 20 questions verbatim (cached path)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    deadline = time.monotonic() + args.max_seconds
    results: dict[str, object] = {"questions": "repeated" if args.repeat_questions else "unique",
                                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    proc = None
    tmp = None
    if args.url:
        url = loopback_url(args.url)
        pid = args.pid
    else:
        tmp = tempfile.TemporaryDirectory(prefix="rag-bench-")
        proc, startup, url = start_server(Path(tmp.name) / "data", free_port())
        pid = proc.pid
        results["startup_s"] = round(startup, 2)
        results["rss_start_mb"] = rss_mb(pid)
    try:
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        results["index"] = f"{health['documents']} documents, {health['chunks']} chunks, backend {health['backend']}"
        runner = Runner(url, deadline, unique=not args.repeat_questions)
        n = 0
        try:
            runner.sequential(10, n)  # warm-up
            n += 10
            seq = runner.sequential(args.sequential, n)
            n += len(seq)
            results["sequential"] = {"n": len(seq), "p50_ms": percentile(seq, 50) * 1000,
                                     "p95_ms": percentile(seq, 95) * 1000, "mean_ms": statistics.mean(seq) * 1000}
            conc, wall = runner.concurrent(args.concurrent_requests, args.clients, n)
            n += len(conc)
            results["concurrent"] = {"n": len(conc), "clients": args.clients, "p50_ms": percentile(conc, 50) * 1000,
                                     "p95_ms": percentile(conc, 95) * 1000, "throughput_rps": len(conc) / wall}
            if args.total > n:
                runner.concurrent(args.total - n, args.clients, n)
        except Stop:
            results["stopped"] = f"time limit of {args.max_seconds:.0f} s reached"
        results["requests"] = runner.count
        results["errors"] = runner.errors
        if pid:
            results["rss_after_mb"] = rss_mb(pid)
    finally:
        if proc is not None:
            stop_process(proc)
        if tmp is not None:
            tmp.cleanup()

    def fmt(v, unit=""):
        return "-" if v is None else (f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    seq, conc = results.get("sequential", {}), results.get("concurrent", {})
    rows = [
        ("machine", results["machine"]),
        ("index", results["index"]),
        ("questions", f"{results['questions']} (see --repeat-questions)"),
        ("`rag serve` start -> /healthz ready (index built)", fmt(results.get("startup_s"), " s")),
        (f"POST /api/ask sequential p50 / p95 (n={seq.get('n', 0)})",
         f"{fmt(seq.get('p50_ms'), ' ms')} / {fmt(seq.get('p95_ms'), ' ms')}"),
        (f"POST /api/ask {conc.get('clients', args.clients)} clients p50 / p95 (n={conc.get('n', 0)})",
         f"{fmt(conc.get('p50_ms'), ' ms')} / {fmt(conc.get('p95_ms'), ' ms')}"),
        (f"throughput at {conc.get('clients', args.clients)} clients", fmt(conc.get("throughput_rps"), " req/s")),
        ("server RSS at start", fmt(results.get("rss_start_mb"), " MB")),
        (f"server RSS after {results['requests']} requests", fmt(results.get("rss_after_mb"), " MB")),
        ("non-200 responses", str(results["errors"])),
    ]
    if "stopped" in results:
        rows.append(("note", results["stopped"]))
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
