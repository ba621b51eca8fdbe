"""``rag doctor``: what a user runs when something is wrong.

Each check is one small function returning :class:`Check` lines; the command prints them and
exits non-zero with a one-line reason per failure. A model is only ever run in a child
process here, so a crashing llama.cpp build is reported, not suffered.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from .config import Config

INTERESTING_FLAGS = ("avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                     "avx512_vnni", "avx512_vbmi", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@dataclass
class Check:
    name: str
    ok: bool | None  # None: information only
    detail: str


def check_cpu() -> list[Check]:
    from .llm.cpu_variant import cpu_flags, cpu_name

    flags = set(cpu_flags().split())
    have = [f for f in INTERESTING_FLAGS if f in flags]
    return [Check("cpu", None, f"{cpu_name()}, {os.cpu_count()} cores; {' '.join(have) or 'no AVX'}")]


def check_llama_build() -> list[Check]:
    from .llm.cpu_variant import build_id, variant_files

    if find_spec("llama_cpp") is None:
        return [Check("llama.cpp", None, "llama-cpp-python is not installed (local models need `make local`)")]
    variants = variant_files()
    if not variants:
        return [Check("llama.cpp", False, f"llama-cpp-python {build_id()} has its CPU code built in (a native or "
                                          "single-target build, which can crash on another CPU): rerun `make local`")]
    return [Check("llama.cpp", True, f"llama-cpp-python {build_id().split('-')[0]}, portable build, "
                                     f"{len(variants)} CPU variants: {' '.join(sorted(variants))}")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_models(run: bool = True) -> list[Check]:
    """Each installed packaged model: file, size, sha256 (Qwen); then a few tokens in a child process."""
    from .llm.packaged_models import PACKAGED, QWEN_SHA256, QWEN_SIZE, ModelMissing, packaged_path

    out: list[Check] = []
    for name in PACKAGED:
        try:
            path = packaged_path(name)
        except ModelMissing as exc:
            out.append(Check(f"model {name}", None, f"not installed ({str(exc).split(':')[0]})"))
            continue
        size = path.stat().st_size
        detail = f"{path} ({size / 1e6:,.0f} MB)"
        if name == "qwen2.5-coder-1.5b":
            good = size == QWEN_SIZE and _sha256(path) == QWEN_SHA256
            if not good:
                out.append(Check(f"model {name}", False, f"{detail}: size or sha256 differs from the known file; "
                                                         "delete it and rerun `make local`"))
                continue
            detail += ", sha256 ok"
        out.append(Check(f"model {name}", True, detail))
        if run and find_spec("llama_cpp") is not None:
            out.append(_run_model(name, path))
    return out


def _run_model(name: str, path: Path) -> Check:
    from .llm.cpu_variant import NoCpuBackend, choose_variant, probe_variant, variant_files

    if not variant_files():
        return Check(f"  {name} runs", None, "not run: no portable build to choose a variant from")
    try:
        variant = choose_variant(path)
    except NoCpuBackend as exc:
        return Check(f"  {name} runs", False, str(exc))
    probe = probe_variant(variant, path)
    if not probe.ok:
        return Check(f"  {name} runs", False, f"variant {variant}: {probe.reason}; "
                                              f"delete {Path('~/.cache/grounded-rag/llama-cpu.json')} to choose again")
    return Check(f"  {name} runs", True, f"variant {variant}: prefill {probe.prefill_tps:.0f} tokens/s, "
                                         f"decode {probe.decode_tps:.1f} tokens/s (in a child process)")


def check_embedder() -> list[Check]:
    from .index.embeddings import MiniLMEmbedding

    try:
        t0 = time.perf_counter()
        vec = MiniLMEmbedding().get_text_embedding("NATO leaders met in Washington in July.")
        return [Check("embedder", True, f"MiniLM int8 ONNX, {len(vec)} dims, {1000 * (time.perf_counter() - t0):.0f} ms")]
    except Exception as exc:  # noqa: BLE001  (any failure is the finding)
        return [Check("embedder", False, f"{type(exc).__name__}: {exc}")]


def check_judge() -> list[Check]:
    try:
        from .judge.judges import default_judge

        judge = default_judge()
        verdict = judge.judge("The summit was held in July.", "NATO leaders met for a summit in July in Washington.")
        return [Check("judge", True, f"{type(judge).__name__} loads and scores (a supported claim: {verdict.score:.2f})")]
    except Exception as exc:  # noqa: BLE001
        return [Check("judge", False, f"{type(exc).__name__}: {exc}")]


def check_ocr() -> list[Check]:
    """Tesseract reads scanned PDF pages; without it they are reported, not indexed (information only)."""
    import subprocess

    from .index.ocr import LANG, engine

    binary = engine()
    if binary is None:
        return [Check("ocr", None, "Tesseract not installed: scanned PDF pages are reported, not read (make ocr)")]
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20).stdout.split("\n")[0]
        langs = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return [Check("ocr", False, f"{binary} does not run: {exc}")]
    if LANG not in langs:
        return [Check("ocr", False, f"{version}: language data '{LANG}' missing (apt-get install tesseract-ocr-{LANG})")]
    return [Check("ocr", True, f"{version}, language '{LANG}'")]


def check_store(config: Config) -> list[Check]:
    try:
        from .index.store import Store

        store = Store(config)
        where = config.chroma_url or str(Path(config.data_dir).resolve())
        return [Check("chroma", True, f"opens at {where}: {len(store.documents())} documents")]
    except Exception as exc:  # noqa: BLE001
        return [Check("chroma", False, f"{type(exc).__name__}: {exc}")]


def check_network(config: Config) -> list[Check]:
    remote = []
    if config.chroma_url:
        remote.append(f"Chroma server {config.chroma_url}")
    if (config.llm or "").lower().startswith("openai:"):
        remote.append(f"model server {os.environ.get('RAG_LLM_BASE_URL') or os.environ.get('OPENAI_BASE_URL') or 'api.openai.com'}")
    if not remote:
        return [Check("network", None, "not needed: no remote model or Chroma server is configured")]
    return [Check("network", None, "needed only for: " + ", ".join(remote))]


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def run_checks(config: Config, run_models: bool = True):
    yield from check_cpu()
    yield from check_llama_build()
    yield from check_models(run_models)
    yield from check_embedder()
    yield from check_judge()
    yield from check_ocr()
    yield from check_store(config)
    yield from check_network(config)
