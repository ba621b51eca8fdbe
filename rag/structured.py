"""Structured answers: the JSON a model writes, the schema that constrains it, and its parsing.

A model answers with ``{"claims": [{"quote": ..., "claim": ...}, ...]}``: each claim
first copies its evidence (``quote``), then says in its own short words what that
quote supports (``claim``). An empty list means the documents do not answer.

The schema's ``quote`` is an ``enum`` of the evidence's sentences and clauses
(``rag.evidence``), so a backend that enforces schemas can only emit verbatim
quotes: llama.cpp turns the schema into a grammar (in-process through
``create_chat_completion(response_format=...)``, and ``llama_cpp.server``); OpenAI,
vLLM and others take ``response_format={"type": "json_schema", ...}``. A server
that refuses the schema is asked with a plain JSON-object request, then with no
format at all; the tolerant parser below reads what comes back and quotes are
then located in the documents (``Evidence.find``).
"""

from __future__ import annotations

import json
import re

MAX_CLAIMS = 5
MAX_CLAIM_CHARS = 300


def claims_schema(quotes: list[str], max_claims: int = MAX_CLAIMS) -> dict:
    """JSON schema of an answer whose quotes must be one of ``quotes``."""
    quote = {"type": "string", "enum": list(quotes)} if quotes else {"type": "string"}
    return {"type": "object",
            "properties": {"claims": {"type": "array", "maxItems": max_claims,
                                      "items": {"type": "object",
                                                "properties": {"quote": quote,
                                                               "claim": {"type": "string",
                                                                         "maxLength": MAX_CLAIM_CHARS}},
                                                "required": ["quote", "claim"],
                                                "additionalProperties": False}}},
            "required": ["claims"], "additionalProperties": False}


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
    return isinstance(obj, dict) and isinstance(obj.get("quote"), str) and isinstance(obj.get("claim"), str)


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
