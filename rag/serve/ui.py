"""The chat UI: Gradio Blocks mounted at ``/`` of the API app (``mount_ui``).

* Chat (streams the answer as it is produced); under each answer, its citation cards:
  the quote highlighted inside a few hundred characters of its document, with the
  document's title and source.
* Documents: the indexed documents with chunk counts, upload and delete (hidden when
  the server is read-only).
* The answer backend in use is shown in the header.

Safety: every piece of document or user text is passed through ``html.escape`` before
any markup is added, so markup inside a document is shown as text and never runs.
Offline: no analytics, no share link, no outside assets (Gradio 6 serves its own).
"""

from __future__ import annotations

import html
import re
import os
from pathlib import Path

import gradio as gr

from rag.models import Answer, ClaimEvent

CONTEXT_CHARS = 240  # document text shown on each side of a quote
MAX_TABLE_ROWS = 300  # documents listed in the UI table
EXAMPLES = ["What did Zelenskyy say about Crimea?", "What does NATO membership require?",
            "What does Putin consider a red line?"]
ROLE_LABEL = {"support": "", "related": "related, not an answer", "contradiction": "contradicts the question"}

CSS = """
#header h1 { margin: 0; font-size: 1.45rem; }
#header .tagline { color: var(--body-text-color-subdued); margin: .2rem 0 0; }
#backend-indicator { display: inline-block; margin-top: .4rem; padding: .15rem .6rem; border-radius: 999px;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); font-size: .85rem; }
.cites { margin-top: .6rem; display: flex; flex-direction: column; gap: .5rem; }
.cite-card { border: 1px solid var(--border-color-primary); border-left: 4px solid var(--color-accent);
  border-radius: 6px; padding: .45rem .65rem; background: var(--background-fill-secondary); font-size: .9rem; }
.cite-card.related { border-left-color: #b0b0b0; }
.cite-card.contradiction { border-left-color: #d97706; }
.cite-head { font-weight: 600; margin-bottom: .2rem; }
.cite-n { color: var(--color-accent); margin-right: .3rem; }
.cite-role { font-weight: 400; font-style: italic; color: var(--body-text-color-subdued); margin-left: .4rem; }
.cite-passage { line-height: 1.45; }
.cite-passage mark { background: #fde68a; color: #111; padding: 0 .1rem; border-radius: 2px; }
.cite-source { color: var(--body-text-color-subdued); font-size: .78rem; margin-top: .25rem; word-break: break-all; }
.answer-note { color: var(--body-text-color-subdued); font-size: .85rem; font-style: italic; }
#doc-table table { width: 100%; border-collapse: collapse; font-size: .9rem; }
#doc-table th, #doc-table td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--border-color-primary); }
#doc-table td.num { text-align: right; }
"""


def esc(text) -> str:
    """HTML-escaped text with line breaks kept, and Markdown syntax characters written as
    character references so quoted text is shown exactly as the document has it."""
    escaped = html.escape(str(text), quote=True).replace("\r", "").replace("\n", "<br>")
    return re.sub(r"&(?:amp|lt|gt|quot|#x27);|[\\`*_\[\]()#|~$!]",
                  lambda m: m.group(0) if m.group(0).startswith("&") else f"&#{ord(m.group(0))};", escaped)


# ------------------------------------------------------------------ rendering


def passage(text: str, start: int, end: int, context: int = CONTEXT_CHARS) -> tuple[str, str, str, bool, bool]:
    """(before, quote, after, cut_before, cut_after) around text[start:end], cut at word boundaries."""
    a, b = max(0, start - context), min(len(text), end + context)
    if a > 0:
        space = text.find(" ", a, start)
        a = space + 1 if space != -1 else a
    if b < len(text):
        space = text.rfind(" ", end, b)
        b = space if space != -1 else b
    return text[a:start], text[start:end], text[end:b], a > 0, b < len(text)


def quote_html(c) -> str:
    """The quote, escaped, with its short answer (``highlight``, if any) in bold."""
    h = getattr(c, "highlight", None)
    if h is None or not c.start <= h.start < h.end <= c.end or c.quote[h.start - c.start:h.end - c.start] != h.text:
        return esc(c.quote)
    a, b = h.start - c.start, h.end - c.start
    return f"{esc(c.quote[:a])}<strong class='short-answer'>{esc(c.quote[a:b])}</strong>{esc(c.quote[b:])}"


def card_html(citation, doc_text: str | None) -> str:
    """One citation card; the quote is shown only if it still is the document's text at its offsets."""
    c = citation
    if doc_text is not None and doc_text[c.start:c.end] == c.quote:
        before, quote, after, cut_a, cut_b = passage(doc_text, c.start, c.end)
        body = (("…" if cut_a else "") + esc(before) + f"<mark>{quote_html(c)}</mark>" + esc(after)
                + ("…" if cut_b else ""))
    else:  # the document changed since: show the verified quote alone
        body = f"<mark>{quote_html(c)}</mark>"
    role = ROLE_LABEL.get(c.role, "")
    role_html = f'<span class="cite-role">({esc(role)})</span>' if role else ""
    return (f'<div class="cite-card {esc(c.role)}" data-cite="{int(c.id)}">'
            f'<div class="cite-head"><span class="cite-n">[{int(c.id)}]</span>{esc(c.title)}{role_html}</div>'
            f'<div class="cite-passage">{body}</div>'
            f'<div class="cite-source">{esc(c.source)} · characters {int(c.start)}–{int(c.end)} · '
            f'score {float(c.score):.2f}</div></div>')


def answer_html(answer: Answer, doc_text) -> str:
    """The answer text (escaped, with its [n] markers) followed by its citation cards."""
    parts = [esc(answer.answer)]
    if answer.note:
        parts.append(f'<div class="answer-note">{esc(answer.note)}</div>')
    if answer.citations:
        texts: dict[str, str | None] = {}
        for c in answer.citations:
            if c.doc_id not in texts:
                texts[c.doc_id] = doc_text(c.doc_id)
        parts.append('<div class="cites">' + "".join(card_html(c, texts[c.doc_id]) for c in answer.citations)
                     + "</div>")
    return "\n\n".join(parts)


def documents_html(records) -> str:
    if not records:
        return "<p>No documents are indexed.</p>"
    rows = "".join(f"<tr><td>{esc(r.title)}</td><td>{esc(r.source)}</td><td class='num'>{int(r.n_chunks)}</td>"
                   f"<td><code>{esc(r.doc_id)}</code></td></tr>" for r in records[:MAX_TABLE_ROWS])
    if len(records) > MAX_TABLE_ROWS:
        rows += f"<tr><td colspan='4'>… and {len(records) - MAX_TABLE_ROWS} more (GET /api/documents lists all)</td></tr>"
    total = sum(r.n_chunks for r in records)
    return (f"<table><thead><tr><th>Title</th><th>Source</th><th>Chunks</th><th>Id</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>{_count(len(records), 'document')}, {_count(total, 'chunk')}.</p>")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def header_html(assistant, read_only: bool) -> str:
    docs = assistant.documents()
    mode = " · read-only" if read_only else ""
    return ("<h1>Grounded document chat</h1>"
            "<p class='tagline'>Every claim in an answer is a verbatim quote, checked against its document.</p>"
            f"<span id='backend-indicator'>Answer backend: <b>{esc(assistant.backend)}</b> · "
            f"{_count(len(docs), 'document')} · {_count(sum(d.n_chunks for d in docs), 'chunk')}{mode}</span>")


# ------------------------------------------------------------------ the app


def build_blocks(assistant, *, read_only: bool = False, max_upload_bytes: int = 20 * 2**20) -> gr.Blocks:
    from rag.assistant import MAX_HISTORY_TURNS, BadRequest, DocumentExists
    from rag.llm.backends import BackendUnavailable
    from rag.index.loaders import SUPPORTED, LoadError
    from rag.index.store import Store

    def doc_text(doc_id: str) -> str | None:
        try:
            return assistant.store.document(doc_id).text
        except Store.DoesNotExist:
            return None

    def doc_choices():
        return [(f"{r.title} — {r.source}", r.doc_id) for r in assistant.documents()]

    with gr.Blocks(title="Grounded document chat", analytics_enabled=False) as demo:
        header = gr.HTML(header_html(assistant, read_only), elem_id="header")
        turns = gr.State([])  # plain-text history for follow-up questions
        chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=500, latex_delimiters=[],
                             feedback_options=None, sanitize_html=True, render_markdown=True,
                             buttons=["copy", "copy_all"],
                             placeholder="Ask a question about the indexed documents. Each answer "
                                         "shows its quotes in context.")
        with gr.Row():
            question = gr.Textbox(label="Question", show_label=False, scale=5, max_lines=4,
                                  placeholder="Ask about the documents…", max_length=2000,
                                  elem_id="question", autofocus=True)
            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
            clear = gr.Button("New chat", scale=1, min_width=80, elem_id="clear")
        has_model = assistant.generator is not None
        mode = gr.Radio(choices=[("Quick (extractive, instant)", "quick"),
                                 (f"Model ({assistant.generator.name})" if has_model else "Model", "model")],
                        value="model" if has_model else "quick", label="Answer mode", visible=has_model,
                        elem_id="answer-mode")
        gr.Examples(EXAMPLES, inputs=[question], label="Examples")
        with gr.Accordion("Last answer as JSON", open=False):
            answer_json = gr.JSON(label="Answer", elem_id="answer-json")

        with gr.Accordion("Documents", open=False, elem_id="documents"):
            doc_table = gr.HTML(documents_html(assistant.documents()), elem_id="doc-table")
            with gr.Row(visible=not read_only):
                with gr.Column():
                    upload = gr.File(label=f"Upload ({', '.join(sorted(SUPPORTED))}; up to "
                                           f"{max_upload_bytes // 2**20} MB)", file_count="single",
                                     file_types=sorted(SUPPORTED), type="filepath", elem_id="upload")
                    replace = gr.Checkbox(False, label="Replace a document of the same name", elem_id="replace")
                with gr.Column():
                    to_delete = gr.Dropdown(choices=doc_choices(), label="Document to delete", elem_id="delete-choice")
                    delete = gr.Button("Delete", variant="stop", elem_id="delete")
            doc_status = gr.Markdown(elem_id="doc-status")
            refresh = gr.Button("Refresh", size="sm")

        # ---------------------------------------------------------- chat

        def respond(message: str, history: list, plain: list, mode: str = "quick"):
            message = (message or "").strip()
            history = list(history or [])
            plain = list(plain or [])
            if not message:
                yield history, plain, "", gr.skip()
                return
            history += [{"role": "user", "content": esc(message)}, {"role": "assistant", "content": "…"}]
            yield history, plain, "", gr.skip()
            text, final = "", None
            try:
                for item in assistant.stream(message, plain[-MAX_HISTORY_TURNS:],
                                             mode=mode if assistant.generator is not None else None):
                    if isinstance(item, Answer):
                        final = item
                        break
                    if isinstance(item, ClaimEvent):  # a verified claim: show it with its quote at once
                        text += (f"{esc(item.text)}<div class='cite-passage streamed-quote'>“{esc(item.citation.quote)}”"
                                 f" — {esc(item.citation.title)}</div>")
                    else:
                        text += esc(item)
                    history[-1] = {"role": "assistant", "content": text + " ▍"}
                    yield history, plain, "", gr.skip()
            except (BadRequest, BackendUnavailable) as exc:  # bad question, or the model is down
                history[-1] = {"role": "assistant", "content": f"⚠️ {esc(exc)}"}
                yield history, plain, "", None
                return
            if final is None:
                history[-1] = {"role": "assistant", "content": "⚠️ no answer was produced"}
                yield history, plain, "", None
                return
            history[-1] = {"role": "assistant", "content": answer_html(final, doc_text)}
            plain += [{"role": "user", "content": message}, {"role": "assistant", "content": final.answer}]
            yield history, plain, "", final.model_dump()

        chat_io = dict(fn=respond, inputs=[question, chatbot, turns, mode], outputs=[chatbot, turns, question, answer_json])
        ask.click(api_name="chat", **chat_io)
        question.submit(api_name=False, **chat_io)
        clear.click(lambda: ([], [], None), outputs=[chatbot, turns, answer_json], api_name=False)

        # ---------------------------------------------------------- documents

        def refreshed(status: str = ""):
            return (documents_html(assistant.documents()), gr.update(choices=doc_choices(), value=None),
                    header_html(assistant, read_only), status)

        doc_outputs = [doc_table, to_delete, header, doc_status]

        def on_upload(path, replace_same_name):
            if read_only:
                return refreshed("⚠️ The server is read-only.")
            if not path:
                return refreshed()
            path = Path(path)
            name = path.name
            try:
                if path.stat().st_size > max_upload_bytes:
                    return refreshed(f"⚠️ {esc(name)} is larger than {max_upload_bytes // 2**20} MB.")
                report = assistant.add_document(path.read_bytes(), name, replace=bool(replace_same_name))
            except DocumentExists:
                return refreshed(f"⚠️ A different document named {esc(name)} is already indexed: nothing was "
                                 "changed. Tick “Replace a document of the same name” and upload again to replace it.")
            except LoadError as exc:
                return refreshed(f"⚠️ Cannot read {esc(name)}: {esc(exc)}")
            finally:
                try:
                    os.unlink(path)  # Gradio's copy of the upload is no longer needed
                except OSError:
                    pass
            if report.failed:
                return refreshed(f"⚠️ Cannot read {esc(name)}: {esc(report.failed[0].reason)}")
            verb = "Added" if report.added else "Updated" if report.updated else "Unchanged:"
            return refreshed(f"{verb} {esc(name)} ({report.chunks} chunks indexed).")

        def on_delete(doc_id):
            if read_only:
                return refreshed("⚠️ The server is read-only.")
            if not doc_id:
                return refreshed("Choose a document to delete.")
            try:
                record = assistant.delete_document(doc_id)
            except Store.DoesNotExist:
                return refreshed("⚠️ That document is already gone.")
            return refreshed(f"Deleted {esc(record.title)} ({esc(record.source)}).")

        upload.upload(on_upload, inputs=[upload, replace], outputs=doc_outputs, api_name=False).then(
            lambda: None, outputs=[upload], api_name=False)
        delete.click(on_delete, inputs=[to_delete], outputs=doc_outputs, api_name=False)
        refresh.click(refreshed, outputs=doc_outputs, api_name=False)
        demo.load(refreshed, outputs=doc_outputs, api_name=False)
    return demo


def mount_ui(app, assistant, *, read_only: bool = False, max_upload_bytes: int = 20 * 2**20):
    """Mount the UI at ``/`` of ``app`` (call after the API routes are added, so they win)."""
    blocks = build_blocks(assistant, read_only=read_only, max_upload_bytes=max_upload_bytes)
    blocks.queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(app, blocks, path="/", footer_links=["api"], run_history=False, css=CSS,
                               max_file_size=max_upload_bytes, ssr_mode=False, mcp_server=False, pwa=False,
                               show_error=True)
