"""MongoDB: a text index on the field, searched with ``$text`` and ranked by ``textScore``.

The server keeps a text index current on every write, by any client. A collection holds
at most one text index: a second VectorIndex with ``full_text=True`` on the same collection
is refused, naming the index that is there. A query matches any of its words (a leading
``-`` is dropped, so no word negates, and quotes are removed, so no phrase is required).

mongomock does not implement ``$text``: there ``full_text`` is ``None`` and
``apply(VectorIndex(..., full_text=True))`` says so (:data:`MOCK_REASON`).
"""

from __future__ import annotations

import typing as t

from pinnacle.backends.fulltext import FullText, TextIndexSpec, query_words
from pinnacle.errors import ConfigError
from pinnacle.plugins.mongodb.errors import translate_errors
from pinnacle.plugins.mongodb.values import public_id, translate_where

__all__ = ["MongoFullText", "full_text_for", "MOCK_REASON", "DEFAULT_LANGUAGE", "text_query"]

MOCK_REASON = "mongomock does not implement MongoDB's $text operator (use a real MongoDB server)"
DEFAULT_LANGUAGE = "english"
#: Words of a query passed to ``$search`` (the rest are ignored).
MAX_WORDS = 64


def full_text_for(backend: t.Any, spec: TextIndexSpec) -> t.Optional["MongoFullText"]:
    """A :class:`MongoFullText` for ``spec``; ``None`` on mongomock."""
    if backend.is_mock:
        return None
    return MongoFullText(backend, spec)


def text_query(query: str, within: t.Optional[t.Collection[t.Any]] = None, filter: t.Optional[t.Mapping[str, t.Any]] = None) -> t.Optional[dict]:
    """The ``find`` filter of a text search (``None`` when the query has no word).

    Example:
        >>> text_query('error "E-4471" -boot', filter={"topic": "tech"})
        {'$and': [{'$text': {'$search': 'error E-4471 boot'}}, {'topic': 'tech'}]}
    """
    words = [w.lstrip("-") for w in query_words(query)]
    words = [w for w in words if any(ch.isalnum() for ch in w)][:MAX_WORDS]
    if not words:
        return None
    parts: list[dict] = [{"$text": {"$search": " ".join(words)}}]
    if filter:
        parts.append(translate_where(filter))
    if within is not None:
        parts.append(translate_where({"_id": list(within)}))
    return parts[0] if len(parts) == 1 else {"$and": parts}


class MongoFullText(FullText):
    """A MongoDB text index named ``_fts__<index>`` on ``spec.column``."""

    def __init__(self, backend: t.Any, spec: TextIndexSpec):
        self.backend = backend
        self.spec = spec

    def __repr__(self) -> str:
        return f"MongoFullText({self.spec.name!r} on {self.spec.table}.{self.spec.column})"

    @property
    def collection(self) -> t.Any:
        return self.backend.db[self.spec.table]

    def _what(self, doing: str) -> str:
        return f"{doing} the text index of VectorIndex {self.spec.identifier!r} on {self.spec.table}.{self.spec.column}"

    def _text_indexes(self) -> dict[str, dict]:
        return {
            name: info for name, info in self.collection.index_information().items()
            if any(kind == "text" for _, kind in info.get("key", []))
        }

    def exists(self) -> bool:
        with translate_errors(self._what("looking up"), self.backend.safe_uri):
            return self.spec.name in self._text_indexes()

    def create(self) -> None:
        with translate_errors(self._what("creating"), self.backend.safe_uri):
            self.backend._ensure_collection(self.spec.table)
            found = self._text_indexes()
            if self.spec.name in found:
                return
            if found:
                raise ConfigError(
                    f"VectorIndex {self.spec.identifier!r}: collection {self.spec.table!r} has a text index already "
                    f"({sorted(found)[0]!r}); MongoDB allows one per collection."
                )
            self.collection.create_index(
                [(self.spec.column, "text")], name=self.spec.name, default_language=self.spec.language or DEFAULT_LANGUAGE,
            )

    def drop(self) -> None:
        with translate_errors(self._what("dropping"), self.backend.safe_uri):
            if self.spec.table in self.backend.db.list_collection_names() and self.spec.name in self._text_indexes():
                self.collection.drop_index(self.spec.name)

    def search(self, query, n, *, within=None, filter=None):
        if n <= 0 or (within is not None and len(within) == 0):
            return []
        found = text_query(query, within, filter)
        if found is None:
            return []
        score = {"$meta": "textScore"}
        with translate_errors(self._what("searching"), self.backend.safe_uri):
            cursor = self.collection.find(found, {"_id": 1, "_fts_score": score})
            cursor = cursor.sort([("_fts_score", score), ("_id", 1)]).limit(int(n))
            return [(public_id(d["_id"]), float(d["_fts_score"])) for d in cursor]
