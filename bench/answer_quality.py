"""Dev-set scores of the answer engine, by kind of question: the seed dev set
(eval/data/seed_dev.jsonl) and the BBC dev set (eval/data/bbc_dev.jsonl, over its
named BBC articles plus the first 20 articles of each topic as distractors).

* answerable / plain / overview / follow-up: answered (no abstention) and every
  expected phrase in the answer (eval.metrics.contains_expected, as `rag eval`);
* unanswerable: abstained;
* false premise: the answer says the premise is contradicted (or "No."), and
  separately, also quotes the expected phrase.

    .venv/bin/python bench/answer_quality.py [--set seed|bbc|both] [--show-failures]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import ROOT, table

import rag  # noqa: F401
from eval.metrics import contains_expected
from eval.runner import BBC_DEV, SEED_DEV, bbc_dev_documents, read_jsonl
from rag.assistant import Assistant
from rag.config import Config


def group_of(row: dict) -> str:
    kind = row["kind"]
    if kind == "answerable":
        if row.get("overview"):
            return "overview (new)" if row.get("plain") or row["id"].startswith("b") else "overview"
        if row.get("plain"):
            return "answerable, plain first questions (new)"
        return "answerable, paraphrased" if row.get("paraphrased") else "answerable"
    if kind == "unanswerable":
        return "unanswerable, plain (new)" if row.get("plain") else "unanswerable"
    return {"false_premise": "false premise", "conversation": "follow-up"}[kind]


def judge_row(row: dict, answer) -> tuple[bool, bool | None]:
    """(good, good with the expected phrase for false premises)."""
    if row["kind"] == "unanswerable":
        return answer.abstained, None
    if row["kind"] == "false_premise":
        caught = answer.status == "premise_contradicted" or answer.answer.startswith("No.")
        return caught, caught and contains_expected(answer.answer, row["expected"])
    return (not answer.abstained) and contains_expected(answer.answer, row["expected"]), None


def score(assistant: Assistant, rows: list[dict], name: str, show: bool) -> list[dict]:
    groups: dict[str, list] = {}
    times = []
    for row in rows:
        t = time.perf_counter()
        answer = assistant.ask(row["question"], history=row.get("history"))
        times.append((time.perf_counter() - t) * 1000)
        good, with_phrase = judge_row(row, answer)
        groups.setdefault(group_of(row), []).append((good, with_phrase))
        if show and not good:
            hl = [c.highlight.text for c in answer.citations if c.highlight]
            print(f"FAIL {row['id']} [{group_of(row)}] {row['question']}\n     -> {answer.status}: "
                  f"{answer.answer[:220]}{'  highlight=' + repr(hl) if hl else ''}")
    out = []
    for g, results in groups.items():
        rec = {"set": name, "group": g, "good": f"{sum(r[0] for r in results)}/{len(results)}"}
        if g == "false premise":
            rec["with expected phrase"] = f"{sum(bool(r[1]) for r in results)}/{len(results)}"
        out.append(rec)
    times.sort()
    out.append({"set": name, "group": "ask p50 ms (first pass)", "good": round(times[len(times) // 2], 1)})
    return out


def bbc_assistant(data_dir: Path) -> Assistant:
    from rag.index.ingest import Indexer

    docs = bbc_dev_documents(read_jsonl(BBC_DEV))
    assistant = Assistant.open(Config(data_dir=data_dir, chroma_url=None, collection="bbcdev"))
    Indexer(assistant.store).ingest_documents(docs)
    assistant._read_your_writes()  # noqa: SLF001
    return assistant


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["seed", "bbc", "both"], default="both")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "bench/out/answer-quality")
    ap.add_argument("--show-failures", action="store_true")
    args = ap.parse_args()
    out = []
    if args.set in ("seed", "both"):
        seed = Assistant.open(Config(data_dir=args.data_dir, chroma_url=None, collection="seeddev"))
        seed.ingest([ROOT / "seeds"])
        out += score(seed, read_jsonl(SEED_DEV), "seed", args.show_failures)
    if args.set in ("bbc", "both"):
        out += score(bbc_assistant(args.data_dir), read_jsonl(BBC_DEV), "bbc", args.show_failures)
    print(table(out))
    print(json.dumps({"scorer": "see rag/assistant.py _sentence_scorer"}))


if __name__ == "__main__":
    main()
