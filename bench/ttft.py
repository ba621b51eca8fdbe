"""Time to first token through `/v1/chat/completions` streaming, with a local model server.

Starts `python -m llama_cpp.server` with the packaged SmolLM2 and `rag serve --llm
openai:smollm2` pointed at it (seed index), then streams questions with the official
`openai` client and reports the time to the first content delta and to the final chunk
(with citations), median over the questions. Baseline in the same run: the same
questions asked of llama_cpp.server directly (no retrieval, no checks).

    .venv/bin/python bench/ttft.py [--questions 5]

With ``--llm NAME`` (e.g. ``qwen2.5-coder-1.5b``) it starts ``rag serve --llm NAME`` (the model in the
server's own child process) on the seed index instead and measures what a user waits for in model
mode, median over the questions after one warm-up: on ``/api/ask/stream`` the first event (the
``sources`` being read), the first verified ``claim`` and the final ``answer``; on ``/v1`` (openai
client) the first chunk (role + sources), the first content and the last chunk; in the UI (its
``/chat`` endpoint through ``gradio_client``) the first "Reading …" and the final answer.

    .venv/bin/python bench/ttft.py --llm qwen2.5-coder-1.5b [--questions 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, free_port, stop_process, table, wait_for_port

from rag.llm.packaged_models import smollm2_path

QUESTIONS = ["When was NATO's summit?", "What did Zelenskyy say about Crimea?", "What does Putin consider a red line?",
             "What would make a ceasefire possible?", "What is the victory plan?"]


def wait_port(port: int, seconds: float = 120) -> None:
    if not wait_for_port(port, seconds, poll=0.5):
        raise SystemExit(f"port {port} did not open")


def stream(client, model: str, question: str) -> tuple[float, float, bool]:
    t = time.perf_counter()
    first, cited = None, False
    for chunk in client.chat.completions.create(model=model, stream=True, max_tokens=160,
                                                messages=[{"role": "user", "content": question}]):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t
        cited = cited or bool(getattr(chunk, "citations", None) or (chunk.model_extra or {}).get("citations"))
    return (first or float("nan")), time.perf_counter() - t, cited


def sse_times(url: str, question: str) -> dict[str, float]:
    """Seconds to the first event, the first claim and the answer of /api/ask/stream."""
    import httpx

    t, out = time.perf_counter(), {}
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": question}, timeout=600) as r:
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind, at = line[7:], time.perf_counter() - t
                out.setdefault("first kind", kind)
                out.setdefault("first event", at)
                out.setdefault(f"first {kind}", at)
    return {"first event s": out["first event"], "first was sources": out["first kind"] == "sources",
            "first claim s": out.get("first claim", float("nan")), "answer s": out.get("first answer", float("nan"))}


def v1_times(client, question: str) -> dict[str, float]:
    t, first, content, sources = time.perf_counter(), None, None, False
    for chunk in client.chat.completions.create(model="grounded-rag", stream=True,
                                                messages=[{"role": "user", "content": question}]):
        if first is None:
            first = time.perf_counter() - t
            sources = bool((chunk.model_extra or {}).get("sources"))
        if content is None and chunk.choices and chunk.choices[0].delta.content:
            content = time.perf_counter() - t
    return {"first chunk s": first, "first chunk had sources": sources,
            "first content s": content if content is not None else float("nan"), "last chunk s": time.perf_counter() - t}


def ui_times(url: str, question: str) -> dict[str, float]:
    """The UI's /chat endpoint (gradio_client): seconds to "Reading …" and to the final answer."""
    from gradio_client import Client

    client = Client(f"{url}/", verbose=False)
    t = time.perf_counter()
    job = client.submit(question, api_name="/chat")
    reading = None
    while not job.done():
        outputs = job.outputs()
        if reading is None and outputs and "Reading" in str(outputs[-1][0][-1]):
            reading = time.perf_counter() - t
        time.sleep(0.02)
    job.result()
    return {"UI reading s": reading if reading is not None else float("nan"), "UI answer s": time.perf_counter() - t}


def model_mode(llm: str, questions: list[str]) -> None:
    """rag serve --llm LLM on the seed index: first event, first claim, answer; API, /v1 and UI."""
    from openai import OpenAI

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="ttft-"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "rag"), "--data-dir", str(data), "serve",
                             "--port", str(port), "--llm", llm], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, 600)
        client = OpenAI(base_url=f"{url}/v1", api_key="x", timeout=600)
        sse_times(url, "warm up: what is this about?")
        rows = []
        for route, measure in [("/api/ask/stream", lambda q: sse_times(url, q)), ("/v1 stream", lambda q: v1_times(client, q)),
                               ("UI /chat", lambda q: ui_times(url, q))]:
            runs = [measure(q) for q in questions]
            row = {"route": route, "n": len(runs)}
            for key in runs[0]:
                values = [r[key] for r in runs]
                row[key] = (sum(bool(v) for v in values) if isinstance(values[0], bool)
                            else round(statistics.median(values), 2))
            rows.append(row)
        for row in rows:
            print(table([row]))
    finally:
        stop_process(proc, 30)


def main():
    from openai import OpenAI

    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--llm", help="measure model mode with rag serve --llm LLM (e.g. qwen2.5-coder-1.5b)")
    args = ap.parse_args()
    questions = QUESTIONS[: args.questions]
    if args.llm:
        return model_mode(args.llm, questions)
    llm_port, rag_port = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="ttft-"))
    procs = [subprocess.Popen([sys.executable, "-m", "rag.llm.llama_server", "--model", str(smollm2_path()),
                               "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(llm_port),
                               "--n_ctx", "2048"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_port(llm_port)
        env = {**os.environ, "RAG_LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1", "RAG_LLM_MAX_TOKENS": "160"}
        procs.append(subprocess.Popen([str(Path(sys.executable).parent / "rag"), "--data-dir", str(data), "serve",
                                       "--port", str(rag_port), "--llm", "openai:smollm2"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(rag_port, 180)
        direct = OpenAI(base_url=f"http://127.0.0.1:{llm_port}/v1", api_key="x", timeout=300)
        ours = OpenAI(base_url=f"http://127.0.0.1:{rag_port}/v1", api_key="x", timeout=300)
        stream(ours, "grounded-rag", "warm up")
        rows = []
        for name, client, model in [("llama_cpp.server directly (baseline)", direct, "smollm2"),
                                    ("rag serve /v1 (retrieval + generation + quote checks)", ours, "grounded-rag")]:
            runs = [stream(client, model, q) for q in questions]
            rows.append({"route": name, "n": len(runs), "first token s (median)": round(statistics.median(r[0] for r in runs), 2),
                         "full answer s (median)": round(statistics.median(r[1] for r in runs), 2),
                         "final chunk had citations": sum(r[2] for r in runs)})
        print(table(rows))
    finally:
        for p in procs:
            stop_process(p, 30)


if __name__ == "__main__":
    main()
