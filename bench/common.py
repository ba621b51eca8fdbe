"""Helpers shared by the benchmark scripts: timing summaries and peak memory."""

from __future__ import annotations

import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.localhost import free_port, stop_process, wait_for_port  # noqa: E402,F401  (shared with tests/)


# Questions about the seed article, for load and latency runs on the seed index.
SEED_QUESTIONS = [
    "What did Zelenskyy say about Crimea?", "When was the NATO summit?", "What does Putin consider a red line?",
    "What would a ceasefire require?", "What is the victory plan?", "Who interviewed Zelenskyy?",
    "Why does NATO membership need clear borders?", "What does Russia demand before peace talks?",
    "Would Ukraine cede its occupied territories?", "What could invoke Article 5?",
    "How would Ukraine get back the other territories?", "What did member nations reiterate in July?",
    "What did Zelenskyy say about an invitation to one part of a country?", "What is the hot stage of the war?",
    "Which regions remain under Russian control?", "What are Western leaders exploring?",
    "Is there a timeline for Ukraine's NATO membership?", "What would legitimise Russian claims?",
    "What security guarantees did Zelenskyy mention?", "Who shared the victory plan with allies?",
]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile with linear interpolation (nan for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def percentiles(values_ms: list[float]) -> dict[str, float]:
    values = sorted(values_ms)

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    return {"n": len(values), "p50": round(pct(50), 2), "p95": round(pct(95), 2), "p99": round(pct(99), 2),
            "mean": round(statistics.fmean(values), 2)}


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns), "-|-".join("-" * widths[c] for c in columns)]
    lines += [" | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def loopback_url(url: str) -> str:
    """``url`` without a trailing slash; exits unless it points at this machine (loopback only)."""
    from urllib.parse import urlparse

    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only: --url must point at 127.0.0.1 or localhost")
    return url.rstrip("/")
