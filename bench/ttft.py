"""Time to first token through `/v1/chat/completions` streaming, with a local model server.

Starts `python -m llama_cpp.server` with the packaged SmolLM2 and `rag serve --llm
openai:smollm2` pointed at it (seed index), then streams questions with the official
`openai` client and reports the time to the first content delta and to the final chunk
(with citations), median over the questions. Baseline in the same run: the same
questions asked of llama_cpp.server directly (no retrieval, no checks).

    .venv/bin/python bench/ttft.py [--questions 5]
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


def main():
    from openai import OpenAI

    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=5)
    args = ap.parse_args()
    questions = QUESTIONS[: args.questions]
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
