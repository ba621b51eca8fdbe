"""``rag eval``: registered with the ``rag`` command through the entry point ``rag.commands``
(pyproject.toml), so the product does not import its harness."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="eval")
@click.argument("suites", nargs=-1)
@click.option("--questions", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL: question, optional answer/expected, optional unanswerable; asked on your index")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL: context, output, optional label supported/unsupported; the judge alone")
@click.option("--judge", "judge_name", type=click.Choice(["offline", "llm"]), default="offline", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default runs/<time>)")
@click.option("--limit", type=click.IntRange(1, 5000), default=None, help="Rows/questions per suite")
@click.option("--top-k", type=click.IntRange(1, 50), default=6, show_default=True)
@click.option("--llm", envvar="RAG_LLM", default=None, help="Answer backend to evaluate")
@click.option("--judge-llm", envvar="RAG_JUDGE_LLM", default=None,
              help="Model for --judge llm (qwen2.5-coder-1.5b, openai:MODEL, gguf:PATH); default: the --llm backend")
@click.pass_context
def eval_command(ctx, suites, questions, pairs, judge_name, out, limit, top_k, llm, judge_llm):
    """Run eval suites (seed, bbc, everyday, halueval-qa, judge-halueval) and/or your own --questions/--pairs;
    writes results.jsonl, summary.json, report.md and report.html."""
    import time as _time

    from eval.runner import run

    out = out or Path("runs") / _time.strftime("%Y%m%d-%H%M%S")
    try:
        summary = run(list(suites), ctx.obj["config"].with_(llm=llm), out, judge_name=judge_name, top_k=top_k,
                      limit=limit, questions=questions, pairs=pairs, judge_llm=judge_llm)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    for name, rows in summary["tables"].items():
        click.echo(f"\n{name}")
        for row in rows:
            click.echo("  " + ", ".join(f"{k}={v}" for k, v in row.items() if v is not None))
    click.echo(f"\nreport: {out / 'report.html'}")
