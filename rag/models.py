"""The Answer contract: one set of Pydantic models shared by the Python API,
the CLI's ``--json``, the HTTP API and the UI (see DESIGN.md)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr


class Highlight(BaseModel):
    """The short answer inside a citation's quote, in document offsets:
    ``quote.start <= start < end <= quote.end`` and ``document_text[start:end] == text``."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Citation(BaseModel):
    id: int = Field(description="The n of the [n] marker in the answer text")
    quote: str = Field(description="Exact substring of the document: document_text[start:end] == quote")
    doc_id: str
    source: str
    title: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(description="How well the quote answers the question (0..1)")
    role: Literal["support", "related", "contradiction"] = Field(
        "support", description="support: backs a claim; related: closest passage when abstaining; "
                               "contradiction: contradicts the question's premise")
    highlight: Highlight | None = Field(
        None, description="The short answer inside the quote (e.g. a name for a 'who' question), if any")
    page: int | None = Field(None, ge=1, description="Paged documents (PDFs): the 1-based page the quote starts on")
    page_end: int | None = Field(None, ge=1, description="The last page of a quote that runs onto later pages")
    _doc_hash: str | None = PrivateAttr(None)  # which version of the document was quoted


class ClaimEvent(BaseModel):
    """One verified claim of a streamed model answer: its sentence (with its [n] marker) and citation."""

    text: str
    citation: Citation
    also: list[Citation] = Field(default_factory=list, description="Further citations of a claim that joins two sentences")
    support: float | None = Field(None, description="The answer model's own P(its sentences support the claim)")


FILE_TYPES = {".txt": "Text", ".text": "Text", ".md": "Markdown", ".markdown": "Markdown", ".html": "HTML",
              ".htm": "HTML", ".pdf": "PDF", ".docx": "Word"}


def file_type(source: str) -> str:
    """What kind of file a document came from, by its name (``upload:notes.md`` -> "Markdown")."""
    name = source.split(":", 1)[1] if source.startswith("upload:") else source
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    return FILE_TYPES.get(suffix, suffix.lstrip(".").upper())


class Source(BaseModel):
    """A document an answer is read from."""

    doc_id: str
    title: str
    source: str


class SourcesEvent(BaseModel):
    """The first item of a stream (``Assistant.stream(..., sources=True)``): the documents of the retrieved
    passages, best first, sent as soon as retrieval is done and before any answer text."""

    sources: list[Source]
    question_used: str = Field("", description="The question retrieved for (follow-ups rewritten with history)")


class Claim(BaseModel):
    """One claim of a model answer as kept: its sentence, the citation it rests on, and what checked it."""

    text: str = Field(description="The claim sentence with its [n] marker")
    citation_id: int
    also_cites: list[int] = Field(default_factory=list, description="Further citations the claim rests on: a claim "
                                  "joining two sentences is checked against both together")
    support: float | None = Field(
        None, description="P(yes) that the cited sentences support every part of the claim, read from the answer "
                          "model's own first-token logprobs (None: not checked by a model)")
    checked_by: str = Field("", description="What decided the claim: 'self-check' (the answer model), "
                                             "'json-verdict' (a model without logprobs) or 'overlap' (no model)")


class Turn(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=20_000)


class Answer(BaseModel):
    answer: str = Field(description="Answer text with [n] markers")
    abstained: bool = Field(False, description="True when the documents do not answer the question")
    status: Literal["answered", "abstained", "premise_contradicted"] = "answered"
    citations: list[Citation] = Field(default_factory=list)
    backend: str = "extractive"
    question: str = ""
    question_used: str = Field("", description="The question actually answered (follow-ups rewritten with history)")
    claims: list[Claim] = Field(default_factory=list, description="A model answer's kept claims with their support")
    dropped_claims: list[str] = Field(default_factory=list, description="Generated sentences removed by quote checks")
    note: str | None = Field(None, description="Why the answer was changed, e.g. fallback to extractive")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict, description="Tokens the answer model read (prompt_tokens) "
                                                                    "and wrote (completion_tokens); empty when no model ran")
