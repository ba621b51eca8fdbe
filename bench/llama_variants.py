"""Prefill and decode tokens/s of every llama.cpp CPU variant of the portable build on this
machine, each in its own child process, against the AVX2 (haswell) variant in the same run.

    .venv/bin/python bench/llama_variants.py [--model qwen2.5-coder-1.5b] [--rounds 2]
        [--native-site DIR]   # also time a build installed with `pip install --target DIR`
                              # (e.g. today's default native build) in a child process

A variant this CPU lacks (its own score is 0) is listed and skipped; one that crashes is
reported with its signal. Figures name the CPU; the machine is shared, so take the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.llm.cpu_variant import cpu_name, probe_variant, ranked_variants, variant_files  # noqa: E402
from rag.llm.packaged_models import packaged_path  # noqa: E402

NATIVE_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from rag.llm.cpu_variant import measure
from pathlib import Path
p, d = measure(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), n_ctx=1024)
print(json.dumps({"prefill_tps": round(p, 1), "decode_tps": round(d, 1)}))
"""


def native(site: str, model: Path, prompt: int, decode: int) -> dict:
    env = {**os.environ, "PYTHONPATH": site}
    done = subprocess.run([sys.executable, "-c", NATIVE_CHILD, str(Path(__file__).resolve().parents[1]), str(model),
                           str(prompt), str(decode)],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        return {"ok": False, "reason": f"exit {done.returncode}: {(done.stderr or '').strip()[-200:]}"}
    return {"ok": True, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each is kept")
    ap.add_argument("--native-site", default=None)
    ap.add_argument("--variants", default="", help="comma-separated subset (default: every variant the CPU claims)")
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens prefilled")
    ap.add_argument("--decode", type=int, default=32, help="tokens decoded one at a time")
    args = ap.parse_args()
    model = Path(args.model) if args.model.endswith(".gguf") else packaged_path(args.model)
    claimed = ranked_variants()
    if args.variants:
        claimed = [v for v in claimed if v in args.variants.split(",")]
    skipped = sorted(set(variant_files()) - set(ranked_variants()))
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; model {model.name}")
    print(f"variants this CPU lacks (score 0): {', '.join(skipped) or 'none'}")
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for variant in claimed:
            p = probe_variant(variant, model, n_prompt=args.prompt, n_decode=args.decode)
            row = best.setdefault(variant, {"ok": p.ok, "score": p.score, "prefill": 0.0, "decode": 0.0,
                                            "reason": p.reason})
            row["ok"] = row["ok"] and p.ok
            row["prefill"], row["decode"] = max(row["prefill"], p.prefill_tps), max(row["decode"], p.decode_tps)
            if not p.ok:
                row["reason"] = p.reason
        if args.native_site:
            n = native(args.native_site, model, args.prompt, args.decode)
            row = best.setdefault("native build", {"ok": n["ok"], "score": "-", "prefill": 0.0, "decode": 0.0,
                                                   "reason": n.get("reason", "")})
            if n["ok"]:
                row["prefill"], row["decode"] = max(row["prefill"], n["prefill_tps"]), max(row["decode"], n["decode_tps"])
    base = best.get("haswell", {})
    print("\n| variant | score | runs | prefill tok/s | decode tok/s | prefill / haswell | decode / haswell |")
    print("|---|---|---|---|---|---|---|")
    for name, r in best.items():
        if not r["ok"]:
            print(f"| {name} | {r['score']} | **no**: {r['reason']} | | | | |")
            continue
        ratio_p = f"{r['prefill'] / base['prefill']:.2f}" if base.get("prefill") else "-"
        ratio_d = f"{r['decode'] / base['decode']:.2f}" if base.get("decode") else "-"
        print(f"| {name} | {r['score']} | yes | {r['prefill']:.1f} | {r['decode']:.1f} | {ratio_p} | {ratio_d} |")


if __name__ == "__main__":
    main()
