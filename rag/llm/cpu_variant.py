"""Which llama.cpp CPU backend this machine runs, found by trying them in child processes.

``make local`` builds llama-cpp-python (pinned) with ``GGML_NATIVE=OFF GGML_BACKEND_DL=ON
GGML_CPU_ALL_VARIANTS=ON``: the CPU code is one ``libggml-cpu-<variant>.so`` per x86-64 level
(x64, sse42, sandybridge, haswell, skylakex, icelake, zen4, sapphirerapids ...), nothing is
tuned to the machine that compiled it, and the wheel runs on any x86-64 CPU.
llama-cpp-python registers none of those libraries itself ("no backends are loaded"), so
:func:`ensure_cpu_backend` loads one into the process before the first model loads.

Which one: each variant says whether the CPU has its instructions (its exported
``ggml_backend_score``, 0 = missing), but it reads CPUID only ("this does not check for OS
support", says llama.cpp's own source), and a CPU can advertise more than it runs: on an
Intel Xeon whose /proc/cpuinfo lists AMX, the sapphirerapids variant died with SIGILL and a
native build segfaulted in ``llama_decode``. So every variant the CPU claims is *run* in a
child process, best score first, on the model about to be used (load, prefill 48 tokens,
decode 4); the first that finishes is chosen, and remembered in
``~/.cache/grounded-rag/llama-cpu.json`` keyed by the CPU's flags, the build and the model
file. A crash costs one child, never the caller. ``RAG_LLAMA_CPU=<variant>`` forces one.

``python -m rag.llm.cpu_variant`` prints the choice; ``python -m rag.llm.cpu_variant probe
VARIANT MODEL`` is the child (JSON on stdout: score, prefill and decode tokens/s).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

PREFIX = "libggml-cpu-"
PROBE_TIMEOUT = 180.0
PROBE_TEXT = ("The alliance met in July in Washington. Leaders discussed support for Ukraine, air defence, "
              "and a path to membership, though no concrete timeline was provided. ")


class NoCpuBackend(RuntimeError):
    """No CPU variant of this llama.cpp build runs on this machine (each probe's reason is in the message)."""


@dataclass
class Probe:
    variant: str
    ok: bool
    score: int = 0
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    seconds: float = 0.0
    reason: str = ""


# ------------------------------------------------------------------ where the build is


def llama_lib_dir() -> Path | None:
    spec = find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def variant_files() -> dict[str, Path]:
    """{variant: library} of the installed build; empty for a build with the CPU code linked in."""
    lib = llama_lib_dir()
    if lib is None:
        return {}
    found: dict[str, Path] = {}
    # scikit-build installs MODULE libraries as RUNTIME files: site-packages/bin/, or beside libllama
    for folder in (lib, lib.parent.parent / "bin", lib.parent / "bin"):
        if folder.is_dir():
            for path in sorted(folder.glob(f"{PREFIX}*.so")):
                found.setdefault(path.name[len(PREFIX):-3], path)
    return found


def build_id() -> str:
    """llama-cpp-python's version plus the size and mtime of its libggml: changes with every rebuild."""
    from importlib.metadata import version

    lib = llama_lib_dir()
    stamp = ""
    if lib is not None and (lib / "libggml.so").exists():
        st = (lib / "libggml.so").stat()
        stamp = f"{st.st_size}-{int(st.st_mtime)}"
    return f"{version('llama_cpp_python')}-{stamp}"


def _cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in /proc/cpuinfo (None when there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> str:
    return " ".join(sorted((_cpuinfo("flags") or "").split()))


def cpu_name() -> str:
    return _cpuinfo("model name") or "unknown CPU"


def cache_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "grounded-rag" / "llama-cpu.json"


def _cache_key(model: Path) -> str:
    flags = hashlib.sha256(cpu_flags().encode()).hexdigest()[:16]
    return f"{flags}|{build_id()}|{model.name}"


# ------------------------------------------------------------------ in this process


@functools.cache
def _libggml():
    import llama_cpp  # noqa: F401  (loads libllama and the libggml it links)

    lib = ctypes.CDLL(_mapped("libggml.so") or str(llama_lib_dir() / "libggml.so"))
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    return lib


def variant_score(path: Path) -> int:
    """The variant's own CPUID check (0: this CPU lacks its instructions)."""
    _libggml()  # the variants link libggml-base.so.0 from llama_cpp/lib: load it first, by soname
    lib = ctypes.CDLL(str(path))
    try:
        fn = lib.ggml_backend_score
    except AttributeError:
        return 1
    fn.restype = ctypes.c_int
    return int(fn())


def _mapped(stem: str) -> str | None:
    """The file of a library already mapped into this process (the wheel holds copies of
    libggml.so and libggml.so.0: opening the other file would give a second, empty registry)."""
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split(maxsplit=5)[-1]
            if Path(path).name.startswith(stem):
                return path
    except OSError:
        pass
    return None


_loaded: dict[str, str] = {}
_lock = threading.Lock()


def load_variant(variant: str) -> None:
    files = variant_files()
    if variant not in files:
        raise NoCpuBackend(f"llama.cpp CPU variant {variant!r} is not installed (have: {', '.join(sorted(files))})")
    if not _libggml().ggml_backend_load(str(files[variant]).encode()):
        raise NoCpuBackend(f"llama.cpp could not load its CPU variant {files[variant]}")
    _loaded["variant"] = variant


def ensure_cpu_backend(model: str | Path) -> str | None:
    """Load the CPU variant that runs here (probing on first use); returns its name.

    Does nothing for a build without variant libraries (its CPU code is linked in)."""
    with _lock:
        if "variant" in _loaded:
            return _loaded["variant"]
        if not variant_files():
            return None
        if _libggml().ggml_backend_dev_count() > 0:  # someone loaded a backend already
            _loaded["variant"] = "preloaded"
            return "preloaded"
        load_variant(choose_variant(Path(model)))
        return _loaded["variant"]


# ------------------------------------------------------------------ choosing, in children


def choose_variant(model: Path, progress=None) -> str:
    """The forced, remembered or first-running variant for this CPU, build and model."""
    forced = os.environ.get("RAG_LLAMA_CPU", "").strip()
    if forced:
        return forced
    key = _cache_key(model)
    cache = cache_file()
    try:
        remembered = json.loads(cache.read_text())
    except (OSError, ValueError):
        remembered = {}
    if isinstance(remembered.get(key), dict) and remembered[key].get("variant") in variant_files():
        return remembered[key]["variant"]
    probes = []
    for variant in ranked_variants():
        probe = probe_variant(variant, model)
        probes.append(probe)
        if progress:
            progress(probe)
        if probe.ok:
            remembered[key] = {"variant": variant, "cpu": cpu_name(), "probed": [asdict(p) for p in probes],
                               "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(remembered, indent=1))
            os.replace(tmp, cache)
            return variant
    reasons = "; ".join(f"{p.variant}: {p.reason}" for p in probes) or "no variant libraries"
    raise NoCpuBackend(f"no llama.cpp CPU variant runs on this machine ({reasons})")


def ranked_variants() -> list[str]:
    """Variants the CPU claims, best score first (scores read in a child: loading a library
    built for other instructions is not risked in the caller)."""
    try:
        scores = json.loads(_run_child(["scores"], timeout=60).stdout)
    except (ValueError, subprocess.TimeoutExpired):
        scores = {}
    if not scores:  # the scoring child died or hung: try them all, richest instruction set first
        files = variant_files()
        return sorted(files, key=lambda v: -files[v].stat().st_size)
    return [v for v, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])) if s > 0]


def probe_variant(variant: str, model: Path, timeout: float = PROBE_TIMEOUT, n_prompt: int = 48,
                  n_decode: int = 4) -> Probe:
    """Run a few tokens of ``model`` on ``variant`` in a child process; a crash is a failed probe."""
    start = time.monotonic()
    try:
        done = _run_child(["probe", variant, str(model), str(n_prompt), str(n_decode)], timeout=timeout)
    except subprocess.TimeoutExpired:
        return Probe(variant, False, seconds=timeout, reason=f"no answer in {timeout:.0f} s")
    seconds = round(time.monotonic() - start, 2)
    if done.returncode == 0:
        try:
            return Probe(**{**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": seconds})
        except (ValueError, IndexError, TypeError):
            pass
    return Probe(variant, False, seconds=seconds, reason=_exit_reason(done))


def signal_name(returncode: int) -> str:
    """The name of the signal that ended a child (``returncode`` < 0)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _exit_reason(done: subprocess.CompletedProcess) -> str:
    code = done.returncode
    if code < 0:
        name = signal_name(code)
        return {"SIGILL": "SIGILL (an instruction this CPU does not run)", "SIGSEGV": "SIGSEGV (crashed)"}.get(name, name)
    tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit {code}"]
    return tail[0][-200:]


def _run_child(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_LLAMA_CPU": ""}
    return subprocess.run([sys.executable, "-m", "rag.llm.cpu_variant", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------ the child


def _child_scores() -> None:
    print(json.dumps({v: variant_score(p) for v, p in variant_files().items()}))


def measure(model: Path, n_prompt: int = 48, n_decode: int = 4, n_ctx: int = 512) -> tuple[float, float]:
    """(prefill, decode) tokens/s of ``model`` in this process, with the backend already loaded."""
    from llama_cpp import Llama

    llama = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    tokens = llama.tokenize((PROBE_TEXT * (1 + n_prompt // 20)).encode(), add_bos=True)[:n_prompt]
    t0 = time.perf_counter()
    llama.eval(tokens)
    t1 = time.perf_counter()
    for _ in range(n_decode):
        llama.eval([tokens[-1]])
    t2 = time.perf_counter()
    return len(tokens) / (t1 - t0), n_decode / (t2 - t1)


def _child_probe(variant: str, model: str, n_prompt: int = 48, n_decode: int = 4) -> int:
    files = variant_files()
    score = variant_score(files[variant])
    if score <= 0:
        print(f"this CPU lacks the instructions of {variant}", file=sys.stderr)
        return 3
    load_variant(variant)
    prefill, decode = measure(Path(model), n_prompt, n_decode, n_ctx=max(512, n_prompt + n_decode + 8))
    print(json.dumps(asdict(Probe(variant, True, score, round(prefill, 1), round(decode, 1)))))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["scores"]:
        _child_scores()
        return 0
    if argv[:1] == ["probe"] and len(argv) in (3, 5):
        return _child_probe(argv[1], argv[2], *map(int, argv[3:]))
    from rag.llm.packaged_models import packaged_path

    model = Path(argv[0]) if argv else packaged_path("qwen2.5-coder-1.5b")
    print(f"{cpu_name()}: llama.cpp CPU variant {choose_variant(model, progress=print)} for {model.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
