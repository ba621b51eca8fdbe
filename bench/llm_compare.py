"""Answer backends side by side: extractive vs the packaged GGUF models (Qwen2.5-Coder-1.5B, SmolLM2).

Three sets:

* seed dev set (``eval/data/seed_dev.jsonl``, 47 questions on the seed article):
  answerable / conversation -> answered and containing an expected phrase;
  unanswerable -> abstained; false_premise -> premise flagged (or "No.").
* HaluEval QA (rows 0-4999 only; default the first ``--halueval N`` rows): the
  knowledge blocks of those rows are indexed as the corpus (one document per
  row; ``--corpus-rows`` adds distractors), each row's question is asked, and
  an answer counts when it contains ``right_answer`` (case-insensitive).
* trap questions (``--traps``, off by default; ``eval/data/trap_questions.jsonl``): false premises
  (``premise_actor``, ``premise_negation``, ``premise_number_date``) and questions the articles do not
  answer (``unanswerable_restatement``, ``unanswerable_other``) on the seed article and BBC dev articles,
  indexed together in their own data dir; scored by the seed set's false-premise and unanswerable rules,
  counted per kind (``by_kind``).

For each backend: share correct, abstention on unanswerable questions, false
premises caught, claims generated and kept after the checks, quotes that failed the
Assistant's final verbatim gate (must be 0), how often the answer fell back to
extractive (no claim verified) or was the model's own abstention, latency p50/p95,
prompt tokens per answer, generation tokens/s. ``--questions`` limits each set to its
first N questions (the seed set is shuffled by kind first so every kind is sampled).
Writes ``bench/out/llm_compare.json`` and a Markdown table ``bench/out/llm_compare.md``.

    .venv/bin/python bench/llm_compare.py [--halueval 50] [--traps] [--backends extractive,qwen2.5-coder-1.5b,smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import ROOT, percentiles, table
from halueval_index import build as build_halueval

import rag  # noqa: F401
from eval.datasets import bbc_articles, halueval_qa
from rag.assistant import Assistant
from rag.config import Config
from rag.answer.generative import NOTE_ABSTAINED, NOTE_UNVERIFIED
from rag.models import ClaimEvent
from rag.index.ingest import Indexer
from rag.index.loaders import make_document
from rag.index.store import Store

OUT = ROOT / "bench" / "out"
DEFAULT_BACKENDS = "extractive,qwen2.5-coder-1.5b,smollm2"


def read_rows(name: str) -> list[dict]:
    path = ROOT / "eval" / "data" / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_rows() -> list[dict]:
    return read_rows("seed_dev.jsonl")


def interleaved(rows: list[dict]) -> list[dict]:
    """The rows with their kinds taken in turn, so a short run (``--questions``) still samples each kind."""
    by_kind: dict[str, list[dict]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    return [r for group in zip(*by_kind.values()) for r in group] + \
        [r for g in by_kind.values() for r in g[min(map(len, by_kind.values())):]]


def seed_correct(row: dict, answer) -> bool:
    """Unanswerable: abstained. Answerable: an expected phrase in the answer or in a quote it cites (a
    model's claim paraphrases; the quote shows it found the right sentence). False premise: flagged by the
    extractive engine, or answered (not abstained) citing the sentence that contradicts it."""
    kind = row["kind"]
    text = " ".join([answer.answer] + [c.quote for c in answer.citations if c.role != "related"]).lower()
    if kind == "unanswerable":
        return answer.abstained
    if kind == "false_premise":
        return (answer.status == "premise_contradicted" or answer.answer.startswith("No.")
                or (not answer.abstained and any(e.lower() in text for e in row["expected"])))
    return (not answer.abstained) and any(e.lower() in text for e in row["expected"])


def rule(kind: str) -> str:
    """The seed rule a trap kind is scored by: premise_* -> false_premise, unanswerable_* -> unanswerable."""
    return "false_premise" if kind.startswith("premise_") else "unanswerable" if kind.startswith("unanswerable_") else kind


def premise_flagged(row: dict, answer) -> bool:
    """The strict reading of a false premise: the answer says the premise is wrong (the extractive
    engine's flag, or a "No.") or the answer's own words -- a model's claims, not the quotes under
    them -- say what the correcting sentence says. An extractive answer that merely quotes the
    correcting sentence passes ``seed_correct`` but not this."""
    if answer is None or rule(row["kind"]) != "false_premise":
        return False
    if answer.status == "premise_contradicted" or answer.answer.startswith("No."):
        return True
    return (not answer.abstained and answer.backend != "extractive" and answer.note != NOTE_UNVERIFIED
            and any(e.lower() in answer.answer.lower() for e in row.get("expected", [])))


def trap_correct(row: dict, answer) -> bool:
    return seed_correct({**row, "kind": rule(row["kind"])}, answer)


def trap_store(data_dir: Path, rows: list[dict]) -> Store:
    """The seed article (as the seed set indexes it) plus the BBC articles the trap rows name."""
    store = Store(Config(data_dir=data_dir, chroma_url=None, collection="traps"))
    named = {r["article"] for r in rows if r.get("article", "seed") != "seed"}
    docs = [make_document(text, f"bbc:{path.parent.name}/{path.name}") for path, text in bbc_articles()
            if f"{path.parent.name}/{path.name}" in named]
    if len(docs) != len(named):
        raise SystemExit(f"trap articles not found: {sorted(named - {d.metadata['source'][4:] for d in docs})}")
    Indexer(store).ingest_documents(docs)
    Indexer(store).ingest_paths([ROOT / "seeds"])  # also catches up the lexical index
    return store


def count_gate_failures(assistant: Assistant) -> list[int]:
    """Wrap the Assistant's final check so citations it rejects (not verbatim) are counted."""
    from rag.answer.quotes import verify

    failures = [0]
    gate = assistant._checked  # noqa: SLF001

    def counted(answer, *args, **kwargs):  # _checked also takes the question's scope
        _, bad = verify(answer.citations, lambda doc_id: assistant.store.document(doc_id).text)
        failures[0] += len(bad)
        return gate(answer, *args, **kwargs)

    assistant._checked = counted  # noqa: SLF001
    return failures


def ask(assistant: Assistant, item: dict, stream: bool):
    """The final Answer and the ms until the first verified claim (streamed; None when not streaming or none)."""
    if not stream:
        return assistant.ask(item["question"], history=item.get("history")), None
    t0, first, answer = time.perf_counter(), None, None
    for piece in assistant.stream(item["question"], history=item.get("history")):
        if isinstance(piece, ClaimEvent) and first is None:
            first = (time.perf_counter() - t0) * 1000
        answer = piece
    return answer, first


def run(assistant: Assistant, items: list[dict], judge, stream: bool = False) -> dict:
    """Ask every item; return per-item records."""
    records = []
    failures = count_gate_failures(assistant)
    for item in items:
        before = failures[0]
        t0 = time.perf_counter()
        error, first_claim_ms = None, None
        try:
            answer, first_claim_ms = ask(assistant, item, stream and assistant.generator is not None)
        except Exception as exc:  # noqa: BLE001  (a backend failure is a result too)
            answer, error = None, f"{type(exc).__name__}: {exc}"
        ms = (time.perf_counter() - t0) * 1000
        trace = assistant.generator.last if assistant.generator is not None else None
        records.append({
            "id": item["id"], "kind": item["kind"], "ms": ms, "first_claim_ms": first_claim_ms, "error": error,
            "correct": bool(answer is not None and judge(item, answer)),
            "premise_flagged": premise_flagged(item, answer),
            "abstained": bool(answer is not None and answer.abstained),
            "note": answer.note if answer is not None else None,
            "answer": answer.answer if answer is not None else None,
            "sentences": trace.sentences if trace else 0, "kept": trace.kept if trace else 0,
            "tokens": trace.tokens if trace else 0, "gen_s": trace.seconds if trace else 0.0,
            "prompt_tokens": trace.prompt_tokens if trace else 0, "not_verbatim": failures[0] - before,
            "raw": trace.raw if trace else None,
            "check_ms": (answer.timings_ms.get("check", 0.0) if answer is not None else 0.0),
            "dropped": answer.dropped_claims if answer is not None else [],
        })
    return records


def summarize(backend: str, dataset: str, records: list[dict]) -> dict:
    def share(rows, key):
        return round(sum(r[key] for r in rows) / len(rows), 3) if rows else None

    answerable = [r for r in records if r["kind"] in ("answerable", "conversation", "halueval")]
    unanswerable = [r for r in records if rule(r["kind"]) == "unanswerable"]
    premise = [r for r in records if rule(r["kind"]) == "false_premise"]
    kinds: dict[str, list[dict]] = {}
    for r in records:
        kinds.setdefault(r["kind"], []).append(r)
    sentences = sum(r["sentences"] for r in records)
    firsts = [r["first_claim_ms"] for r in records if r.get("first_claim_ms") is not None]
    gen_s = sum(r["gen_s"] for r in records)
    return {
        "backend": backend, "set": dataset, "n": len(records),
        "correct_answerable": share(answerable, "correct") if answerable else "",
        "abstain_unanswerable": share(unanswerable, "abstained") if unanswerable else "",
        "false_premise_ok": share(premise, "correct") if premise else "",
        "premise_strict": f"{sum(r.get('premise_flagged', False) for r in premise)}/{len(premise)}" if premise else "",
        "claims": f"{sum(r['kept'] for r in records)}/{sentences}" if sentences else "",
        "kept_claims": round(sum(r["kept"] for r in records) / sentences, 3) if sentences else "",
        "not_verbatim": sum(r["not_verbatim"] for r in records),
        "prompt_tokens_p50": round(statistics.median(r["prompt_tokens"] for r in records)) if records else "",
        "fallback": round(sum(r["note"] in (NOTE_UNVERIFIED, NOTE_ABSTAINED) for r in records) / len(records), 3),
        "model_abstained": round(sum(r["note"] == NOTE_ABSTAINED for r in records) / len(records), 3),
        "errors": sum(r["error"] is not None for r in records),
        "p50_ms": round(statistics.median(r["ms"] for r in records)),
        "p95_ms": round(percentiles([r["ms"] for r in records])["p95"]) if len(records) > 1 else "",
        "first_claim_p50_ms": round(statistics.median(firsts)) if firsts else "",
        "tok_per_s": round(sum(r["tokens"] for r in records) / gen_s, 1) if gen_s else "",
        "check_s_per_claim": round(sum(r.get("check_ms", 0) for r in records) / 1000 / sentences, 2) if sentences else "",
        "by_kind": ", ".join(f"{k} {sum(r['correct'] for r in rs)}/{len(rs)}" for k, rs in kinds.items()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=DEFAULT_BACKENDS)
    ap.add_argument("--halueval", type=int, default=50, help="HaluEval QA questions (rows 0..N-1, N <= 5000)")
    ap.add_argument("--corpus-rows", default=None, help="index these HaluEval rows as the corpus (default 0:N)")
    ap.add_argument("--skip-seed", action="store_true")
    ap.add_argument("--traps", action="store_true", help="also ask the trap questions (eval/data/trap_questions.jsonl)")
    ap.add_argument("--questions", type=int, default=0, help="ask only the first N questions of each set (0: all)")
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--data-dir", type=Path, default=OUT / "llm_compare")
    ap.add_argument("--stream", action="store_true", help="stream the answers (as the UI does) and time the first claim")
    ap.add_argument("--out", default="llm_compare", help="bench/out/<name>.json and .md")
    args = ap.parse_args()
    if args.halueval > 5000:
        raise SystemExit("rows >= 5000 are reserved; use --halueval 5000 or fewer")
    os.environ.setdefault("RAG_LLM_MAX_TOKENS", str(args.max_tokens))

    sets: list[tuple[str, Store, list[dict], callable]] = []
    if not args.skip_seed:
        seed_store = Store(Config(data_dir=args.data_dir / "seed", chroma_url=None, collection="seed"))
        Indexer(seed_store).ingest_paths([ROOT / "seeds"])
        rows = seed_rows()
        if args.questions:  # interleave the kinds so a short run still samples each
            rows = interleaved(rows)
        sets.append(("seed_dev", seed_store, rows[: args.questions or None], seed_correct))
    if args.traps:
        rows = read_rows("trap_questions.jsonl")
        store = trap_store(args.data_dir / "traps", rows)
        rows = interleaved(rows) if args.questions else rows
        sets.append(("traps", store, rows[: args.questions or None], trap_correct))
    if args.halueval:
        rows = list(halueval_qa(range(args.halueval)))
        a, b = (args.corpus_rows or f"0:{args.halueval}").split(":")
        corpus = range(int(a), int(b))
        if corpus.stop > 5000:
            raise SystemExit("corpus rows >= 5000 are reserved")
        store = build_halueval(corpus, args.data_dir / f"halueval-{corpus.start}-{corpus.stop}")
        items = [{"id": f"row{r['row']}", "kind": "halueval", "question": r["question"],
                  "gold": r["right_answer"]} for r in rows]
        sets.append((f"halueval_qa[0:{args.halueval}]", store, items[: args.questions or None],
                     lambda item, ans: (not ans.abstained) and item["gold"].lower() in ans.answer.lower()))

    summary, details = [], {}
    for backend in args.backends.split(","):
        for name, store, items, judge in sets:
            assistant = Assistant(store.config.with_(llm=backend), store)
            t0 = time.perf_counter()
            records = run(assistant, items, judge, args.stream)
            row = summarize(backend, name, records)
            row["wall_s"] = round(time.perf_counter() - t0)
            summary.append(row)
            details[f"{backend}|{name}"] = records
            print(table([row]), flush=True)
    columns = ["backend", "set", "n", "correct_answerable", "abstain_unanswerable", "false_premise_ok", "premise_strict",
               "claims", "kept_claims", "not_verbatim", "fallback", "model_abstained", "errors", "p50_ms", "p95_ms", "first_claim_p50_ms",
               "prompt_tokens_p50", "tok_per_s", "wall_s", "by_kind"]
    print()
    print(table(summary, columns))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps({"summary": summary, "details": details}, indent=1))
    (OUT / f"{args.out}.md").write_text(table(summary, columns) + "\n")
    latency = {k: percentiles([r["ms"] for r in v]) for k, v in details.items()}
    print(json.dumps(latency, indent=1))


if __name__ == "__main__":
    main()
