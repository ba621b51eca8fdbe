"""Eval reports: results.jsonl, summary.json, report.md and a self-contained
report.html (tables and inline SVG plots; no outside assets)."""

from __future__ import annotations

import html
import json
from pathlib import Path

DEFINITIONS = {
    "faithfulness": "share of the answer's claims (sentences) that the judge finds supported by the retrieved context",
    "citation_validity": "share of citations whose quote equals document_text[start:end] (must be 1.0)",
    "citation_support": "share of claims supported by the quotes they cite (not just by some passage)",
    "correctness": "share of answerable questions whose answer contains an expected phrase (case-insensitive)",
    "token_f1": "SQuAD-style token F1 of the answer against the gold answer (mean)",
    "abstention_precision": "of the questions the system abstained on, the share that were unanswerable",
    "abstention_recall": "of the unanswerable questions, the share the system abstained on",
    "recall@k": "share of questions with a gold passage among the top k retrieved",
    "mrr@10": "mean reciprocal rank of the first gold passage in the top 10",
    "balanced_accuracy": "mean of the judge's accuracy on supported and on unsupported outputs",
    "roc_auc": "probability that a supported output scores above an unsupported one",
}


def _svg_histogram(values: list[float], title: str, bins: int = 10) -> str:
    if not values:
        return ""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    bars = "".join(f'<rect x="{30 + i * 26}" y="{130 - 110 * c / top:.1f}" width="22" height="{110 * c / top:.1f}" '
                   f'fill="#e8590c"><title>{i / bins:.1f}-{(i + 1) / bins:.1f}: {c}</title></rect>'
                   for i, c in enumerate(counts))
    return (f'<figure><svg width="320" height="150" role="img" aria-label="{html.escape(title)}">{bars}'
            f'<line x1="28" y1="130" x2="292" y2="130" stroke="#333"/><text x="30" y="145" font-size="10">0</text>'
            f'<text x="280" y="145" font-size="10">1</text></svg><figcaption>{html.escape(title)}</figcaption></figure>')


def _svg_curve(points: list[tuple[float, float]], title: str, xlabel: str, ylabel: str, diagonal=False) -> str:
    if not points:
        return ""
    xs = [p[0] for p in points]
    x0, x1 = min(xs), max(xs) or 1
    span = (x1 - x0) or 1
    path = " ".join(f"{'M' if i == 0 else 'L'}{30 + 260 * (x - x0) / span:.1f},{130 - 110 * y:.1f}"
                    for i, (x, y) in enumerate(points))
    diag = '<line x1="30" y1="130" x2="290" y2="20" stroke="#aaa" stroke-dasharray="4"/>' if diagonal else ""
    return (f'<figure><svg width="320" height="160" role="img" aria-label="{html.escape(title)}">{diag}'
            f'<path d="{path}" fill="none" stroke="#1c7ed6" stroke-width="2"/>'
            f'<line x1="30" y1="130" x2="290" y2="130" stroke="#333"/><line x1="30" y1="20" x2="30" y2="130" stroke="#333"/>'
            f'<text x="120" y="152" font-size="10">{html.escape(xlabel)}</text>'
            f'<text x="0" y="15" font-size="10">{html.escape(ylabel)}</text></svg>'
            f'<figcaption>{html.escape(title)}</figcaption></figure>')


def roc_points(labels: list[int], scores: list[float]) -> list[tuple[float, float]]:
    pairs = sorted(zip(scores, labels), reverse=True)
    pos = sum(labels) or 1
    neg = (len(labels) - sum(labels)) or 1
    tp = fp = 0
    points = [(0.0, 0.0)]
    for _, label in pairs:
        tp += label
        fp += 1 - label
        points.append((fp / neg, tp / pos))
    step = max(1, len(points) // 200)
    return points[::step] + [points[-1]]


def _table_md(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


MAX_VERDICT_RECORDS = 500


def _verdicts_html(results: list[dict]) -> str:
    """Per-claim verdicts: each record (an answer or a judged output) opens to its claims, each with
    the judge's verdict, score and the evidence it was judged against."""
    shown = [r for r in results if r.get("claims")][:MAX_VERDICT_RECORDS]
    if not shown:
        return ""
    items = []
    for r in shown:
        label = f" · label {r['label']}" if "label" in r else ""
        verdict = "supported" if r.get("supported", r.get("score", 0) >= 0.5) else "unsupported"
        rows = "".join(
            f"<tr class=\"{'ok' if c.get('supported') else 'no'}\"><td>{html.escape(str(c.get('claim', '')))}</td>"
            f"<td>{'yes' if c.get('supported') else 'no'}</td><td>{html.escape(str(c.get('score', '')))}</td>"
            f"<td>{html.escape(str(c.get('evidence', ''))[:600])}</td></tr>" for c in r["claims"])
        items.append(f"<details><summary>{html.escape(str(r.get('suite', '')))} · {html.escape(str(r.get('id', '')))}"
                     f"{html.escape(label)} · {verdict} ({html.escape(str(r.get('score', '')))})</summary>"
                     f"<table><thead><tr><th>claim</th><th>supported</th><th>score</th><th>evidence judged against"
                     f"</th></tr></thead><tbody>{rows}</tbody></table></details>")
    more = len([r for r in results if r.get("claims")]) - len(shown)
    tail = f"<p>{more} more records in results.jsonl.</p>" if more > 0 else ""
    return "<h2>Per-claim verdicts</h2>" + "".join(items) + tail


def write(out: Path, results: list[dict], summary: dict, plots: dict) -> None:
    """Write the run directory. ``summary`` holds ``config`` and per-suite ``tables``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

    used = [k for k in DEFINITIONS if any(k in json.dumps(t) for t in summary.get("tables", {}).values())]
    md = [f"# Eval report\n\nConfig: `{json.dumps(summary.get('config', {}))}`\n"]
    for name, rows in summary.get("tables", {}).items():
        md += [f"## {name}\n", _table_md(rows), ""]
    md += ["## Definitions\n"] + [f"- **{k}**: {DEFINITIONS[k]}" for k in used]
    (out / "report.md").write_text("\n".join(md) + "\n")

    figures = []
    for title, spec in plots.items():
        if spec["kind"] == "hist":
            figures.append(_svg_histogram(spec["values"], title))
        else:
            figures.append(_svg_curve(spec["points"], title, spec.get("x", ""), spec.get("y", ""),
                                      diagonal=spec["kind"] == "roc"))
    sections = "".join(f"<h2>{html.escape(n)}</h2>{_table_html(rows)}" for n, rows in summary.get("tables", {}).items())
    sections += _verdicts_html(results)
    defs = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(DEFINITIONS[k])}</li>" for k in used)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Eval report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:14px}}
figure{{display:inline-block;margin:0 1em 1em 0}}code{{background:#f4f4f4;padding:2px}}
tr.no td:nth-child(2){{color:#b91c1c;font-weight:600}}tr.ok td:nth-child(2){{color:#15803d}}
details{{margin:.3em 0}}summary{{cursor:pointer}}</style></head><body>
<h1>Eval report</h1><p>Config: <code>{html.escape(json.dumps(summary.get('config', {})))}</code></p>
{sections}<h2>Plots</h2>{''.join(figures)}<h2>Definitions</h2><ul>{defs}</ul>
<p>{len(results)} records in results.jsonl.</p></body></html>"""
    (out / "report.html").write_text(page)
