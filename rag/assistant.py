"""The one entry point: ``Assistant.open().ask("...")`` returns an ``Answer``.

The CLI, the HTTP API and the UI are thin layers over this class. Every
Answer passes ``_checked`` before it is returned: each citation's quote is
compared with the stored document text at its offsets, failures are
dropped with their markers, and an answer left without support abstains.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from rag.config import Config
from rag.index.embeddings import default_embedding
from rag.answer.extractive.scoring import Candidate, SentenceEmbeddings, candidates, choose, related_sentence
from rag.answer.extractive.premises import PREMISE_LEAD, as_named, missing_entities, premise_verdict
from rag.answer.followup import rewrite
from rag.index.ingest import Indexer, IngestReport
from rag.index.loaders import LoadError, make_document, parse_bytes
from rag.models import Answer, Citation, ClaimEvent, Source, SourcesEvent
from rag.answer.quotes import strip_markers, verify
from rag.answer.retriever import HybridRetriever
from rag.index.scope import Scope
from rag.index import page_files
from rag.index.store import DEFAULT_COLLECTION, Store

# Words the answerer adds around quotes; they frame a quote and are not claims about the documents.
FRAMES = re.compile(rf"^(?:No\.\s+|{re.escape(PREMISE_LEAD)}\s+|"
                    r"The documents do not mention [^;]{1,200}; what they say is:\s+|Related, but not an answer:\s+|"
                    r"(?:The main points of|From) “[^”]{1,300}”:\s+|"
                    r"\d+ documents are indexed[^:]{0,200}:\s+)")

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 50


class BadRequest(ValueError):
    """The question or its options are unusable; the message says why."""


class DocumentExists(Exception):
    """An upload's name is taken by a document with other content; ``record`` is that document."""

    def __init__(self, record):
        super().__init__(f"a different document named {record.source.split(':', 1)[-1]!r} is already indexed "
                         f"(doc_id {record.doc_id}); upload with replace=true to replace it, or rename the file")
        self.record = record


class CollectionClash(Exception):
    """An upload's name belongs to a document that was moved to another collection. The message names
    neither that collection nor the document: the uploader's key may not be allowed to see them."""

    def __init__(self, source: str):
        name = source.split(":", 1)[-1].rsplit("/", 1)[-1]
        super().__init__(f"a document named {name!r} was moved to another collection; rename the file, or upload "
                         "it to that collection")


class Assistant:
    BadRequest = BadRequest

    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.embed_model = default_embedding()
        self.retriever = HybridRetriever(store, self.embed_model, top_k=config.top_k)
        self.sentence_vectors = SentenceEmbeddings()
        self._write_lock = threading.Lock()
        self.generator = None
        if config.llm and config.llm != "extractive":
            from rag.answer.generative import make_generator  # optional backends: openai:MODEL, gguf:PATH, smollm2

            self.generator = make_generator(config)

    @classmethod
    def open(cls, config: Config | None = None, **overrides) -> "Assistant":
        """Open (or create) the index named by the config; keyword overrides change config fields."""
        config = (config or Config()).with_(**overrides)
        return cls(config, Store(config))

    # ------------------------------------------------------------ asking

    def _validate(self, question, history, top_k) -> tuple[str, list[dict], int]:
        if not isinstance(question, str) or not question.strip():
            raise BadRequest("question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise BadRequest(f"question is longer than {MAX_QUESTION_CHARS} characters")
        if "\x00" in question:
            raise BadRequest("question contains a NUL character")
        try:
            question.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("question is not valid Unicode text (lone surrogate)") from None
        top_k = self.config.top_k if top_k is None else top_k
        if not isinstance(top_k, int) or not 1 <= top_k <= 50:
            raise BadRequest("top_k must be an integer from 1 to 50")
        turns = []
        for turn in (history or [])[-MAX_HISTORY_TURNS:]:
            turn = turn if isinstance(turn, dict) else turn.model_dump()
            if turn.get("role") in ("user", "assistant") and isinstance(turn.get("content"), str):
                turns.append({"role": turn["role"], "content": turn["content"][:4000]})
        return question.strip(), turns, top_k

    def retrieve(self, question: str, top_k: int | None = None, allowed: frozenset[str] | None = None):
        return self.retriever.search(question, top_k or self.config.top_k, allowed)

    def allowed_docs(self, scope: Scope | None = None, permission: Scope | None = None) -> frozenset[str] | None:
        """The doc_ids a question scoped to ``scope`` may read for a caller limited to ``permission``
        (None: every document). Raises ScopeError for a collection or document the caller cannot see."""
        if (scope is None or scope.everything) and (permission is None or permission.everything):
            return None
        return (permission or Scope()).resolve(self.store.catalog(), scope)

    def _prepare(self, question, history, top_k, generator=None, scope=None, permission=None):
        """Validate, resolve the scope, rewrite the follow-up, retrieve:
        (question, question_used, nodes, t0, t1, allowed doc_ids or None)."""
        question, history, top_k = self._validate(question, history, top_k)
        allowed = self.allowed_docs(scope, permission)
        t0 = time.perf_counter()
        used = self._condense(question, history, generator, allowed)
        nodes = self.retrieve(used, top_k, allowed)
        return question, used, nodes, t0, time.perf_counter(), allowed

    MODES = ("quick", "model")

    def _generator_for(self, mode: str | None):
        """The generator answering in ``mode``: None for quick (extractive) answers. Without a
        configured model every mode but "model" is quick; asking for "model" then is a BadRequest."""
        if mode not in (None, *self.MODES):
            raise BadRequest(f"mode must be one of {', '.join(self.MODES)}")
        if mode == "model" and self.generator is None:
            raise BadRequest("mode 'model' needs an answer model: start with --llm (e.g. --llm qwen2.5-coder-1.5b)")
        return None if mode == "quick" else self.generator

    def ask(self, question: str, history: list | None = None, top_k: int | None = None,
            mode: str | None = None, instructions: str | None = None, *,
            scope: Scope | None = None, permission: Scope | None = None) -> Answer:
        """Answer one question (with optional chat history) from the indexed documents.
        ``mode``: "quick" (extractive, instant) or "model" (the configured model; the default).
        ``instructions``: the user's wishes on the form of a model answer (e.g. "Answer in French");
        its claims are checked all the same. A quick answer has no model to follow them: BadRequest."""
        generator = self._generator_for(mode)
        self._check_instructions(instructions, generator)
        question, used, nodes, t0, t1, allowed = self._prepare(question, history, top_k, generator, scope, permission)
        if generator is None:
            answer = self._extractive(used, nodes, allowed)
        else:
            answer = generator.answer(used, nodes, self, instructions=instructions, allowed=allowed)
        return self._finish(answer, question, used, t0, t1, allowed)

    @staticmethod
    def _check_instructions(instructions: str | None, generator) -> None:
        if instructions and instructions.strip() and generator is None:
            raise BadRequest("instructions (a system message) can only be followed by an answer model; a quick "
                             "answer is made of quotes only (use mode 'model', or leave the instructions out)")

    def _condense(self, question: str, history: list[dict], generator=None, allowed=None) -> str:
        # a model rewrites follow-ups, except when every document fits its prompt: then the
        # rewrite would evict the documents' cached prefix, and retrieval does not choose the evidence
        if generator is not None and history and generator.whole_scope(self, allowed) is None:
            return generator.condense(question, history) or rewrite(question, history)
        return rewrite(question, history)

    def _finish(self, answer: Answer, question: str, used: str, t0: float, t1: float,
                allowed: frozenset[str] | None = None) -> Answer:
        answer.question, answer.question_used = question, used
        t2 = time.perf_counter()
        answer = self._checked(answer, allowed)
        answer.timings_ms = {"retrieve": round((t1 - t0) * 1000, 2), "answer": round((t2 - t1) * 1000, 2),
                             "verify": round((time.perf_counter() - t2) * 1000, 2), **answer.timings_ms}
        return answer

    def stream(self, question: str, history: list | None = None, top_k: int | None = None,
               mode: str | None = None, *, sources: bool = False, cancel: threading.Event | None = None,
               instructions: str | None = None,
               scope: Scope | None = None, permission: Scope | None = None) -> Iterator[str | SourcesEvent | ClaimEvent | Answer]:
        """Pieces of the answer as they are ready, then the final checked Answer.

        With ``sources``, the first item is a ``SourcesEvent``: the documents being read, as soon as
        retrieval is done. Quick answers stream their words (str). A model streams each claim as a
        ``ClaimEvent`` (its sentence and citation) once its quote is verified; the final Answer is what
        survived every check, the Assistant's own included. Setting ``cancel`` stops a model answer
        between two tokens (or two claim checks): the stream then ends without an Answer."""
        generator = self._generator_for(mode)
        self._check_instructions(instructions, generator)
        question, used, nodes, t0, t1, allowed = self._prepare(question, history, top_k, generator, scope, permission)
        if sources:
            yield self.sources_of(nodes, used)
        if generator is None:
            answer = self._finish(self._extractive(used, nodes, allowed), question, used, t0, t1, allowed)
            words = answer.answer.split(" ")
            for i, word in enumerate(words):
                yield word if i == 0 else " " + word
            yield answer
            return
        for item in generator.stream(used, nodes, self, cancel=cancel, instructions=instructions, allowed=allowed):
            if isinstance(item, Answer):
                yield self._finish(item, question, used, t0, t1, allowed)
                return
            if isinstance(item, ClaimEvent):
                if allowed is not None and any(c.doc_id not in allowed for c in [item.citation, *item.also]):
                    continue  # never shown: the final Answer's check drops it too
                self._paged([item.citation, *item.also])
            yield item

    @staticmethod
    def sources_of(nodes, question_used: str = "") -> SourcesEvent:
        """The documents of retrieved nodes, in rank order, each once."""
        seen: dict[str, Source] = {}
        for n in nodes:
            m = n.node.metadata
            if m["doc_id"] not in seen:
                seen[m["doc_id"]] = Source(doc_id=m["doc_id"], title=m.get("title") or m["source"], source=m["source"])
        return SourcesEvent(sources=list(seen.values()), question_used=question_used)

    # ------------------------------------------------------------ composing

    def _extractive(self, question: str, nodes, allowed: frozenset[str] | None = None) -> Answer:
        from rag.answer.extractive.overview import is_overview

        if not nodes:
            return Answer(answer="There are no indexed documents to answer from.", abstained=True,
                          status="abstained", backend="extractive")
        if is_overview(question):
            return self._overview(question, nodes, allowed)
        scorer = self._sentence_scorer()
        t0 = time.perf_counter()
        ranked = scorer.rank(question, candidates(nodes))
        chosen = choose(ranked, scorer=scorer, question=question)
        rank_ms = round((time.perf_counter() - t0) * 1000, 2)
        answer = self._compose(question, nodes, ranked, chosen)
        answer.timings_ms["rank"] = rank_ms
        return answer

    def _compose(self, question: str, nodes, ranked: list[Candidate], chosen: list[Candidate]) -> Answer:
        """The extractive Answer from ranked and chosen sentences: abstention with the closest related
        sentence, a contradicted premise, a "No." to a yes/no question, or the chosen sentences."""
        if not chosen:
            related = related_sentence(ranked)  # only one that shares the question's words and meaning
            text = "The documents do not answer this question."
            cites = []
            if related:
                shown = related.text if related.text[:1] in "“\"" else f"“{related.text}”"
                text += f" Related, but not an answer: {shown} [1]"
                cites = [self._citation(1, related, "related")]
            return Answer(answer=text, abstained=True, status="abstained", citations=cites, backend="extractive")
        from rag.answer.extractive.question_kinds import answer_type
        from rag.answer.extractive.premises import question_names

        idf = self._idf()
        best = chosen[0]
        absent = missing_entities(question, " ".join(n.node.text for n in nodes))
        if absent and answer_type(question) and len(absent) >= 0.5 * len(question_names(question)):
            # "Who is the Secretary General of NATO?": most of what it names is not there, so nothing to name
            shown = best.text if best.text[:1] in "“\"" else f"“{best.text}”"
            text = f"The documents do not mention {', '.join(as_named(question, absent))}. Related, but not an answer: {shown} [1]"
            return Answer(answer=text, abstained=True, status="abstained",
                          citations=[self._citation(1, best, "related")], backend="extractive")
        verdict = "contradiction" if absent else premise_verdict(question, best.text, idf)
        if verdict == "contradiction":
            lead = (f"The documents do not mention {', '.join(as_named(question, absent))}; what they say is:" if absent
                    else PREMISE_LEAD)
            return Answer(answer=f"{lead} {best.text} [1]", status="premise_contradicted",
                          citations=[self._citation(1, best, "contradiction")], backend="extractive")
        if verdict == "no":
            return Answer(answer=f"No. {best.text} [1]", citations=[self._citation(1, best, "support")],
                          backend="extractive")
        parts, cites = [], []
        for n, c in enumerate(chosen, 1):
            parts.append(f"{c.text} [{n}]")
            cites.append(self._citation(n, c, "support", question if c is best else None))
        return Answer(answer=" ".join(parts), citations=cites, backend="extractive")

    def _idf(self) -> dict[str, float]:
        lexical = self.retriever.lexical
        idf = getattr(getattr(lexical, "bm25", None), "idf", None)
        if idf is None:
            idf = getattr(lexical, "idf", None)
        return idf if idf is not None else {}

    def sentence_ranking(self, question: str, nodes) -> list[Candidate]:
        """The sentences of retrieved nodes, best first, as the extractive answer ranks them
        (a model's evidence is chosen with the same ranking)."""
        return self._sentence_scorer().rank(question, candidates(nodes))

    def _sentence_scorer(self):
        """The sentence scorer of the extractive answer (see ``rag.answer.extractive.scoring.Scorer``), made once."""
        scorer = getattr(self, "_scorer", None)
        if scorer is None:
            from rag.answer.extractive.scoring import FeatureScorer, make_scorer

            def query_vector(q: str) -> np.ndarray:
                return np.asarray(self.embed_model.get_query_embedding(q), dtype=np.float32)

            scorer = self._scorer = make_scorer(FeatureScorer(query_vector, self._idf, self.sentence_vectors))
        return scorer

    def _overview(self, question: str, nodes, allowed: frozenset[str] | None = None) -> Answer:
        """Answer "summarize", "what is this article about", "main points": the lead and the most central
        sentences of the document the question is about, in document order, each quoted.

        Which documents: when the question names a topic ("summarize the article about the tobacco case")
        or only one document is indexed, the top-ranked document (up to three for "articles"/"documents",
        each labelled with its title). When it names none and several documents are indexed, the answer
        says how many there are and gives the lead sentence of the three ranked first, each labelled,
        so that the user can ask for one by name."""
        import re

        from rag.answer.extractive.overview import body_sentences, overview_topic

        t0 = time.perf_counter()
        order: list[tuple[str, str, str, str]] = []  # (doc_id, doc_hash, source, title) by retrieval rank
        for n in nodes:
            m = n.node.metadata
            key = (m["doc_id"], m["doc_hash"], m["source"], m["title"])
            if key not in order:
                order.append(key)
        topic = overview_topic(question)
        n_docs = len(self.store.manifest()) if allowed is None else len(allowed)  # the documents in scope
        plural = bool(re.search(r"\b(?:articles|documents|texts|stories|files|reports|all of them|each)\b",
                                question, re.I))
        if topic or n_docs <= 1:
            picked, per_doc, lead_only = order[: 3 if plural else 1], (3 if plural else 4), False
        else:
            picked, per_doc, lead_only = order[:3], 1, True
        parts, cites, notes = [], [], []
        for doc_id, doc_hash, source, title in picked:
            try:
                text = self.store.document_text(doc_id, doc_hash)
            except Store.DoesNotExist:
                continue
            spans = body_sentences(text)[:200]  # headings are no answer
            if not spans:
                continue
            headline = spans[0].text(text).strip() == title.strip() and len(spans) > 1
            if lead_only:
                idx = [1 if headline else 0]
            else:
                idx = self._central(text, spans, doc_hash, doc_id, source, title, per_doc, headline)
            quoted = []
            for i in idx:
                c = Candidate(doc_id, doc_hash, source, title, spans[i].start, spans[i].end,
                              spans[i].text(text), 0, prob=1.0)
                n = len(cites) + 1
                cites.append(self._citation(n, c, "support"))
                quoted.append(f"{c.text} [{n}]")
            label = f"From “{title}”: " if (len(picked) > 1 or lead_only) else f"The main points of “{title}”: "
            parts.append(label + " ".join(quoted))
        if not cites:
            return Answer(answer="The documents do not answer this question.", abstained=True,
                          status="abstained", backend="extractive")
        if lead_only:
            head = (f"{n_docs} documents are indexed and the question names none of them; the opening sentence "
                    f"of the {len(picked)} closest (ask to summarize one by its title):")
            text = head + " " + " ".join(parts)
            notes.append(f"overview: {n_docs} documents and no topic named, so the lead of the {len(picked)} "
                         "top-ranked documents")
        else:
            text = " ".join(parts)
            notes.append("overview: lead and most central sentences of the top-ranked "
                         + ("documents" if len(picked) > 1 else "document"))
        answer = Answer(answer=text, citations=cites, backend="extractive", note="; ".join(notes))
        answer.timings_ms["rank"] = round((time.perf_counter() - t0) * 1000, 2)
        return answer

    def _central(self, text: str, spans, doc_hash: str, doc_id: str, source: str, title: str, k: int,
                 headline: bool) -> list[int]:
        """Indices of the lead and the k-1 sentences nearest the document's centroid (MiniLM vectors, cached)."""
        from rag.answer.extractive.overview import central_sentences

        cands = [Candidate(doc_id, doc_hash, source, title, s.start, s.end, s.text(text), 0) for s in spans]
        vectors = self.sentence_vectors.get(cands)
        return central_sentences(spans, vectors, k=k, skip_first=headline)

    def _citation(self, n: int, c: Candidate, role: str, question: str | None = None) -> Citation:
        """A Citation of candidate ``c``; with ``question``, its short answer (if any) as the highlight."""
        from rag.answer.extractive.question_kinds import short_answer
        from rag.models import Highlight

        cite = Citation(id=n, quote=c.text, doc_id=c.doc_id, source=c.source, title=c.title,
                        start=c.start, end=c.end, score=round(c.prob, 4), role=role)
        if question:
            span = short_answer(question, c.text)
            if span:
                cite.highlight = Highlight(start=c.start + span[0], end=c.start + span[1],
                                           text=c.text[span[0]:span[1]])
        cite._doc_hash = c.doc_hash  # noqa: SLF001  (private: which version was quoted)
        return cite

    def _checked(self, answer: Answer, allowed: frozenset[str] | None = None) -> Answer:
        """Enforce document_text[start:end] == quote for every citation before returning, and that
        a scoped answer cites only documents of its scope (``allowed``); add page numbers."""
        if allowed is not None and any(c.doc_id not in allowed for c in answer.citations):
            # retrieval filters by scope already; this second lock on the door gives nothing of what
            # lay outside: not the quote, not the sentence built on it
            answer.answer = "The documents in scope do not answer this question."
            answer.abstained, answer.status = True, "abstained"
            answer.citations, answer.claims = [], []
            answer.note = "an answer citing documents outside the question's scope was withheld"
        hashes = {c.doc_id: getattr(c, "_doc_hash", None) for c in answer.citations}

        def text_of(doc_id: str) -> str | None:
            try:
                want = hashes.get(doc_id)
                return self.store.document_text(doc_id, want) if want else self.store.document(doc_id).text
            except Store.DoesNotExist:
                return None

        good, bad = verify(answer.citations, text_of)
        if bad:
            answer.answer = strip_markers(answer.answer, {c.id for c in bad})
            answer.citations = good
            answer.dropped_claims += [c.quote for c in bad]
            if not any(c.role != "related" for c in good) and not answer.abstained:
                answer.abstained, answer.status = True, "abstained"
                answer.answer = "The documents do not answer this question (the quotes found could not be verified)."
                answer.citations = []
        self._paged(answer.citations)
        return answer

    def _paged(self, citations: list[Citation]) -> None:
        """Set ``page`` (and ``page_end`` when the quote runs onto later pages) on citations of paged
        documents, from the page map in the document's record."""
        from rag.index.pdf import page_of

        maps: dict[str, list[int] | None] = {}
        for c in citations:
            if c.doc_id not in maps:
                record = next((r for r in self.store.catalog() if r.doc_id == c.doc_id), None)
                maps[c.doc_id] = record.page_starts if record is not None else None
            starts = maps[c.doc_id]
            if starts:
                c.page = page_of(starts, c.start)
                last = page_of(starts, max(c.start, c.end - 1))
                c.page_end = last if last != c.page else None

    # ------------------------------------------------------------ documents

    def ingest(self, paths: list[Path], prune: bool = False, show_progress: bool = False) -> IngestReport:
        with self._write_lock:
            report = Indexer(self.store).ingest_paths(paths, prune=prune, show_progress=show_progress)
            self._read_your_writes()
            return report

    def add_document(self, data: bytes, filename: str, replace: bool = False, progress=None) -> IngestReport:
        """Index uploaded bytes under the source name ``upload:<filename>``. Raises LoadError, and
        DocumentExists when a different document of that name is indexed and ``replace`` is off:
        an upload never replaces another silently. ``progress(done, total)`` is told of chunks embedded."""
        return self.index_upload(self.read_upload(data, filename), replace, progress)

    def read_upload(self, data: bytes, filename: str, collection: str | None = None, on_page=None):
        """The Document of uploaded bytes, not indexed yet; raises LoadError. Its source is
        ``upload:<filename>`` in the default collection and ``upload:<collection>/<filename>`` in
        another, so two collections can each hold a file of the same name."""
        name = Path(filename.replace("\\", "/")).name
        if not name or name.startswith("."):
            raise LoadError("invalid file name")
        text, title, meta = parse_bytes(data, Path(name).suffix, on_page=on_page)
        collection = collection or DEFAULT_COLLECTION
        source = f"upload:{name}" if collection == DEFAULT_COLLECTION else f"upload:{collection}/{name}"
        return make_document(text, source, title, **meta, size=len(data), collection=collection)

    def upload_clash(self, doc, replace: bool = False) -> Exception | None:
        """Why an upload may not be indexed, from one read of the record of its name: CollectionClash
        when that document sits in another collection (moved there since; an upload never replaces nor
        moves it), DocumentExists when it holds other content and ``replace`` is off; else None."""
        try:
            old = self.store.document(doc.metadata["doc_id"])
        except Store.DoesNotExist:
            return None
        if old.collection != doc.metadata.get("collection", DEFAULT_COLLECTION):
            return CollectionClash(doc.metadata["source"])
        if not replace and old.doc_hash != doc.metadata["doc_hash"]:
            return DocumentExists(old)
        return None

    def index_upload(self, doc, replace: bool = False, progress=None) -> IngestReport:
        """Index a Document from ``read_upload`` (see ``add_document``)."""
        with self._write_lock:
            clash = self.upload_clash(doc, replace)
            if clash is not None:
                raise clash
            report = Indexer(self.store).ingest_documents([doc], chunk_progress=progress)
            self._read_your_writes()
            return report

    def delete_document(self, doc_id: str):
        with self._write_lock:
            record = self.store.delete(doc_id)
            page_files.remove(self.config.data_dir, doc_id)
            self._read_your_writes()
            return record

    def move_document(self, doc_id: str, collection: str):
        """Put a document in another collection (its text, chunks and id stay)."""
        with self._write_lock:
            record = self.store.move(doc_id, collection)
            self._read_your_writes()
            return record

    def collections(self, permission: Scope | None = None) -> list[dict]:
        """[{name, documents, chunks}] of the collections the caller may read, by name."""
        out: dict[str, dict] = {}
        for r in self.store.catalog():
            if permission is None or permission.allows(r):
                c = out.setdefault(r.collection, {"name": r.collection, "documents": 0, "chunks": 0})
                c["documents"] += 1
                c["chunks"] += r.n_chunks
        return [out[k] for k in sorted(out)]

    def page_image(self, record, page: int, start: int | None = None, end: int | None = None) -> bytes:
        """PNG of page ``page`` (1-based) of a paged document with text[start:end] highlighted on it.
        Raises LookupError (no such page, or the page images are not on this machine)."""
        from rag.index.page_image import render_png

        if not record.page_starts or not record.source.lower().endswith(".pdf"):
            raise LookupError(f"{record.source} has no page images (only PDFs do; a slide's number is its page)")
        if not 1 <= page <= len(record.page_starts):
            raise LookupError(f"no page {page}: {record.source} has {len(record.page_starts)}")
        kept = page_files.load(self.config.data_dir, record.doc_id, record.doc_hash)
        if kept is None:
            raise LookupError(f"the page images of {record.source} are not on this server (it was indexed "
                              "elsewhere, or before page images were kept: re-index it)")
        pdf_path, layout = kept
        return render_png(pdf_path, layout, page, start, end, cache_key=(record.doc_id, record.doc_hash))

    def _read_your_writes(self) -> None:
        """Rebuild the BM25 side now, so the next question sees the change (otherwise it is
        re-checked once a second and an answer right after an upload could miss the document)."""
        self.store.invalidate()
        self.retriever.lexical.refresh(force=True)

    def documents(self):
        return self.store.documents()

    @property
    def backend(self) -> str:
        return self.generator.name if self.generator is not None else "extractive"

    def extractive_answer(self, question: str, nodes, allowed: frozenset[str] | None = None) -> Answer:
        """The extractive answer for already-retrieved nodes (generative backends fall back to it)."""
        return self._extractive(question, nodes, allowed)
