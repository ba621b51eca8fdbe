"""The local LLM judge (yes/no logprobs, rag/judge/logprob_judge.py) on the judge sets.

    .venv/bin/python bench/llm_judge.py --calibrate            # threshold from the dev pairs, written
    .venv/bin/python bench/llm_judge.py --seed --halueval 40   # seed pairs by kind; 40 HaluEval test rows per task
    .venv/bin/python bench/llm_judge.py --halueval 20 --tasks summarization --cache bench/out/llm_judge_TASK.jsonl  # resumable

Sets:
* dev pairs (eval/data/judge_dev_pairs.jsonl, over a BBC article): the only set the
  threshold is fitted on (``--calibrate`` writes rag/data/logprob_judge_calibration.json);
* seed pairs (eval/data/seed_judge_pairs.jsonl): a test set, reported by kind;
* HaluEval summarization and QA rows from 2500 (the offline judge's test rows), both outputs
  of each row; rows >= 5000 are never read.

An output is judged sentence by sentence (its weakest sentence decides). Prints balanced
accuracy at the calibrated threshold, the best in-sample threshold's, ROC AUC, and seconds
per claim. Uses the in-process GGUF by default (``--llm qwen2.5-coder-1.5b``); any
``openai:MODEL`` spec works too (RAG_LLM_BASE_URL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import offline  # noqa: E402,F401
from rag.config import Config  # noqa: E402
from rag.llm.backends import make_llm, parse_spec  # noqa: E402
from eval.datasets import halueval_qa, halueval_summarization  # noqa: E402
from rag.judge.judges import LLMJudge, aggregate, split_claims  # noqa: E402
from rag.judge.logprob_judge import CALIBRATION, LogprobJudge  # noqa: E402
from eval.metrics import balanced_accuracy, roc_auc  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "eval" / "data"


def read_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def claim_scores(judge: LogprobJudge, context: str, output: str) -> list[float]:
    """P(yes) of each sentence of ``output`` against its best sentence of ``context``."""
    scores = []
    for claim in split_claims(output):
        p = judge.score(claim, judge.evidence_for(claim, context))
        scores.append(0.0 if p is None else p)
    return scores


# How an output's claim scores become its score (chosen on dev rows: --choose-aggregation)
AGGREGATIONS = {
    "weakest": lambda s, t: aggregate(s, None, 1.0),
    "logit-mean": lambda s, t: aggregate(s, None, 0.0),
    "half-weakest": lambda s, t: aggregate(s, None, 0.5),
    "share-supported": lambda s, t: sum(x >= t for x in s) / len(s) if s else 1.0,
}


def output_score(judge: LogprobJudge, context: str, output: str) -> tuple[float, int]:
    scores = claim_scores(judge, context, output)
    return (min(scores) if scores else 1.0), len(scores)


def best_threshold(labels, scores) -> tuple[float, float]:
    best = (0.5, 0.0)
    for t in sorted(set(scores)):
        bacc = balanced_accuracy(labels, [int(s >= t) for s in scores])
        if bacc > best[1]:
            best = (t, bacc)
    return best


def report(name: str, labels, scores, threshold: float, claims: int, seconds: float, extra: str = "") -> dict:
    auc = roc_auc(labels, scores)
    bacc = balanced_accuracy(labels, [int(s >= threshold) for s in scores])
    t_best, b_best = best_threshold(labels, scores)
    row = {"set": name, "n": len(labels), "bacc": round(bacc, 4), "auc": round(auc, 4),
           "best_threshold": round(t_best, 4), "bacc_best_in_sample": round(b_best, 4),
           "seconds_per_claim": round(seconds / max(claims, 1), 2)}
    print(f"{name:32s} n={len(labels):4d}  bal.acc {bacc:.3f} @ {threshold:.3f}  AUC {auc:.3f}  "
          f"(best in-sample {b_best:.3f} @ {t_best:.3f})  {row['seconds_per_claim']} s/claim {extra}", flush=True)
    return row


def run_pairs(judge, pairs: list[dict], threshold: float, name: str, by_kind: bool = False) -> dict:
    labels, scores, kinds, claims = [], [], [], 0
    t0 = time.perf_counter()
    for p in pairs:
        s, n = output_score(judge, p["context"], p["output"])
        claims += n
        labels.append(int(p["label"] == "supported"))
        scores.append(s)
        kinds.append(p.get("kind", ""))
    row = report(name, labels, scores, threshold, claims, time.perf_counter() - t0)
    if by_kind:
        tally: dict[str, list[int]] = {}
        for lab, s, k in zip(labels, scores, kinds):
            tally.setdefault(k, [0, 0])
            tally[k][0] += int((s >= threshold) == bool(lab))
            tally[k][1] += 1
        row["by_kind"] = {k: f"{a}/{b}" for k, (a, b) in tally.items()}
        print("   by kind: " + ", ".join(f"{k} {v}" for k, v in row["by_kind"].items()))
    row["scores"] = scores
    row["labels"] = labels
    return row


def halueval(judge, task: str, rows: range, threshold: float, cache: Path | None = None,
             aggregation: str = "weakest", choose: bool = False) -> list[dict]:
    """Both outputs of each row. With ``cache`` (a JSONL file) every scored output is appended as it is
    judged and a rerun resumes from it, so a stopped run keeps what it measured. With ``choose`` (dev
    rows only) every aggregation is compared and the best (ROC AUC) is returned with its threshold."""
    done: dict[tuple[int, int], dict] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                done[(d["row"], d["label"])] = d
    labels, scores, lens, claims, seconds, per_output = [], [], [], 0, 0.0, []
    source = halueval_summarization(rows) if task == "summarization" else halueval_qa(rows)
    for i, r in zip(rows, source):
        if task == "summarization":
            context, outputs = r["document"], [r["right_summary"], r["hallucinated_summary"]]
        else:
            context = r["knowledge"]
            outputs = [f'The answer to "{r["question"]}" is: {a}' for a in (r["right_answer"], r["hallucinated_answer"])]
        for label, out in zip((1, 0), outputs):
            d = done.get((i, label))
            if d is None or "claim_scores" not in d:
                t0 = time.perf_counter()
                per_claim = claim_scores(judge, context, out)
                d = {"row": i, "label": label, "claim_scores": per_claim, "claims": len(per_claim),
                     "seconds": time.perf_counter() - t0}
                if cache is not None:
                    with cache.open("a") as fh:
                        fh.write(json.dumps(d) + "\n")
            claims += d["claims"]
            seconds += d["seconds"]
            labels.append(label)
            scores.append(AGGREGATIONS[aggregation](d["claim_scores"], threshold))
            per_output.append(d["claim_scores"])
        lens.append((len(outputs[0].split()), len(outputs[1].split())))
        print(f"  {task} row {i}: {claims} claims, {seconds / max(claims, 1):.1f} s/claim", flush=True)
    out = [report(f"HaluEval {task} rows {rows.start}-{rows.stop - 1} ({aggregation})", labels, scores, threshold,
                  claims, seconds)]
    if choose:
        for name, fn in AGGREGATIONS.items():
            agg_scores = [fn(cs, threshold) for cs in per_output]
            row = report(f"  aggregation {name}", labels, agg_scores, threshold, 1, 0.0)
            row["aggregation"] = name
            out.append(row)
    if task == "summarization":
        keep = [abs(a - b) <= 0.1 * max(a, b, 1) for a, b in lens]
        ml = [lab for i, lab in enumerate(labels) if keep[i // 2]]
        ms = [s for i, s in enumerate(scores) if keep[i // 2]]
        if ml:
            out.append(report("  length-matched", ml, ms, threshold, 1, 0.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--calibrate", action="store_true", help="fit the threshold on the dev pairs and write it")
    ap.add_argument("--seed", action="store_true", help="the seed pairs (a test set), by kind")
    ap.add_argument("--halueval", type=int, default=0, help="HaluEval rows from --start per task (0: skip)")
    ap.add_argument("--start", type=int, default=2500)
    ap.add_argument("--tasks", default="summarization,qa", help="HaluEval tasks to run, comma-separated")
    ap.add_argument("--out", type=Path, default=None, help="write all figures as JSON here")
    ap.add_argument("--evidence-sentences", type=int, default=1,
                    help="evidence shown per claim: the N best sentences of the document (default 1)")
    ap.add_argument("--aggregation", default=None, choices=sorted(AGGREGATIONS),
                    help="how an output's claim scores combine (default: the calibrated one)")
    ap.add_argument("--choose-aggregation", action="store_true",
                    help="compare every aggregation on HaluEval summarization rows from --start (dev rows < 2500 "
                         "only) and write the best, with its output threshold, to the calibration file")
    ap.add_argument("--cache", type=Path, default=None,
                    help="HaluEval scores per output are appended here (JSONL, one file per task: TASK is replaced); "
                         "a rerun resumes. Scores are not keyed by model: use another file for another --llm")
    args = ap.parse_args()
    if args.start + args.halueval > 5000:
        raise SystemExit("rows >= 5000 are reserved")
    config = Config()
    llm = make_llm(parse_spec(args.llm), config)
    judge = LogprobJudge(llm, fallback=LLMJudge(llm))
    judge.sentences = args.evidence_sentences
    results = {"llm": args.llm}
    if args.calibrate:
        dev = run_pairs(judge, read_pairs(DATA / "judge_dev_pairs.jsonl"), judge.threshold, "dev pairs (fit)")
        t, b = best_threshold(dev["labels"], dev["scores"])
        CALIBRATION.write_text(json.dumps({"threshold": round(t, 4), "fitted_on": "eval/data/judge_dev_pairs.jsonl",
                                           "n": dev["n"], "balanced_accuracy_in_sample": round(b, 4),
                                           "auc": dev["auc"], "llm": args.llm}, indent=2) + "\n")
        judge.threshold = t
        print(f"threshold {t:.4f} written to {CALIBRATION}")
        results["dev"] = dev
    if args.seed:
        results["seed"] = run_pairs(judge, read_pairs(DATA / "seed_judge_pairs.jsonl"), judge.threshold,
                                    "seed pairs (test)", by_kind=True)
    if args.halueval:
        rows = range(args.start, args.start + args.halueval)
        if args.choose_aggregation and args.start + args.halueval > 2500:
            raise SystemExit("choose on dev rows (< 2500) only")
        aggregation = args.aggregation or judge.aggregation
        results["halueval"] = [row for task in args.tasks.split(",")
                               for row in halueval(judge, task, rows, judge.threshold,
                                                   Path(str(args.cache).replace("TASK", task)) if args.cache else None,
                                                   aggregation, args.choose_aggregation and task == "summarization")]
        if args.choose_aggregation:
            best = max((r for r in results["halueval"] if "aggregation" in r), key=lambda r: r["auc"])
            data = json.loads(CALIBRATION.read_text())
            data["output"] = {"aggregation": best["aggregation"], "threshold": best["best_threshold"],
                              "auc": best["auc"], "bacc_in_sample": best["bacc_best_in_sample"],
                              "fitted_on": f"HaluEval summarization rows {rows.start}-{rows.stop - 1} (dev)"}
            CALIBRATION.write_text(json.dumps(data, indent=2) + "\n")
            print(f"output aggregation {best['aggregation']} (threshold {best['best_threshold']}) written to {CALIBRATION}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
