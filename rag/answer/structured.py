"""Structured answers: the JSON a model writes, the schema that constrains it, and its parsing.

A model answers with ``{"claims": [{"claim": ..., "source": N}, ...]}``: each claim is a
short sentence in the model's words, and ``source`` the number of the evidence sentence
(``rag.answer.evidence``) it rests on. An empty list means the documents do not answer.

The schema's ``source`` is an ``enum`` of the evidence's sentence numbers, so a backend
that enforces schemas can only cite a sentence that is in the documents, and the
citation's quote is that sentence, verbatim by construction. llama.cpp turns the schema
into a grammar (in-process through ``create_chat_completion(response_format=...)``, and
``llama_cpp.server``); OpenAI, vLLM and others take
``response_format={"type": "json_schema", ...}``. A server that refuses the schema is asked
with a plain JSON-object request, then with no format at all; the tolerant parser below
reads what comes back, and a claim that quotes text instead of a number has that text
located in the documents (``Evidence.find``).

Why a number and not the quoted text: copying a 30-word sentence costs a model on two
CPU cores about 4 s per claim; the number costs one token, and the quote is exact anyway.
"""

from __future__ import annotations

import json
import re

MAX_CLAIMS = 5
MAX_CLAIM_CHARS = 300


ORDER = ("claim", "source")  # the claim first: the model says what it found, then where
ABSTAIN = "NOT IN DOCUMENTS"


def claims_schema(n_sentences: int, max_claims: int = MAX_CLAIMS, min_claims: int = 0, short_answer: bool = True,
                  order: tuple[str, str] = ORDER) -> dict:
    """JSON schema of an answer whose claims cite one of sentences 1..n_sentences.

    ``short_answer``: an ``answer`` field comes first, the answer in a few words or
    NOT IN DOCUMENTS (the model commits to answering or not before it writes claims).
    ``min_claims`` > 0 (overview questions) makes the model cover several sentences."""
    fields = {"claim": {"type": "string", "maxLength": MAX_CLAIM_CHARS},
              "source": {"type": "integer", "enum": list(range(1, n_sentences + 1))} if n_sentences
              else {"type": "integer"}}
    claims = {"type": "array", "minItems": min_claims, "maxItems": max(max_claims, min_claims),
              "items": {"type": "object", "properties": {k: fields[k] for k in order}, "required": list(order),
                        "additionalProperties": False}}
    props = {"answer": {"type": "string", "maxLength": 120}} if short_answer else {}
    props["claims"] = claims
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


_ANSWER = re.compile(r"\"answer\"\s*:\s*\"((?:[^\"\\]|\\.)*)\"")


def short_answer(text: str) -> str | None:
    """The ``answer`` field of a (possibly unfinished) structured answer, once it is complete."""
    m = _ANSWER.search(text or "")
    if not m:
        return None
    try:
        return json.loads(f'"{m.group(1)}"').strip()
    except json.JSONDecodeError:
        return None


def says_abstain(answer: str | None) -> bool:
    return bool(answer) and ABSTAIN in answer.upper()


def response_formats(schema: dict) -> list[dict | None]:
    """What to send as ``response_format``, best first (``None``: plain prompt only)."""
    return [{"type": "json_schema", "json_schema": {"name": "cited_answer", "schema": schema, "strict": True}},
            {"type": "json_object", "schema": schema},
            None]


def llama_cpp_format(schema: dict) -> dict:
    """llama-cpp-python's in-process form: a JSON object constrained by the schema (a grammar)."""
    return {"type": "json_object", "schema": schema}


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```\s*$", re.I)


def _objects_after(text: str, start: int) -> tuple[list[dict], bool]:
    """Complete JSON objects of an array whose '[' is just before ``start``; True once ']' is seen."""
    decoder = json.JSONDecoder()
    out, i = [], start
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            return out, False
        if text[i] == "]":
            return out, True
        if text[i] != "{":
            return out, True  # not an array of objects: stop
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return out, False  # still being written
        if isinstance(obj, dict):
            out.append(obj)


_CLAIMS_KEY = re.compile(r"\"claims\"\s*:\s*\[")


def partial_claims(text: str) -> list[dict]:
    """The claims already complete in a (possibly unfinished) streamed answer."""
    m = _CLAIMS_KEY.search(text)
    if not m:
        return []
    return [c for c in _objects_after(text, m.end())[0] if _is_claim(c)]


def _is_claim(obj) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("claim"), str)
            and (isinstance(obj.get("source"), (int, str)) or isinstance(obj.get("quote"), str)))


def parse_claims(text: str) -> list[dict] | None:
    """Claims of a finished answer; None when the output is not a structured answer at all.

    Tolerates code fences, text around the JSON, a bare list, and other key orders; an
    object with ``claims: []`` (the model's "not in the documents") gives ``[]``."""
    text = _FENCE.sub("", (text or "").strip())
    for m in re.finditer(r"[\[{]", text):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("claims"), list):
            return [c for c in obj["claims"] if _is_claim(c)]
        if isinstance(obj, list) and all(isinstance(c, dict) for c in obj):
            return [c for c in obj if _is_claim(c)]
        if _is_claim(obj):
            return [obj]
    found = partial_claims(text)  # cut off by the token limit: keep what is complete
    return found or None
