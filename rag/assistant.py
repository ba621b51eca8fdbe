"""The one entry point: ``Assistant.open().ask("...")`` returns an ``Answer``.

The CLI, the HTTP API and the UI are thin layers over this class. Every
Answer passes ``_checked`` before it is returned: each citation's quote is
compared with the stored document text at its offsets, failures are
dropped with their markers, and an answer left without support abstains.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .config import Config
from .embeddings import default_embedding
from .extractive import (Candidate, SentenceEmbeddings, candidates, choose, featurize, missing_entities,
                         premise_verdict, scoring_model)
from .followup import rewrite
from .ingest import Indexer, IngestReport
from .loaders import LoadError, make_document, parse_bytes
from .models import Answer, Citation
from .quotes import strip_markers, verify
from .retriever import HybridRetriever
from .store import Store

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 50


class BadRequest(ValueError):
    """The question or its options are unusable; the message says why."""


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
            from .generative import make_generator  # optional backends: openai:MODEL, gguf:PATH, smollm2

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

    def retrieve(self, question: str, top_k: int | None = None):
        return self.retriever.search(question, top_k or self.config.top_k)

    def _prepare(self, question, history, top_k):
        """Validate, rewrite the follow-up, retrieve: (question, question_used, nodes, t0, t1)."""
        question, history, top_k = self._validate(question, history, top_k)
        t0 = time.perf_counter()
        used = self._condense(question, history)
        nodes = self.retrieve(used, top_k)
        return question, used, nodes, t0, time.perf_counter()

    def ask(self, question: str, history: list | None = None, top_k: int | None = None) -> Answer:
        """Answer one question (with optional chat history) from the indexed documents."""
        question, used, nodes, t0, t1 = self._prepare(question, history, top_k)
        if self.generator is None:
            answer = self._extractive(used, nodes)
        else:
            answer = self.generator.answer(used, nodes, self)
        return self._finish(answer, question, used, t0, t1)

    def _condense(self, question: str, history: list[dict]) -> str:
        if self.generator is not None and history:
            return self.generator.condense(question, history) or rewrite(question, history)
        return rewrite(question, history)

    def _finish(self, answer: Answer, question: str, used: str, t0: float, t1: float) -> Answer:
        answer.question, answer.question_used = question, used
        t2 = time.perf_counter()
        answer = self._checked(answer)
        answer.timings_ms = {"retrieve": round((t1 - t0) * 1000, 2), "answer": round((t2 - t1) * 1000, 2),
                             "verify": round((time.perf_counter() - t2) * 1000, 2), **answer.timings_ms}
        return answer

    def stream(self, question: str, history: list | None = None, top_k: int | None = None) -> Iterator[str | Answer]:
        """Text deltas of the answer, then the final checked Answer.

        With a generative backend the deltas are the model's raw tokens; the final
        Answer is the verified one (claims whose quotes fail are gone from it)."""
        if self.generator is None:
            answer = self.ask(question, history, top_k)
            words = answer.answer.split(" ")
            for i, word in enumerate(words):
                yield word if i == 0 else " " + word
            yield answer
            return
        question, used, nodes, t0, t1 = self._prepare(question, history, top_k)
        for item in self.generator.stream(used, nodes, self):
            if isinstance(item, Answer):
                yield self._finish(item, question, used, t0, t1)
                return
            yield item

    # ------------------------------------------------------------ composing

    def _extractive(self, question: str, nodes) -> Answer:
        model = scoring_model()
        if not nodes:
            return Answer(answer="There are no indexed documents to answer from.", abstained=True,
                          status="abstained", backend="extractive")
        q_vec = np.asarray(self.embed_model.get_query_embedding(question), dtype=np.float32)
        ranked = featurize(question, q_vec, candidates(nodes), self.retriever.lexical.bm25.idf,
                           self.sentence_vectors)
        chosen = choose(ranked, model)
        if not chosen:
            related = ranked[0] if ranked and ranked[0].features["coverage"] > 0 else None
            text = "The documents do not answer this question."
            cites = []
            if related:
                shown = related.text if related.text[:1] in "“\"" else f"“{related.text}”"
                text += f" Related, but not an answer: {shown} [1]"
                cites = [self._citation(1, related, "related")]
            return Answer(answer=text, abstained=True, status="abstained", citations=cites, backend="extractive")
        idf = self.retriever.lexical.bm25.idf
        best = chosen[0]
        absent = missing_entities(question, " ".join(n.node.text for n in nodes))
        verdict = "contradiction" if absent else premise_verdict(question, best.text, idf)
        if verdict == "contradiction":
            lead = (f"The documents do not mention {', '.join(absent)}; what they say is:" if absent
                    else "The documents contradict the premise of the question:")
            return Answer(answer=f"{lead} {best.text} [1]", status="premise_contradicted",
                          citations=[self._citation(1, best, "contradiction")], backend="extractive")
        if verdict == "no":
            return Answer(answer=f"No. {best.text} [1]", citations=[self._citation(1, best, "support")],
                          backend="extractive")
        parts, cites = [], []
        for n, c in enumerate(chosen, 1):
            parts.append(f"{c.text} [{n}]")
            cites.append(self._citation(n, c, "support"))
        return Answer(answer=" ".join(parts), citations=cites, backend="extractive")

    @staticmethod
    def _citation(n: int, c: Candidate, role: str) -> Citation:
        cite = Citation(id=n, quote=c.text, doc_id=c.doc_id, source=c.source, title=c.title,
                        start=c.start, end=c.end, score=round(c.prob, 4), role=role)
        cite._doc_hash = c.doc_hash  # noqa: SLF001  (private: which version was quoted)
        return cite

    def _checked(self, answer: Answer) -> Answer:
        """Enforce document_text[start:end] == quote for every citation before returning."""
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
        return answer

    # ------------------------------------------------------------ documents

    def ingest(self, paths: list[Path], prune: bool = False, show_progress: bool = False) -> IngestReport:
        with self._write_lock:
            report = Indexer(self.store).ingest_paths(paths, prune=prune, show_progress=show_progress)
            self._read_your_writes()
            return report

    def add_document(self, data: bytes, filename: str) -> IngestReport:
        """Index uploaded bytes under the source name ``upload:<filename>``. Raises LoadError."""
        name = Path(filename.replace("\\", "/")).name
        if not name or name.startswith("."):
            raise LoadError("invalid file name")
        text, title = parse_bytes(data, Path(name).suffix)
        doc = make_document(text, f"upload:{name}", title)
        with self._write_lock:
            report = Indexer(self.store).ingest_documents([doc])
            self._read_your_writes()
            return report

    def delete_document(self, doc_id: str):
        with self._write_lock:
            record = self.store.delete(doc_id)
            self._read_your_writes()
            return record

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

    def extractive_answer(self, question: str, nodes) -> Answer:
        """The extractive answer for already-retrieved nodes (generative backends fall back to it)."""
        return self._extractive(question, nodes)
