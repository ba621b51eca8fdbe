"""The ``rag`` command. Each subcommand's help text is its documentation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click

from rag import offline  # noqa: F401
from rag.config import DEFAULT_SEEDS_DIR, Config


def _config(ctx) -> Config:
    return ctx.obj["config"]


class PluginGroup(click.Group):
    """This package's subcommands plus those that installed packages register under the entry-point
    group ``rag.commands`` (``rag eval`` comes from the eval harness that way: the product never
    imports its harness)."""

    def _load_plugins(self) -> None:
        if getattr(self, "_plugins_loaded", False):
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group="rag.commands"):
            if ep.name not in self.commands:
                self.add_command(ep.load(), ep.name)

    def list_commands(self, ctx):
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        if name not in self.commands:
            self._load_plugins()
        return super().get_command(ctx, name)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", envvar="RAG_DATA_DIR", type=click.Path(path_type=Path), default=None,
              help="All local state (Chroma files, caches). Env RAG_DATA_DIR; default ./.rag")
@click.option("--chroma-url", envvar="RAG_CHROMA_URL", default=None,
              help="Use a Chroma server (e.g. http://127.0.0.1:8000) instead of local files. Env RAG_CHROMA_URL")
@click.option("--index", "--collection", "index_name", envvar=["RAG_INDEX", "RAG_COLLECTION"], default=None,
              help="Index name: the Chroma collections' prefix (default: documents). Env RAG_INDEX. Not a document "
                   "collection: those are `rag ingest --collection`")
@click.pass_context
def cli(ctx, data_dir, chroma_url, index_name):
    """Grounded document chat: every claim in an answer is a verified verbatim quote."""
    ctx.obj = {"config": Config().with_(data_dir=data_dir, chroma_url=chroma_url, collection=index_name)}


def _print_citations(answer) -> None:
    for c in answer.citations:
        label = {"support": "", "related": " (related)", "contradiction": " (contradicts the premise)"}[c.role]
        where = f"p. {c.page}" + (f"-{c.page_end}" if c.page_end else "") if c.page else f"@ {c.start}-{c.end}"
        click.echo(click.style(f"  [{c.id}]{label} {c.title} — {c.source} {where}", fg="cyan"))
        click.echo(textwrap.indent(textwrap.fill(f"“{c.quote}”", 96), "      "))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone from these folders")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@click.option("--collection", default=None, help="Put these files in this document collection (questions can be "
              "scoped to one). Default: new files go to 'default', known files stay in theirs")
@click.pass_context
def ingest(ctx, paths, prune, as_json, collection):
    """Index files and folders (default: seeds/). Idempotent: unchanged files are skipped.
    Exits 1 when any file could not be indexed (the others are)."""
    from contextlib import nullcontext

    from rag.index.ingest import IngestLocked, Indexer
    from rag.index.ownership import DataDirBusy, own
    from rag.index.store import Store

    paths = list(paths) or [Path(DEFAULT_SEEDS_DIR)]
    config = _config(ctx)
    if collection is not None:
        from rag.index.scope import check_name

        try:
            check_name(collection)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--collection")
    try:
        with nullcontext() if config.chroma_url else own(Path(config.data_dir), "ingest"):
            report = Indexer(Store(config)).ingest_paths(paths, prune=prune, show_progress=not as_json,
                                                         collection=collection)
    except (IngestLocked, DataDirBusy) as exc:
        raise click.ClickException(str(exc))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for skipped in report.failed:
            click.echo(click.style(str(skipped), fg="yellow"), err=True)
        for note in report.notes:
            click.echo(note, err=True)
        click.echo(report.summary())
    if report.failed:  # scripts must notice: the rest is indexed, but not everything
        click.echo(f"{len(report.failed)} file(s) could not be indexed", err=True)
        raise SystemExit(1)


@cli.command()
@click.argument("query")
@click.option("--top-k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(ctx, query, top_k, mode, as_json):
    """Print the passages that best match QUERY, with scores and offsets."""
    from rag.answer.retriever import HybridRetriever
    from rag.index.store import Store

    hits = HybridRetriever(Store(_config(ctx)), top_k=top_k, mode=mode).retrieve(query)
    rows = [{"rank": i + 1, "score": round(h.score, 5), "dense_score": h.node.metadata["dense_score"],
             "bm25_score": h.node.metadata["bm25_score"], "doc_id": h.node.metadata["doc_id"],
             "source": h.node.metadata["source"], "title": h.node.metadata["title"],
             "start": h.node.start_char_idx, "end": h.node.end_char_idx, "text": h.node.text}
            for i, h in enumerate(hits)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No passages (is the index empty? run `rag ingest`).")
    for r in rows:
        click.echo(click.style(f"{r['rank']}. {r['score']:.4f}  {r['title']} — {r['source']} @ {r['start']}-{r['end']}",
                               fg="cyan"))
        click.echo(textwrap.indent(textwrap.fill(r["text"], 96), "   "))


def _open_assistant(ctx, llm=None, top_k=None):
    from rag.assistant import Assistant

    config = _config(ctx).with_(llm=llm)
    assistant = Assistant.open(config)
    if not assistant.documents():
        click.echo(f"Index is empty; indexing {DEFAULT_SEEDS_DIR}/ first.", err=True)
        assistant.ingest([Path(DEFAULT_SEEDS_DIR)])
    return assistant


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the Answer object as JSON")
@click.option("--top-k", type=click.IntRange(1, 50), default=None, help="Passages to answer from")
@click.option("--llm", envvar="RAG_LLM", default=None, help="Answer backend: extractive (default), qwen2.5-coder-1.5b (local, make local), openai:MODEL (OPENAI_BASE_URL or RAG_LLM_BASE_URL), gguf:PATH, smollm2, gemma-270m")
@click.option("--collection", default=None, help="Answer only from this document collection")
@click.option("--doc", "doc_ids", multiple=True, help="Answer only from this document (doc_id; repeat for several)")
@click.pass_context
def ask(ctx, question, as_json, top_k, llm, collection, doc_ids):
    """Answer QUESTION from the indexed documents, with verified quotes."""
    from rag.index.scope import Scope, ScopeError

    assistant = _open_assistant(ctx, llm)
    try:
        scope = Scope.of(collection, list(doc_ids)) if collection or doc_ids else None
        answer = assistant.ask(question, top_k=top_k, scope=scope)
    except ValueError as exc:  # BadRequest, or a malformed collection name
        raise click.BadParameter(str(exc), param_hint="QUESTION" if isinstance(exc, assistant.BadRequest) else "--collection")
    except ScopeError as exc:
        raise click.ClickException(str(exc))
    if as_json:
        click.echo(answer.model_dump_json(indent=2))
        return
    click.echo(answer.answer)
    _print_citations(answer)


@cli.command()
@click.option("--top-k", type=click.IntRange(1, 50), default=None)
@click.option("--llm", envvar="RAG_LLM", default=None, help="Answer backend spec")
@click.pass_context
def chat(ctx, top_k, llm):
    """Interactive multi-turn chat in the terminal (empty line or Ctrl-D quits)."""
    assistant = _open_assistant(ctx, llm)
    history: list[dict] = []
    click.echo(f"{len(assistant.documents())} documents indexed. Ask a question; an empty line quits.")
    while True:
        try:
            question = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            break
        if not question:
            break
        try:
            answer = assistant.ask(question, history=history, top_k=top_k)
        except assistant.BadRequest as exc:
            click.echo(f"error: {exc}")
            continue
        if answer.question_used != question:
            click.echo(click.style(f"  (understood as: {answer.question_used})", dim=True))
        click.echo(f"rag> {answer.answer}")
        _print_citations(answer)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]




@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default)")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--llm", envvar="RAG_LLM", default=None, help="Answer backend spec")
@click.option("--api-key", envvar="RAG_API_KEY", default=None, help="Require this key (Bearer or X-API-Key). Env RAG_API_KEY")
@click.option("--read-only", is_flag=True, envvar="RAG_READ_ONLY", help="Disable document upload and deletion")
@click.pass_context
def serve(ctx, host, port, llm, api_key, read_only):
    """HTTP API (/api, OpenAI-compatible /v1, /docs) and the chat UI at /, in one process.
    Indexes seeds/ on first start when the index is empty."""
    from rag.index.ownership import DataDirBusy
    from rag.serve.app import PortBusy, run
    from rag.serve.keys import KeySpecError

    try:
        run(_config(ctx).with_(llm=llm, api_key=api_key), host=host, port=port, read_only=read_only)
    except (DataDirBusy, PortBusy, KeySpecError) as exc:
        raise click.ClickException(str(exc))


@cli.command()
@click.option("--no-run", is_flag=True, help="Do not run the models (skips the child processes)")
@click.pass_context
def doctor(ctx, no_run):
    """Check what answers depend on: the CPU, the llama.cpp build and the CPU variant in use, each
    installed model (size, sha256, and a few tokens in a child process with prefill and decode
    tokens/s), the embedder, the judge, Chroma, and whether the network is needed.
    Exits 1 with a one-line reason per failure."""
    from .doctor import run_checks

    failures = []
    for check in run_checks(_config(ctx), run_models=not no_run):
        mark = {True: click.style("ok  ", fg="green"), False: click.style("FAIL", fg="red"), None: "    "}[check.ok]
        click.echo(f"{mark} {check.name}: {check.detail}")
        if check.ok is False:
            failures.append(check)
    if failures:
        click.echo(f"{len(failures)} problem(s):", err=True)
        for check in failures:
            click.echo(f"{check.name.strip()}: {check.detail}", err=True)
        raise SystemExit(1)


def main() -> None:
    cli(prog_name="rag")


if __name__ == "__main__":
    main()
