"""The chat UI: Gradio Blocks mounted at ``/`` of the API app (``mount_ui``).

* Chat: the documents being read are shown as soon as retrieval is done, then the answer as it
  is produced (a model's claims one by one, as each is verified); under each answer, its citation
  cards: the quote highlighted inside a few hundred characters of its document, with the document's
  title and source and what was checked (the quote verbatim; a model's own check of its claim).
* A question typed while an answer runs is never lost: it is shown at once as queued and asked
  when the answer ends. Stop cancels the running answer (the model stops between two tokens).
  The conversation of each browser tab is kept on the server (``ChatSession``).
* Examples under the input come from the indexed documents (newest first).
* Documents: the indexed documents with type, size, date and chunk counts; upload (indexed as a
  job, with its progress shown) and delete (asks for confirmation); hidden when read-only.
* The answer backend in use is shown in the header.

Safety: every piece of document or user text is passed through ``html.escape`` before
any markup is added, so markup inside a document is shown as text and never runs.
Offline: no analytics, no share link, no outside assets (Gradio 6 serves its own).
"""

from __future__ import annotations

import html
import re
import os
import threading
import time
from collections import OrderedDict, deque
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr

from rag.models import Answer, ClaimEvent, SourcesEvent, file_type

CONTEXT_CHARS = 240  # document text shown on each side of a quote
PAGE_IMAGES = "/page-images"  # a PDF page with a quote highlighted, for the UI (the cookie opens it; see app.py)
MAX_TABLE_ROWS = 300  # documents listed in the UI table
MAX_SESSIONS = 2000  # conversations kept on the server (least recently used dropped)
SEED_NAME = "zelenskyy-ceasefire-nato-umbrella-sky-news-interview.txt"
EXAMPLES = ["What did Zelenskyy say about Crimea?", "What does NATO membership require?",
            "What does Putin consider a red line?"]
ROLE_LABEL = {"support": "", "related": "related, not an answer", "contradiction": "contradicts the question"}
QUEUED_NOTE = "queued: asked when the current answer ends"

CSS = """
.cite-page summary { cursor: pointer; font-size: .85rem; margin-top: .3rem; }
.cite-page img.page-image { max-width: 100%; border: 1px solid var(--border-color-primary); margin-top: .3rem; }
#scope-note { align-self: end; }
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
.cite-source { color: var(--body-text-color); font-size: .8rem; margin-top: .25rem; word-break: break-all; }
.cite-check { color: var(--body-text-color); font-size: .8rem; }
.answer-note { color: var(--body-text-color); font-size: .85rem; font-style: italic; }
.reading { color: var(--body-text-color); font-size: .85rem; margin-bottom: .3rem; }
.queued-note { font-size: .8rem; font-style: italic; opacity: .9; margin-top: .2rem; }
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


def checked_text(claim=None) -> str:
    """What was checked for a citation, in words: the quote (always), and a model claim's own check."""
    parts = ["✓ quote verified verbatim in the document"]
    support = getattr(claim, "support", None)
    if support is not None:
        parts.append(f"model check: supported (P={float(support):.2f})")
    return " · ".join(parts)


def card_html(citation, doc_text: str | None, claim=None) -> str:
    """One citation card; the quote is shown only if it still is the document's text at its offsets.
    ``claim``: the model claim (``Answer.claims``) resting on it, whose check is shown."""
    c = citation
    if doc_text is not None and doc_text[c.start:c.end] == c.quote:
        before, quote, after, cut_a, cut_b = passage(doc_text, c.start, c.end)
        body = (("…" if cut_a else "") + esc(before) + f"<mark>{quote_html(c)}</mark>" + esc(after)
                + ("…" if cut_b else ""))
    else:  # the document changed since: show the verified quote alone
        body = f"<mark>{quote_html(c)}</mark>"
    role = ROLE_LABEL.get(c.role, "")
    role_html = f'<span class="cite-role">({esc(role)})</span>' if role else ""
    where = f"characters {int(c.start)}–{int(c.end)}"
    page_html = ""
    if getattr(c, "page", None) and c.source.lower().endswith(".pdf"):
        last = c.page_end or c.page
        where = f"p. {int(c.page)}" + (f"–{int(last)}" if last != c.page else "")
        images = "".join(f'<img class="page-image" loading="lazy" alt="page {n} with the quote highlighted" '
                         f'src="{PAGE_IMAGES}/{esc(c.doc_id)}/{n}.png?start={int(c.start)}&end={int(c.end)}">'
                         for n in range(int(c.page), int(last) + 1))
        page_html = (f'<details class="cite-page"><summary>Show {esc(where)} with the quote highlighted</summary>'
                     f'{images}</details>')
    return (f'<div class="cite-card {esc(c.role)}" data-cite="{int(c.id)}">'
            f'<div class="cite-head"><span class="cite-n">[{int(c.id)}]</span>{esc(c.title)}{role_html}</div>'
            f'<div class="cite-passage">{body}</div>'
            f'<div class="cite-source">{esc(c.source)} · {esc(where)}</div>'
            f'<div class="cite-check">{esc(checked_text(claim))}</div>{page_html}</div>')


def scope_choices(assistant) -> list[tuple[str, str]]:
    """What a question can be limited to: everything, a collection, one document."""
    out = [("All documents", "all")]
    collections = assistant.collections()
    if len(collections) > 1:
        out += [(f"Collection: {c['name']} ({_count(c['documents'], 'document')})", f"c:{c['name']}")
                for c in collections]
    out += [(f"Document: {r.title}", f"d:{r.doc_id}") for r in newest_first(assistant.documents())[:MAX_TABLE_ROWS]]
    return out


def scope_of(choice: str | None):
    """The Scope of a scope choice ("all", "c:NAME", "d:DOC_ID"), None for everything."""
    from rag.index.scope import Scope

    if not choice or choice == "all":
        return None
    kind, _, value = choice.partition(":")
    return Scope.of(value) if kind == "c" else Scope.of(doc_ids=[value])


def scope_note(assistant, choice: str | None) -> str:
    """The chat header's line saying what questions are about."""
    if not choice or choice == "all":
        return "Asking about **all documents**."
    kind, _, value = choice.partition(":")
    if kind == "c":
        return f"Asking only about the collection **{esc(value)}**."
    try:
        record = assistant.store.document(value)
    except KeyError:
        return "Asking about **all documents** (the chosen document is gone)."
    return f"Asking only about **{esc(record.title)}** ({esc(record.source)})."


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
        claims = {}
        for cl in answer.claims:  # a claim joining two sentences shows its check on both cards
            for cid in (cl.citation_id, *cl.also_cites):
                claims.setdefault(cid, cl)
        parts.append('<div class="cites">' + "".join(card_html(c, texts[c.doc_id], claims.get(c.id))
                                                     for c in answer.citations) + "</div>")
    return "\n\n".join(parts)


def reading_html(event: SourcesEvent) -> str:
    """"Reading: title, title" while the answer is being written."""
    titles = [s.title for s in event.sources[:4]]
    more = f" and {len(event.sources) - 4} more" if len(event.sources) > 4 else ""
    return (f"<div class='reading'>Reading {esc(', '.join(f'“{t}”' for t in titles))}{esc(more)}…</div>"
            if titles else "<div class='reading'>No passage matches the question.</div>")


def queued_html(question: str, waiting: bool = True) -> str:
    return esc(question) + (f"<div class='queued-note'>{esc(QUEUED_NOTE)}</div>" if waiting else "")


def human_size(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 2**20:.1f} MB"


def human_date(at: float | None) -> str:
    return "—" if at is None else datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def newest_first(records) -> list:
    return sorted(records, key=lambda r: -(getattr(r, "committed_at", None) or 0))


def documents_html(records) -> str:
    if not records:
        return "<p>No documents are indexed.</p>"
    records = newest_first(records)
    rows = "".join(f"<tr><td>{esc(r.title)}</td><td>{esc(file_type(r.source))}</td>"
                   f"<td class='num'>{esc(human_size(getattr(r, 'size', None)))}</td>"
                   f"<td>{esc(human_date(getattr(r, 'committed_at', None)))}</td>"
                   f"<td class='num'>{int(r.n_chunks)}</td><td>{esc(r.source)}</td></tr>"
                   for r in records[:MAX_TABLE_ROWS])
    if len(records) > MAX_TABLE_ROWS:
        rows += f"<tr><td colspan='6'>… and {len(records) - MAX_TABLE_ROWS} more (GET /api/documents lists all)</td></tr>"
    total = sum(r.n_chunks for r in records)
    return (f"<table><thead><tr><th>Title</th><th>Type</th><th>Size</th><th>Indexed</th><th>Chunks</th>"
            f"<th>Source</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>{_count(len(records), 'document')}, {_count(total, 'chunk')}.</p>")


def examples_for(records, n: int = 3) -> list[str]:
    """Questions to try, from the indexed documents (newest first): the seed article's own
    questions, else "What are the main points of “TITLE”?"; none when nothing is indexed."""
    out: list[str] = []
    for r in newest_first(records):
        if r.source.endswith(SEED_NAME):
            out += [q for q in EXAMPLES if q not in out]
        elif r.title and len(r.title) <= 80:
            out.append(f"What are the main points of “{r.title}”?")
        if len(out) >= n:
            break
    return out[:n]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def tagline(backend: str) -> str:
    """What the page promises, true for the backend that answers: quick answers are the documents'
    own sentences; a model writes its claims in its own words, each citing a verbatim quote."""
    if backend == "extractive":
        return "Every answer is made of sentences quoted verbatim from your documents, each checked against its document."
    return ("Every claim cites a sentence quoted verbatim from your documents, checked against its document; "
            "the model then checks that the claim says what that sentence says, and drops it if not.")


def header_html(assistant, read_only: bool) -> str:
    docs = assistant.documents()
    mode = " · read-only" if read_only else ""
    return ("<h1>Grounded document chat</h1>"
            f"<p class='tagline'>{esc(tagline(assistant.backend))}</p>"
            f"<span id='backend-indicator'>Answer backend: <b>{esc(assistant.backend)}</b> · "
            f"{_count(len(docs), 'document')} · {_count(sum(d.n_chunks for d in docs), 'chunk')}{mode}</span>")


# ------------------------------------------------------------------ conversations


class ChatSession:
    """One browser tab's conversation, kept on the server: the messages shown (finished turns and
    the running answer), the plain-text turns for follow-ups, the questions waiting, and the switch
    that stops the running answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.shown: list[dict] = []
        self.plain: list[dict] = []
        self.pending: deque[tuple[str, str, str]] = deque()  # (question, mode, scope choice)
        self.runner: object | None = None  # the token of the loop answering this conversation
        self.cancel = threading.Event()
        self.epoch = 0  # bumped by "New chat": an answer of the old chat is not shown

    def view(self) -> list[dict]:
        with self.lock:
            waiting = self.runner is not None
            return self.shown + [{"role": "user", "content": queued_html(q, waiting or i > 0)}
                                 for i, (q, *_) in enumerate(self.pending)]


class Sessions:
    def __init__(self, limit: int = MAX_SESSIONS):
        self._by_id: OrderedDict[str, ChatSession] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit

    def get(self, request: gr.Request | None) -> ChatSession:
        key = getattr(request, "session_hash", None) or "anonymous"
        with self._lock:
            session = self._by_id.pop(key, None) or ChatSession()
            self._by_id[key] = session
            while len(self._by_id) > self.limit:
                _, old = self._by_id.popitem(last=False)
                old.cancel.set()
            return session

    def drop(self, request: gr.Request) -> None:
        key = getattr(request, "session_hash", None)
        with self._lock:
            session = self._by_id.pop(key, None) if key else None
        if session is not None:
            with session.lock:
                session.pending.clear()
            session.cancel.set()


# ------------------------------------------------------------------ the app


def build_blocks(assistant, *, read_only: bool = False, max_upload_bytes: int = 20 * 2**20, jobs=None) -> gr.Blocks:
    from rag.assistant import MAX_HISTORY_TURNS, BadRequest, CollectionClash, DocumentExists
    from rag.llm.backends import BackendUnavailable
    from rag.index.loaders import SUPPORTED, LoadError
    from rag.index.pdf import pages_to_ocr
    from rag.index.scope import ScopeError
    from rag.index.store import Store
    from rag.serve.errors import APIError
    from rag.serve.jobs import Jobs

    jobs = jobs if jobs is not None else Jobs()
    sessions = Sessions()

    def doc_text(doc_id: str) -> str | None:
        try:
            return assistant.store.document(doc_id).text
        except Store.DoesNotExist:
            return None

    def doc_choices():
        return [(f"{r.title} — {r.source}", r.doc_id) for r in newest_first(assistant.documents())]

    def answer_steps(message: str, plain: list, mode: str, cancel: threading.Event | None = None,
                     scope: str | None = None):
        """(html, final Answer or None) as the answer grows: the documents being read, then its words or
        verified claims; the last step holds the final Answer, or a warning, or the note that it was stopped."""
        reading, text = "", ""
        try:
            for item in assistant.stream(message, plain[-MAX_HISTORY_TURNS:], sources=True, cancel=cancel,
                                         mode=mode if assistant.generator is not None else None,
                                         scope=scope_of(scope)):
                if isinstance(item, Answer):
                    yield answer_html(item, doc_text), item
                    return
                if isinstance(item, SourcesEvent):
                    reading = reading_html(item)
                elif isinstance(item, ClaimEvent):  # a verified claim: show it with its quote at once
                    text += esc(item.text) + "".join(
                        f"<div class='cite-passage streamed-quote'>“{esc(c.quote)}” — {esc(c.title)}</div>"
                        for c in [item.citation, *item.also]) + f"<div class='cite-check'>{esc(checked_text(item))}</div>"
                else:
                    text += esc(item)
                yield reading + text + " ▍", None
        except (BadRequest, BackendUnavailable, ScopeError) as exc:  # bad question, model down, scope gone
            yield f"⚠️ {esc(exc)}", None
            return
        if cancel is not None and cancel.is_set():
            yield (text or reading) + "<div class='answer-note'>Stopped: the answer was cancelled.</div>", None
            return
        yield "⚠️ no answer was produced", None

    with gr.Blocks(title="Grounded document chat", analytics_enabled=False) as demo:
        header = gr.HTML(header_html(assistant, read_only), elem_id="header")
        turns = gr.State([])  # plain-text history for follow-up questions (the /chat API)
        with gr.Row(elem_id="scope-row"):
            scope = gr.Dropdown(choices=scope_choices(assistant), value="all", label="Ask about", scale=2,
                                elem_id="scope", filterable=True)
            scope_line = gr.Markdown(scope_note(assistant, "all"), elem_id="scope-note")
        chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=500, latex_delimiters=[],
                             feedback_options=None, sanitize_html=True, render_markdown=True,
                             buttons=["copy", "copy_all"],
                             placeholder="Ask a question about the indexed documents. Each answer "
                                         "shows its quotes in context.")
        with gr.Row():
            question = gr.Textbox(label="Question", show_label=False, scale=5, max_lines=4,
                                  placeholder="Ask about the documents… (a question asked while an answer "
                                              "runs is queued)", max_length=2000,
                                  elem_id="question", autofocus=True)
            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
            stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="stop", visible=False)
            clear = gr.Button("New chat", scale=1, min_width=80, elem_id="clear")
        has_model = assistant.generator is not None
        mode = gr.Radio(choices=[("Quick (extractive, instant)", "quick"),
                                 (f"Model ({assistant.generator.name})" if has_model else "Model", "model")],
                        value="model" if has_model else "quick", label="Answer mode", visible=has_model,
                        elem_id="answer-mode")
        first_examples = examples_for(assistant.documents())
        examples = gr.Dataset(components=[question], samples=[[q] for q in first_examples], label="Examples",
                              elem_id="examples", visible=bool(first_examples))
        with gr.Accordion("Last answer as JSON", open=False):
            answer_json = gr.JSON(label="Answer", elem_id="answer-json")
        api_ask = gr.Button("Ask (API)", visible=False)  # the /chat endpoint for gradio_client

        with gr.Accordion("Documents", open=False, elem_id="documents"):
            doc_table = gr.HTML(documents_html(assistant.documents()), elem_id="doc-table")
            with gr.Row(visible=not read_only):
                with gr.Column():
                    upload = gr.File(label=f"Upload ({', '.join(sorted(SUPPORTED))}; up to "
                                           f"{max_upload_bytes // 2**20} MB)", file_count="single",
                                     file_types=sorted(SUPPORTED), type="filepath", elem_id="upload")
                    replace = gr.Checkbox(False, label="Replace a document of the same name", elem_id="replace")
                with gr.Column():
                    to_delete = gr.Dropdown(choices=doc_choices(), label="Document", elem_id="delete-choice")
                    with gr.Row():
                        ask_only = gr.Button("Ask only this document", elem_id="ask-only")
                        delete = gr.Button("Delete…", variant="stop", elem_id="delete")
                    with gr.Group(visible=False, elem_id="delete-confirm") as confirm_box:
                        confirm_text = gr.Markdown(elem_id="delete-confirm-text")
                        with gr.Row():
                            confirm = gr.Button("Yes, delete it", variant="stop", elem_id="delete-yes")
                            cancel_delete = gr.Button("Cancel", elem_id="delete-cancel")
            doc_status = gr.Markdown(elem_id="doc-status")
            refresh = gr.Button("Refresh", size="sm")

        # ---------------------------------------------------------- chat (the page)

        def enqueue(message: str, mode: str, scope_choice: str, request: gr.Request):
            """Every question is shown at once: answered now, or queued behind the running answer."""
            message = (message or "").strip()
            if not message:
                return gr.skip(), gr.skip()
            session = sessions.get(request)
            with session.lock:
                session.pending.append((message, mode or "quick", scope_choice or "all"))
            return session.view(), ""

        def run_queue(request: gr.Request):
            """Answer the conversation's questions in order, until none waits (one loop per conversation)."""
            session = sessions.get(request)
            token = object()
            with session.lock:
                if session.runner is not None or not session.pending:
                    mine = False
                else:
                    session.runner, mine = token, True
            if not mine:  # the loop already running picks the new question up
                yield gr.skip(), gr.skip(), gr.skip()
                return
            final = None
            try:
                while True:
                    with session.lock:
                        if not session.pending:
                            session.runner = None
                            break
                        message, mode, scope_choice = session.pending.popleft()
                        session.cancel.clear()
                        epoch = session.epoch
                        session.shown += [{"role": "user", "content": esc(message)},
                                          {"role": "assistant", "content": "…"}]
                        at = len(session.shown) - 1
                        plain = list(session.plain)
                    yield session.view(), gr.update(visible=True), gr.skip()
                    for content, answer in answer_steps(message, plain, mode, session.cancel, scope_choice):
                        with session.lock:
                            if session.epoch != epoch:  # "New chat" was pressed
                                break
                            session.shown[at] = {"role": "assistant", "content": content}
                            if answer is not None:
                                session.plain += [{"role": "user", "content": message},
                                                  {"role": "assistant", "content": answer.answer}]
                                final = answer
                        yield session.view(), gr.skip(), (answer.model_dump() if answer is not None else gr.skip())
            except BaseException:
                with session.lock:
                    if session.runner is token:
                        session.runner = None
                session.cancel.set()  # the page went away: stop the model too
                raise
            yield session.view(), gr.update(visible=False), (final.model_dump() if final is not None else gr.skip())

        def stop_answer(request: gr.Request):
            sessions.get(request).cancel.set()

        def new_chat(request: gr.Request):
            session = sessions.get(request)
            with session.lock:
                session.epoch += 1
                session.shown, session.plain = [], []
                session.pending.clear()
            session.cancel.set()
            return [], [], None, gr.update(visible=False)

        for trigger in (question.submit, ask.click):
            trigger(enqueue, inputs=[question, mode, scope], outputs=[chatbot, question], queue=False,
                    trigger_mode="multiple", api_name=False).then(
                run_queue, outputs=[chatbot, stop, answer_json], trigger_mode="multiple", show_progress="hidden",
                api_name=False)
        stop.click(stop_answer, queue=False, api_name=False)
        clear.click(new_chat, outputs=[chatbot, turns, answer_json, stop], queue=False, api_name=False)
        chatbot.clear(new_chat, outputs=[chatbot, turns, answer_json, stop], queue=False, api_name=False)
        examples.click(lambda sample: sample[0] if sample else "", inputs=[examples], outputs=[question],
                       queue=False, api_name=False)
        demo.unload(sessions.drop)

        # ---------------------------------------------------------- chat (the API: one question, one answer)

        def respond(message: str, history: list, plain: list, mode: str = "quick"):
            message = (message or "").strip()
            history = list(history or [])
            plain = list(plain or [])
            if not message:
                yield history, plain, "", gr.skip()
                return
            history += [{"role": "user", "content": esc(message)}, {"role": "assistant", "content": "…"}]
            yield history, plain, "", gr.skip()
            for content, answer in answer_steps(message, plain, mode):
                history[-1] = {"role": "assistant", "content": content}
                if answer is not None:
                    plain += [{"role": "user", "content": message}, {"role": "assistant", "content": answer.answer}]
                yield history, plain, "", (answer.model_dump() if answer is not None else gr.skip())

        api_ask.click(respond, inputs=[question, chatbot, turns, mode], outputs=[chatbot, turns, question, answer_json],
                      api_name="chat")

        # ---------------------------------------------------------- documents

        def refreshed(status: str = "", scope_choice: str | None = None):
            records = assistant.documents()
            samples = examples_for(records)
            choices = scope_choices(assistant)
            keep = scope_choice if scope_choice in {v for _, v in choices} else "all"
            return (documents_html(records), gr.update(choices=doc_choices(), value=None),
                    header_html(assistant, read_only), status,
                    gr.Dataset(samples=[[q] for q in samples], visible=bool(samples)), gr.update(visible=False),
                    gr.update(choices=choices, value=keep), scope_note(assistant, keep))

        doc_outputs = [doc_table, to_delete, header, doc_status, examples, confirm_box, scope, scope_line]

        def on_upload(path, replace_same_name, scope_choice=None):
            """Read the file at once (errors are said at once), then index it as a job, its progress shown."""
            if read_only:
                yield refreshed("⚠️ The server is read-only.", scope_choice)
                return
            if not path:
                yield refreshed("", scope_choice)
                return
            path = Path(path)
            name = path.name
            try:
                size = path.stat().st_size
                if size > max_upload_bytes:
                    yield refreshed(f"⚠️ {esc(name)} is larger than {max_upload_bytes // 2**20} MB.", scope_choice)
                    return
                data = path.read_bytes()
                # scanned PDF pages are read by OCR, seconds each: then reading is part of the job
                doc = None if path.suffix.lower() == ".pdf" and pages_to_ocr(data) else assistant.read_upload(data, name)
            except LoadError as exc:
                yield refreshed(f"⚠️ Cannot read {esc(name)}: {esc(exc)}", scope_choice)
                return
            finally:
                try:
                    os.unlink(path)  # Gradio's copy of the upload is no longer needed
                except OSError:
                    pass
            exists = ("⚠️ A different document named {} is already indexed: nothing was changed. Tick “Replace a "
                      "document of the same name” and upload again to replace it.").format(esc(name))
            clash = None if doc is None else assistant.upload_clash(doc, bool(replace_same_name))
            if clash is not None:
                yield refreshed(exists if isinstance(clash, DocumentExists) else f"⚠️ {esc(clash)}", scope_choice)
                return

            def work(progress):
                read = doc
                if read is None:
                    try:
                        read = assistant.read_upload(data, name, on_page=lambda n, total: progress(n, total, pages=True))
                    except LoadError as exc:
                        raise APIError(422, f"Cannot read {name}: {exc}") from None
                try:  # index_upload checks the name under the write lock
                    return assistant.index_upload(read, bool(replace_same_name), progress).to_dict()
                except DocumentExists:
                    raise APIError(409, exists) from None
                except CollectionClash as exc:
                    raise APIError(409, f"⚠️ {esc(exc)}") from None

            job = jobs.submit(name, size, work)
            while job.state in ("queued", "running"):
                total = job.total
                if job.state == "queued":
                    note = "waiting for another upload to finish"
                elif not total and job.pages_total:
                    note = f"reading page {job.pages} of {job.pages_total} (scanned pages are read by OCR)"
                elif total:
                    note = f"{job.done:,} of {_count(total, 'chunk')} embedded ({100 * job.done // total}%)"
                else:
                    note = "reading"
                yield (gr.skip(), gr.skip(), gr.skip(), f"⏳ Indexing {esc(name)}: {note}…", gr.skip(), gr.skip(),
                       gr.skip(), gr.skip())
                time.sleep(0.5)
            if job.state == "failed":
                yield refreshed(job.error.detail if job.error.status == 409 else f"⚠️ {esc(job.error.detail)}",
                                scope_choice)
                return
            report = job.result
            verb = "Added" if report["added"] else "Updated" if report["updated"] else "Unchanged:"
            notes = "".join(f" {esc(n.split(': ', 1)[-1])}." for n in report.get("notes") or [])
            yield refreshed(f"{verb} {esc(name)} ({_count(report['chunks'], 'chunk')} indexed).{notes}",
                            scope_choice)

        def ask_delete(doc_id):
            if read_only:
                return gr.update(visible=False), "", "⚠️ The server is read-only."
            if not doc_id:
                return gr.update(visible=False), "", "Choose a document to delete."
            try:
                record = assistant.store.document(doc_id)
            except Store.DoesNotExist:
                return gr.update(visible=False), "", "⚠️ That document is already gone."
            return (gr.update(visible=True),
                    f"Delete **{esc(record.title)}** ({esc(record.source)}, {_count(record.n_chunks, 'chunk')})? "
                    "Answers will no longer quote it.", "")

        def on_delete(doc_id, scope_choice=None):
            if read_only:
                return refreshed("⚠️ The server is read-only.", scope_choice)
            if not doc_id:
                return refreshed("Choose a document to delete.", scope_choice)
            try:
                record = assistant.delete_document(doc_id)
            except Store.DoesNotExist:
                return refreshed("⚠️ That document is already gone.", scope_choice)
            return refreshed(f"Deleted {esc(record.title)} ({esc(record.source)}).", scope_choice)

        upload.upload(on_upload, inputs=[upload, replace, scope], outputs=doc_outputs, api_name=False,
                      show_progress="hidden").then(lambda: None, outputs=[upload], api_name=False)
        delete.click(ask_delete, inputs=[to_delete], outputs=[confirm_box, confirm_text, doc_status], api_name=False)
        confirm.click(on_delete, inputs=[to_delete, scope], outputs=doc_outputs, api_name=False)
        cancel_delete.click(lambda: gr.update(visible=False), outputs=[confirm_box], api_name=False)
        refresh.click(lambda choice: refreshed("", choice), inputs=[scope], outputs=doc_outputs, api_name=False)
        scope.change(lambda choice: scope_note(assistant, choice), inputs=[scope], outputs=[scope_line],
                     queue=False, api_name=False)
        ask_only.click(lambda doc_id: (gr.update(value=f"d:{doc_id}"), scope_note(assistant, f"d:{doc_id}"))
                       if doc_id else (gr.skip(), gr.skip()), inputs=[to_delete], outputs=[scope, scope_line],
                       queue=False, api_name=False)
        demo.load(refreshed, outputs=doc_outputs, api_name=False)
    return demo


def mount_ui(app, assistant, *, read_only: bool = False, max_upload_bytes: int = 20 * 2**20, jobs=None):
    """Mount the UI at ``/`` of ``app`` (call after the API routes are added, so they win)."""
    blocks = build_blocks(assistant, read_only=read_only, max_upload_bytes=max_upload_bytes, jobs=jobs)
    blocks.queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(app, blocks, path="/", footer_links=["api"], run_history=False, css=CSS,
                               max_file_size=max_upload_bytes, ssr_mode=False, mcp_server=False, pwa=False,
                               show_error=True)
