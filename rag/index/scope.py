"""Which documents a question (or an API key) may read: collections and/or document ids.

A ``Scope`` is resolved against the committed records into the set of doc_ids it allows (None:
every document). Retrieval filters both signals by that set (Chroma ``where`` on ``doc_id``, the
SQLite FTS5 side by a ``doc_id IN`` join), and the Assistant checks every citation against it
again before an answer leaves. Scopes combine by intersection: a key limited to collections A and
B asking about collection B reads B; asking about C reads nothing (a 404, never another's data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ScopeError(LookupError):
    """A collection or document the scope names does not exist (or may not be read)."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError("a collection name is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
                         "or digit")
    return name


@dataclass(frozen=True)
class Scope:
    collections: frozenset[str] | None = None  # None: any collection
    doc_ids: frozenset[str] | None = None  # None: any document of those collections

    @classmethod
    def of(cls, collection: str | list[str] | None = None, doc_ids: list[str] | None = None) -> "Scope":
        if isinstance(collection, str):
            collection = [collection]
        return cls(frozenset(check_name(c) for c in collection) if collection else None,
                   frozenset(doc_ids) if doc_ids else None)

    @property
    def everything(self) -> bool:
        return self.collections is None and self.doc_ids is None

    def __and__(self, other: "Scope | None") -> "Scope":
        if other is None:
            return self
        def meet(a, b):
            return b if a is None else a if b is None else a & b
        return Scope(meet(self.collections, other.collections), meet(self.doc_ids, other.doc_ids))

    def allows(self, record) -> bool:
        return ((self.collections is None or record.collection in self.collections)
                and (self.doc_ids is None or record.doc_id in self.doc_ids))

    def resolve(self, records, asked: "Scope | None" = None) -> frozenset[str] | None:
        """The doc_ids a caller with this scope (its permission: an API key's collections) may read
        for a question scoped to ``asked``, among ``records``; None: every document. A collection or
        document ``asked`` names that the caller cannot see (absent, or outside its permission)
        raises ScopeError: a typo or a foreign collection is a 404, never an empty answer."""
        permitted = [r for r in records if self.allows(r)]
        if asked is not None:
            if asked.doc_ids and asked.doc_ids - {r.doc_id for r in permitted}:
                raise ScopeError(f"no such document: {sorted(asked.doc_ids - {r.doc_id for r in permitted})[0]}")
            if asked.collections and asked.collections - {r.collection for r in permitted}:
                raise ScopeError(f"no such collection: "
                                 f"{sorted(asked.collections - {r.collection for r in permitted})[0]}")
        combined = self & asked
        if combined.everything:
            return None
        return frozenset(r.doc_id for r in permitted if combined.allows(r))
