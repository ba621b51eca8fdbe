"""Load test of the real server on loopback: N concurrent clients for S seconds.

    .venv/bin/python bench/load.py                                # 32 clients x 60 s on a fresh seed index
    .venv/bin/python bench/load.py --clients 8 --seconds 5        # the CI-sized run (tests/test_reliability.py)
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860 --pid PID   # a running server

Without --url it starts `rag serve` in a subprocess on a free loopback port with a fresh
data directory (first start indexes seeds/), and stops it afterwards.

Each client (a thread with its own keep-alive connection) loops over a fixed request mix
until the time is up: POST /api/ask (70%), POST /v1/chat/completions (15%), POST
/api/ask/stream (10%), GET /api/documents (5%). Questions come from a list about the
seed article; by default each gets a request number appended so the server's query
embedding cache does not hide the work (--repeat-questions for the cached path).

Every response must be a 200 with a well-formed body, and every citation must be the
exact slice text[start:end] of its document (texts are fetched once before the run):
anything else counts as an error. Bounded in time (--seconds, plus at most one
--timeout per client at the end) and in count (--max-requests). Loopback only.

Prints latency p50/p95/p99 (all requests and per route), requests/s, the server's
RSS (VmRSS of its process in /proc) at start, after warm-up and after the run, and
checks two bounds: zero errors, and RSS growth during the run below --max-rss-growth-mb
(default 300). Exits 1 if either fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
from common import SEED_QUESTIONS as QUESTIONS, free_port, loopback_url, percentile, stop_process  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
MIX = [("ask", 70), ("v1", 15), ("stream", 10), ("documents", 5)]


def vm_rss_mb(pid: int) -> float | None:
    """VmRSS of one process in MB, from /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(data_dir: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str, float]:
    """`rag serve` on a free loopback port; returns (process, url, seconds to /healthz ready)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEY", "RAG_CHROMA_URL", "RAG_LLM", "RAG_READ_ONLY")}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "server.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: see {data_dir.parent / 'server.log'}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise SystemExit(f"server not ready after {timeout:.0f} s")
        time.sleep(0.05)


class Load:
    def __init__(self, url: str, texts: dict[str, str], deadline: float, max_requests: int, unique: bool,
                 timeout: float):
        self.url, self.texts, self.deadline = url, texts, deadline
        self.max_requests, self.unique, self.timeout = max_requests, unique, timeout
        self.lock = threading.Lock()
        self.issued = 0
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.error_count = 0
        self.verified = 0

    def _next(self) -> int | None:
        with self.lock:
            if self.issued >= self.max_requests or time.monotonic() >= self.deadline:
                return None
            self.issued += 1
            return self.issued

    def _error(self, message: str) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(message)

    def _check_answer(self, answer: dict) -> None:
        if not isinstance(answer.get("answer"), str) or not isinstance(answer.get("citations"), list):
            raise ValueError(f"malformed answer {str(answer)[:200]}")
        for c in answer["citations"]:
            text = self.texts.get(c["doc_id"])
            if text is None or text[c["start"]:c["end"]] != c["quote"]:
                raise ValueError(f"citation is not text[start:end] of {c['doc_id']}: {c['quote'][:80]!r}")
        with self.lock:
            self.verified += len(answer["citations"])

    def _request(self, client: httpx.Client, kind: str, question: str) -> None:
        if kind == "ask":
            r = client.post("/api/ask", json={"question": question})
            r.raise_for_status()
            self._check_answer(r.json())
        elif kind == "v1":
            r = client.post("/v1/chat/completions", json={"model": "grounded-rag",
                                                          "messages": [{"role": "user", "content": question}]})
            r.raise_for_status()
            self._check_answer(r.json()["choices"][0]["message"]["grounded_answer"])
        elif kind == "stream":
            answer, event, done = None, None, False
            with client.stream("POST", "/api/ask/stream", json={"question": question}) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        if event == "answer":
                            answer = json.loads(line[6:])
                        elif event == "error":
                            raise ValueError(f"stream error {line[6:200]}")
                        elif event == "done":
                            done = True
            if answer is None or not done:
                raise ValueError("stream ended without an answer and done")
            self._check_answer(answer)
        else:
            r = client.get("/api/documents")
            r.raise_for_status()
            if r.json()["count"] != len(self.texts):
                raise ValueError(f"document count changed: {r.json()['count']}")

    def client(self, n: int) -> None:
        weights = [k for k, w in MIX for _ in range(w)]
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            while (i := self._next()) is not None:
                kind = weights[(i * 37 + n) % len(weights)]
                question = QUESTIONS[i % len(QUESTIONS)]
                if self.unique:
                    question = f"{question} (request {i})"
                t0 = time.perf_counter()
                try:
                    self._request(client, kind, question)
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    detail = exc.response.text[:200] if isinstance(exc, httpx.HTTPStatusError) else ""
                    self._error(f"{kind}: {type(exc).__name__}: {str(exc)[:200]} {detail}")
                    continue
                with self.lock:
                    self.latencies[kind].append(time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--url", help="load a running server (loopback only) instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for its RSS")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests")
    ap.add_argument("--warmup", type=int, default=20, help="requests before the measured run (one client)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    ap.add_argument("--max-rss-growth-mb", type=float, default=300.0, help="bound on server RSS growth during the run")
    ap.add_argument("--repeat-questions", action="store_true", help="reuse the questions verbatim (cached path)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        ap.error("--clients must be >= 1 and --seconds > 0")

    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                     "clients": args.clients, "seconds": args.seconds, "mix": dict(MIX),
                     "questions": "repeated" if args.repeat_questions else "unique", "rss_bound_mb": args.max_rss_growth_mb}
    proc = tmp = None
    if args.url:
        url = loopback_url(args.url)
        pid = args.pid
    else:
        tmp = tempfile.TemporaryDirectory(prefix="rag-load-")
        proc, url, startup = start_server(Path(tmp.name) / "data")
        pid = proc.pid
        results["startup_s"] = round(startup, 2)
    try:
        results["rss_start_mb"] = vm_rss_mb(pid) if pid else None
        with httpx.Client(base_url=url, timeout=args.timeout) as client:
            health = client.get("/healthz").json()
            docs = client.get("/api/documents").json()["documents"]
            texts = {d["doc_id"]: client.get(f"/api/documents/{d['doc_id']}").json()["text"] for d in docs}
        results["index"] = f"{health['documents']} documents, {health['chunks']} chunks, backend {health['backend']}"

        warm = Load(url, texts, time.monotonic() + 120, args.warmup, not args.repeat_questions, args.timeout)
        warm.client(0)
        results["rss_warm_mb"] = vm_rss_mb(pid) if pid else None

        load = Load(url, texts, time.monotonic() + args.seconds, args.max_requests, not args.repeat_questions,
                    args.timeout)
        threads = [threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + args.timeout + 30)
        wall = time.perf_counter() - t0
        results["rss_after_mb"] = vm_rss_mb(pid) if pid else None
        alive = sum(t.is_alive() for t in threads)
        if alive:
            load._error(f"{alive} clients still waiting after the time limit")
        with httpx.Client(base_url=url, timeout=10) as client:
            results["healthy_after"] = client.get("/healthz").status_code == 200
    finally:
        if proc is not None:
            stop_process(proc)
        if tmp is not None:
            tmp.cleanup()

    every = [x for v in load.latencies.values() for x in v]
    ok = len(every)
    results.update({
        "requests": ok + load.error_count, "ok": ok, "errors": load.error_count + warm.error_count,
        "error_samples": warm.errors + load.errors, "verified_citations": load.verified + warm.verified,
        "wall_s": round(wall, 2), "requests_per_s": round((ok + load.error_count) / wall, 2),
        "latency_ms": {"all": {p: round(percentile(every, q) * 1000, 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}}
    })
    for kind, values in sorted(load.latencies.items()):
        results["latency_ms"][kind] = {"n": len(values), **{p: round(percentile(values, q) * 1000, 1)
                                                            for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}}
    base = results["rss_warm_mb"] if results.get("rss_warm_mb") is not None else results.get("rss_start_mb")
    results["rss_growth_mb"] = round(results["rss_after_mb"] - base, 1) if base and results.get("rss_after_mb") else 0.0
    results["passed"] = bool(results["errors"] == 0 and results["healthy_after"]
                             and results["rss_growth_mb"] < args.max_rss_growth_mb)

    def mb(v):
        return "-" if v is None else f"{v:,.0f} MB"

    lat = results["latency_ms"]
    print(f"machine: {results['machine']}; index: {results['index']}; questions {results['questions']}")
    if "startup_s" in results:
        print(f"`rag serve` ready in {results['startup_s']} s")
    print(f"{args.clients} clients x {args.seconds:g} s (mix {', '.join(f'{k} {w}%' for k, w in MIX)}): "
          f"{results['requests']} requests in {results['wall_s']} s = {results['requests_per_s']} requests/s, "
          f"{results['errors']} errors, {results['verified_citations']} citations verified")
    print("latency ms      n     p50     p95     p99")
    for kind in ["all"] + sorted(load.latencies):
        row = lat[kind]
        print(f"  {kind:<9} {row.get('n', ok):>6} {row['p50']:>7.1f} {row['p95']:>7.1f} {row['p99']:>7.1f}")
    print(f"server RSS (VmRSS, pid {pid}): start {mb(results['rss_start_mb'])}, after warm-up "
          f"{mb(results['rss_warm_mb'])}, after the run {mb(results['rss_after_mb'])}")
    print(f"bounds: errors {results['errors']} == 0 {'OK' if results['errors'] == 0 else 'FAILED'}; "
          f"RSS growth during the run {results['rss_growth_mb']:+.0f} MB < {args.max_rss_growth_mb:.0f} MB "
          f"{'OK' if results['rss_growth_mb'] < args.max_rss_growth_mb else 'FAILED'}")
    for sample in results["error_samples"][:5]:
        print(f"  error: {sample}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
