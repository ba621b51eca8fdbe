"""``rag eval``: run suites, score every answer, write a report directory.

Suites: ``seed`` (the dev set over the seed article), ``bbc`` (the BBC dev set over
named BBC articles among distractors), ``everyday`` (everyday office documents in .md, .html,
.docx, .txt and .pdf, ``eval/data/everyday/``), ``halueval-qa`` (HaluEval
QA knowledge as a corpus, rows 0-4999), ``judge-halueval`` (the judge alone on
HaluEval summarization and QA pairs), plus the user's own ``--questions`` and
``--pairs`` files. Metric definitions live in eval/metrics.py and the report.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tqdm import tqdm

from rag.config import Config

from eval import metrics, report

ROOT = Path(__file__).resolve().parents[1]
SEED_DEV = Path(__file__).parent / "data" / "seed_dev.jsonl"
BBC_DEV = Path(__file__).parent / "data" / "bbc_dev.jsonl"
EVERYDAY_DEV = Path(__file__).parent / "data" / "everyday_dev.jsonl"
EVERYDAY_DOCS = Path(__file__).parent / "data" / "everyday"
BBC_DISTRACTORS_PER_TOPIC = 20  # the first N articles of each BBC topic are indexed besides the named ones
SUITES = ("seed", "bbc", "everyday", "halueval-qa", "judge-halueval")
_MARK = re.compile(r"\s*\[(\d+)\]")


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


def make_judge(name: str, config: Config, judge_llm: str | None = None):
    """The judge by name; ``llm`` runs on ``judge_llm`` (a backend spec), else on the answer backend."""
    from rag.judge import judges

    if name == "offline":
        return judges.default_judge()
    if name == "llm":
        from rag.llm.backends import make_llm, parse_spec

        spec = parse_spec(judge_llm or config.llm)
        if spec.kind == "extractive":
            raise ValueError("--judge llm needs a model: pass --judge-llm openai:MODEL (or gguf:PATH, smollm2)")
        from rag.judge.logprob_judge import LogprobJudge

        llm = make_llm(spec, config)
        judge = LogprobJudge(llm, fallback=judges.LLMJudge(llm, decompose=True))
        judge.spec = spec.name
        return judge
    raise ValueError(f"unknown judge {name!r}: offline or llm")


def claims_of(answer) -> list[tuple[str, list[int]]]:
    """(claim text without markers, cited ids) for each answer sentence that cites a supporting
    or contradicting quote. The answerer's framing words ("No.", "Related, but not an answer:")
    are not claims; a sentence citing only "related" passages (when abstaining) claims nothing."""
    from rag.assistant import FRAMES
    from rag.index.sentences import sentence_spans

    related = {c.id for c in answer.citations if c.role == "related"}
    text = answer.answer
    out = []
    for span in sentence_spans(text):
        sentence = span.text(text)
        ids = [int(m) for m in re.findall(r"\[(\d+)\]", sentence)]
        # the marker after a sentence's full stop belongs to it
        tail = re.match(r"(\s*\[\d+\])+", text[span.end:])
        if tail:
            ids += [int(m) for m in re.findall(r"\d+", tail.group(0))]
        claim = FRAMES.sub("", _MARK.sub("", sentence).strip()).strip()
        if ids and set(ids) <= related:
            continue
        if ids and claim and not re.fullmatch(r"\[?\d+\]?", claim):
            out.append((claim, ids))
    return out


def score_answer(assistant, judge, answer, context: list[str]) -> dict:
    """Per-answer metrics: claims with verdicts against the context and against their own quotes."""
    from rag.judge.judges import judge_output  # noqa: F401  (same judge semantics as the pairs suite)

    quotes = {c.id: c.quote for c in answer.citations}
    doc_texts = {}
    for c in answer.citations:
        try:
            doc_texts[c.doc_id] = assistant.store.document(c.doc_id).text
        except assistant.store.DoesNotExist:
            pass
    claims = []
    for claim, ids in claims_of(answer):
        ctx = judge.judge(claim, context)
        cited = [quotes[i] for i in ids if i in quotes]
        by_quote = judge.judge(claim, cited) if cited else None
        claims.append({"claim": claim, "cites": ids, "supported": ctx.supported, "score": round(ctx.score, 4),
                       "evidence": ctx.evidence, "reasons": ctx.reasons,
                       "supported_by_citation": bool(by_quote and by_quote.supported),
                       "citation_score": round(by_quote.score, 4) if by_quote else 0.0})
    return {"claims": claims,
            "faithfulness": metrics.faithfulness([c["supported"] for c in claims]) if claims else None,
            "citation_support": (sum(c["supported_by_citation"] for c in claims) / len(claims)) if claims else None,
            "citation_validity": metrics.citation_validity(answer.citations, doc_texts) if answer.citations else None}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def run_questions(assistant, judge, rows: list[dict], gold_of: Callable[[dict, list], int | None],
                  top_k: int, suite: str) -> tuple[list[dict], dict]:
    """Ask every question, score it; returns (records, aggregate row)."""
    records = []
    for row in tqdm(rows, desc=suite, unit="q", dynamic_ncols=True):
        t = time.perf_counter()
        answer = assistant.ask(row["question"], history=row.get("history"), top_k=top_k)
        ms = (time.perf_counter() - t) * 1000
        nodes = assistant.retrieve(answer.question_used, max(top_k, 10))
        context = [n.node.text for n in nodes[:top_k]]
        scored = score_answer(assistant, judge, answer, context)
        unanswerable = bool(row.get("unanswerable") or row.get("kind") == "unanswerable")
        expected = row.get("expected") or ([row["answer"]] if row.get("answer") else [])
        if isinstance(expected, str):
            expected = [expected]
        rec = {"suite": suite, "id": row.get("id"), "kind": row.get("kind"), "question": row["question"],
               "question_used": answer.question_used, "unanswerable": unanswerable, "answer": answer.answer,
               "status": answer.status, "abstained": answer.abstained,
               "citations": [c.model_dump() for c in answer.citations], "latency_ms": round(ms, 1), **scored}
        if expected and not unanswerable:
            rec["correct"] = (not answer.abstained) and metrics.contains_expected(answer.answer, expected)
            rec["token_f1"] = max(metrics.token_f1(_MARK.sub("", answer.answer), e) for e in expected)
            rec["short_answer"] = metrics.short_answer(answer)
            rec["short_answer_f1"] = metrics.short_answer_f1(answer, expected)
        gold_rank = gold_of(row, nodes)
        if gold_rank is not None or row.get("support") or row.get("gold_source"):
            rec["gold_rank"] = gold_rank
        records.append(rec)

    truth = [r["unanswerable"] for r in records]
    predicted = [r["abstained"] for r in records]
    p, r = metrics.abstention_precision_recall(predicted, truth) if any(truth) else (None, None)
    ranked = [r for r in records if "gold_rank" in r]
    agg = {"suite": suite, "n": len(records),
           "faithfulness": _mean(r["faithfulness"] for r in records),
           "citation_validity": _mean(r["citation_validity"] for r in records),
           "citation_support": _mean(r["citation_support"] for r in records),
           "correctness": _mean(r["correct"] for r in records if "correct" in r),
           "token_f1": _mean(r["token_f1"] for r in records if "token_f1" in r),
           "short_answer_f1": _mean(r["short_answer_f1"] for r in records if "short_answer_f1" in r),
           "abstention_precision": round(p, 4) if p is not None else None,
           "abstention_recall": round(r, 4) if r is not None else None}
    if ranked:
        for k in (1, 5, 10):
            agg[f"recall@{k}"] = round(sum(1 for x in ranked if x["gold_rank"] and x["gold_rank"] <= k) / len(ranked), 4)
        agg["mrr@10"] = round(sum(1 / x["gold_rank"] for x in ranked if x["gold_rank"]) / len(ranked), 4)
    agg["p50_ms"] = sorted(r["latency_ms"] for r in records)[len(records) // 2] if records else None
    return records, agg


def _rank_of(nodes, test) -> int | None:
    for i, n in enumerate(nodes, 1):
        if test(n):
            return i
    return None


@contextmanager
def suite_index(config: Config, collection: str) -> Iterator[Config]:
    """The config of a suite's own index. Locally it lives in ``DATA_DIR/eval``, owned by this run while
    it lasts, so an eval never writes the index a running ``rag serve`` owns (see rag/index/ownership.py); on
    a Chroma server it is just another collection."""
    if config.chroma_url:
        yield config.with_(collection=collection)
        return
    from rag.index.ownership import own

    eval_dir = Path(config.data_dir) / "eval"
    with own(eval_dir, "eval"):
        yield config.with_(data_dir=eval_dir, collection=collection)


def suite_seed(config: Config, judge, top_k: int, limit: int | None):
    from rag.assistant import Assistant

    with suite_index(config, "eval_seed") as cfg:
        assistant = Assistant.open(cfg)
        assistant.ingest([ROOT / "seeds"])
        rows = read_jsonl(SEED_DEV)[:limit]

        def gold(row, nodes):
            support = row.get("support")
            return _rank_of(nodes, lambda n: support in n.node.text) if support else None

        return run_questions(assistant, judge, rows, gold, top_k, "seed")


def bbc_dev_documents(rows: list[dict]) -> list:
    """The BBC dev set's corpus: the articles its ``rows`` name plus the first
    ``BBC_DISTRACTORS_PER_TOPIC`` of each topic, as llama-index Documents sourced ``bbc:topic/NNN.txt``."""
    from rag.index.loaders import make_document

    from eval.datasets import bbc_articles

    named = {r["article"] for r in rows if r.get("article")}
    docs, seen = [], {}
    for path, text in bbc_articles():
        rel = f"{path.parent.name}/{path.name}"
        seen[path.parent.name] = seen.get(path.parent.name, 0) + 1
        if rel in named or seen[path.parent.name] <= BBC_DISTRACTORS_PER_TOPIC:
            docs.append(make_document(text, f"bbc:{rel}"))
    return docs


def suite_bbc(config: Config, judge, top_k: int, limit: int | None):
    """The BBC dev set: its named articles plus the first ``BBC_DISTRACTORS_PER_TOPIC`` of each topic."""
    from rag.assistant import Assistant
    from rag.index.ingest import Indexer

    rows = read_jsonl(BBC_DEV)[:limit]
    docs = bbc_dev_documents(rows)
    with suite_index(config, f"eval_bbc_{len(docs)}") as cfg:
        assistant = Assistant.open(cfg)
        Indexer(assistant.store).ingest_documents(docs)

        def gold(row, nodes):
            if not row.get("article") or not row.get("support"):
                return None
            return _rank_of(nodes, lambda n: n.node.metadata["source"] == f"bbc:{row['article']}"
                            and row["support"] in n.node.text)

        return run_questions(assistant, judge, rows, gold, top_k, "bbc")


def suite_everyday(config: Config, judge, top_k: int, limit: int | None):
    """The everyday dev set: office documents of several formats (``EVERYDAY_DOCS``), read by the loaders
    as files; a question's ``doc`` names the file that answers it."""
    from rag.assistant import Assistant

    with suite_index(config, "eval_everyday") as cfg:
        assistant = Assistant.open(cfg)
        assistant.ingest([EVERYDAY_DOCS], prune=True)
        rows = read_jsonl(EVERYDAY_DEV)[:limit]

        def gold(row, nodes):
            if not row.get("doc"):
                return None
            return _rank_of(nodes, lambda n: n.node.metadata["source"].endswith("/" + row["doc"]))

        return run_questions(assistant, judge, rows, gold, top_k, "everyday")


def suite_questions(config: Config, judge, top_k: int, limit: int | None, path: Path):
    from rag.assistant import Assistant

    assistant = Assistant.open(config)
    if not assistant.documents():
        raise ValueError("the index is empty: run `rag ingest` first")
    rows = read_jsonl(path)[:limit]
    for n, row in enumerate(rows, 1):
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise ValueError(f"{path}:{n}: needs a non-empty 'question'")
    return run_questions(assistant, judge, rows, lambda row, nodes: None, top_k,
                         f"questions:{Path(path).name}")


def suite_halueval_qa(config: Config, judge, top_k: int, limit: int | None):
    from rag.assistant import Assistant
    from rag.index.ingest import Indexer
    from rag.index.loaders import make_document

    from eval.datasets import halueval_qa

    limit = limit or 500
    rows = list(halueval_qa(range(0, min(limit, 5000))))
    docs = [make_document(r["knowledge"], f"halueval-qa:row{r['row']}", title=f"HaluEval QA row {r['row']}")
            for r in rows]
    questions = [{"id": f"row{r['row']}", "question": r["question"], "answer": r["right_answer"],
                  "gold_source": f"halueval-qa:row{r['row']}"} for r in rows]
    with suite_index(config, f"eval_halueval_qa_{len(rows)}") as cfg:
        assistant = Assistant.open(cfg)
        Indexer(assistant.store).ingest_documents(docs)
        return run_questions(assistant, judge, questions,
                             lambda row, nodes: _rank_of(nodes, lambda n: n.node.metadata["source"] == row["gold_source"]),
                             top_k, "halueval-qa")


def judge_pairs(judge, pairs: list[dict], suite: str) -> tuple[list[dict], dict, list[int], list[float]]:
    """The judge alone on (context, output[, label]) pairs."""
    from rag.judge.judges import judge_output

    threshold = getattr(judge, "model", {}).get("threshold", 0.5)
    records, labels, scores = [], [], []
    for i, p in enumerate(tqdm(pairs, desc=suite, unit="pair", dynamic_ncols=True)):
        if not isinstance(p.get("context"), str) or not isinstance(p.get("output"), str):
            raise ValueError(f"pair {i + 1}: needs string 'context' and 'output'")
        score, verdicts = judge_output(p["context"], p["output"], judge)
        rec = {"suite": suite, "id": p.get("id", i + 1), "score": round(score, 4), "supported": score >= threshold,
               "claims": [{"claim": v.claim, "supported": v.supported, "score": round(v.score, 4),
                           "evidence": v.evidence, "reasons": v.reasons} for v in verdicts]}
        if p.get("label") in ("supported", "unsupported"):
            rec["label"] = p["label"]
            labels.append(int(p["label"] == "supported"))
            scores.append(score)
        for key in ("kind", "words"):
            if key in p:
                rec[key] = p[key]
        records.append(rec)
    agg = {"suite": suite, "n": len(records)}
    if labels and 0 < sum(labels) < len(labels):
        agg["balanced_accuracy"] = round(metrics.balanced_accuracy(labels, [s >= threshold for s in scores]), 4)
        agg["roc_auc"] = round(metrics.roc_auc(labels, scores), 4)
    return records, agg, labels, scores


def suite_judge_halueval(judge, limit: int | None):
    from eval.datasets import halueval_qa, halueval_summarization

    n = min(limit or 1000, 5000)
    summ, qa = [], []
    for r in halueval_summarization(range(0, n)):
        lw, lh = len(r["right_summary"].split()), len(r["hallucinated_summary"].split())
        matched = abs(lw - lh) <= 0.1 * max(lw, lh)
        summ.append({"id": f"sum{r['row']}+", "context": r["document"], "output": r["right_summary"],
                     "label": "supported", "matched": matched})
        summ.append({"id": f"sum{r['row']}-", "context": r["document"], "output": r["hallucinated_summary"],
                     "label": "unsupported", "matched": matched})
    for r in halueval_qa(range(0, n)):
        for out, label in ((r["right_answer"], "supported"), (r["hallucinated_answer"], "unsupported")):
            qa.append({"id": f"qa{r['row']}{'+' if label == 'supported' else '-'}",
                       "context": r["knowledge"] + "\nQuestion: " + r["question"], "output": out, "label": label})
    rec_s, agg_s, lab_s, sc_s = judge_pairs(judge, summ, "judge-halueval:summarization")
    matched = [i for i, p in enumerate(summ) if p["matched"]]
    agg_m = {"suite": "judge-halueval:summarization (length-matched)", "n": len(matched)}
    if matched:
        ml, ms = [lab_s[i] for i in matched], [sc_s[i] for i in matched]
        threshold = getattr(judge, "model", {}).get("threshold", 0.5)
        if 0 < sum(ml) < len(ml):
            agg_m["balanced_accuracy"] = round(metrics.balanced_accuracy(ml, [s >= threshold for s in ms]), 4)
            agg_m["roc_auc"] = round(metrics.roc_auc(ml, ms), 4)
    rec_q, agg_q, lab_q, sc_q = judge_pairs(judge, qa, "judge-halueval:qa")
    return rec_s + rec_q, [agg_s, agg_m, agg_q], (lab_s, sc_s)


def run(suites: list[str], config: Config, out: Path, judge_name: str = "offline", top_k: int = 6,
        limit: int | None = None, questions: Path | None = None, pairs: Path | None = None,
        judge_llm: str | None = None) -> dict:
    """Run the suites and write ``out``; returns the summary dict."""
    for s in suites:
        if s not in SUITES:
            raise ValueError(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
    if not suites and not questions and not pairs:
        suites = ["seed"]
    judge = make_judge(judge_name, config, judge_llm)
    results, tables, plots = [], {}, {}
    summary: dict = {}
    answer_rows = []
    for suite in suites:
        if suite == "seed":
            recs, agg = suite_seed(config, judge, top_k, limit)
        elif suite == "halueval-qa":
            recs, agg = suite_halueval_qa(config, judge, top_k, limit)
        elif suite == "bbc":
            recs, agg = suite_bbc(config, judge, top_k, limit)
        elif suite == "everyday":
            recs, agg = suite_everyday(config, judge, top_k, limit)
        else:
            recs, aggs, (labels, scores) = suite_judge_halueval(judge, limit)
            results += recs
            tables["judge"] = tables.get("judge", []) + aggs
            plots["judge ROC, HaluEval summarization"] = {"kind": "roc", "points": report.roc_points(labels, scores),
                                                          "x": "false positive rate", "y": "true positive rate"}
            continue
        results += recs
        answer_rows.append(agg)
        plots[f"{suite}: claim support scores"] = {"kind": "hist", "values": [c["score"] for r in recs for c in r["claims"]]}
        if "recall@1" in agg:
            plots[f"{suite}: recall@k"] = {"kind": "curve", "x": "k", "y": "recall",
                                           "points": [(k, agg[f"recall@{k}"]) for k in (1, 5, 10)]}
    if questions:
        recs, agg = suite_questions(config, judge, top_k, limit, questions)
        results += recs
        answer_rows.append(agg)
    if pairs:
        recs, agg, labels, scores = judge_pairs(judge, read_jsonl(pairs), f"pairs:{Path(pairs).name}")
        results += recs
        tables["judge"] = tables.get("judge", []) + [agg]
        summary.update({k: agg[k] for k in ("n", "balanced_accuracy", "roc_auc") if k in agg})
        if labels and 0 < sum(labels) < len(labels):
            plots["judge ROC, pairs"] = {"kind": "roc", "points": report.roc_points(labels, scores),
                                         "x": "false positive rate", "y": "true positive rate"}
    if answer_rows:
        tables["answers"] = answer_rows
    summary.update({"config": {"suites": suites, "questions": str(questions) if questions else None,
                               "pairs": str(pairs) if pairs else None, "backend": config.llm, "judge": judge_name,
                               "judge_model": getattr(judge, "spec", None) or getattr(judge, "name", judge_name),
                               "embedder": "all-MiniLM-L6-v2 int8 ONNX",
                               "top_k": top_k, "limit": limit, "halueval_rows": f"0-{min(limit or 1000, 5000) - 1}",
                               "date": datetime.datetime.now().isoformat(timespec="seconds")},
                    "tables": tables})
    report.write(out, results, summary, plots)
    return summary
