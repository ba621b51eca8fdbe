"""API keys and what each may read or write.

``RAG_API_KEY`` / ``--api-key`` is one key with every right. ``RAG_API_KEYS`` adds keys limited to
document collections, ``KEY=COLL[,COLL...][:ro]`` separated by ``;`` (``*`` for every collection;
``:ro``: may ask and read, not upload, move or delete), and ``RAG_API_KEYS_FILE`` names a JSON file
``{"KEY": {"collections": ["alpha"], "write": false}}`` of the same (``write`` defaults to false there;
anything malformed stops the server from starting rather than granting more). A limited key sees only its
collections on every route: a document, page image, job or answer from another collection is a
404, exactly as if it did not exist. Limited keys are for the API (``/api``, ``/v1``); the chat UI
opens only with a full key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rag.index.scope import Scope, check_name


@dataclass(frozen=True)
class Grant:
    collections: frozenset[str] | None = None  # None: every collection
    write: bool = True

    @property
    def full(self) -> bool:
        return self.collections is None and self.write

    @property
    def scope(self) -> Scope | None:
        return None if self.collections is None else Scope(collections=self.collections)


FULL = Grant()


class KeySpecError(ValueError):
    """RAG_API_KEYS or the keys file is malformed; the message says where."""


def _grant(collections, write: bool, where: str) -> Grant:
    if collections in ("*", ["*"], None):
        return Grant(None, write)
    try:
        names = frozenset(check_name(c) for c in collections)
    except (ValueError, TypeError) as exc:
        raise KeySpecError(f"{where}: {exc}") from None
    if not names:
        raise KeySpecError(f"{where}: a key needs at least one collection (or '*')")
    return Grant(names, write)


def parse_spec(spec: str) -> dict[str, Grant]:
    """``KEY=alpha,beta;KEY2=*:ro`` -> {key: Grant}."""
    out: dict[str, Grant] = {}
    for i, item in enumerate(p.strip() for p in spec.split(";")):
        if not item:
            continue
        key, sep, rights = item.partition("=")
        if not sep or not key.strip() or len(key.strip()) < 8:
            raise KeySpecError(f"RAG_API_KEYS item {i + 1}: expected KEY=COLLECTION[,...][:ro] with a key of "
                               "8 or more characters")
        rights, _, mode = rights.partition(":")
        if mode not in ("", "ro", "rw"):
            raise KeySpecError(f"RAG_API_KEYS item {i + 1}: unknown mode {mode!r} (ro or rw)")
        names = [c.strip() for c in rights.split(",") if c.strip()]
        out[key.strip()] = _grant("*" if names == ["*"] else names, mode != "ro", f"RAG_API_KEYS item {i + 1}")
    return out


def load_keys(api_key: str | None = None, env: dict | None = None) -> dict[str, Grant]:
    """Every key the server accepts with its grant (empty: no key needed)."""
    env = os.environ if env is None else env
    keys: dict[str, Grant] = {}
    path = env.get("RAG_API_KEYS_FILE")
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise KeySpecError(f"RAG_API_KEYS_FILE {path}: {exc}") from None
        if not isinstance(data, dict):
            raise KeySpecError(f"RAG_API_KEYS_FILE {path}: expected an object of key -> rights")
        for key, rights in data.items():  # every malformed entry is an error: nothing fails open
            where = f"RAG_API_KEYS_FILE key {key[:4]}..."
            if not isinstance(key, str) or len(key.strip()) < 8:
                raise KeySpecError(f"{where}: a key needs 8 or more characters")
            if not isinstance(rights, dict):
                raise KeySpecError(f"{where}: expected {{\"collections\": [...] or \"*\", \"write\": true|false}}")
            collections = rights.get("collections")
            if not (collections == "*" or isinstance(collections, list) and all(isinstance(c, str) for c in collections)):
                raise KeySpecError(f"{where}: \"collections\" must be a list of names or \"*\"")
            write = rights.get("write", False)
            if not isinstance(write, bool):
                raise KeySpecError(f"{where}: \"write\" must be true or false")
            keys[key.strip()] = _grant(collections, write, where)
    if env.get("RAG_API_KEYS"):
        keys.update(parse_spec(env["RAG_API_KEYS"]))
    if api_key:
        keys[api_key] = FULL
    return keys


def grant_of(request) -> Grant:
    """What the request's key may do, as ``rag.serve.app.GuardMiddleware`` found it (every right when the
    server needs no key)."""
    return (request.scope.get("state") or {}).get("grant", FULL)
