"""The contract of a full-text index kept by the database itself, beside a VectorIndex.

A backend that has one derives from :class:`FullTextStore`: ``full_text(spec)`` gives a
:class:`FullText` over one text column of one table (SQLite FTS5, PostgreSQL ``tsvector``
+ GIN, MySQL/MariaDB ``FULLTEXT``, a MongoDB text index), or ``None`` where this database
has no full-text engine pinnacle can use (then ``apply()`` refuses ``full_text=True`` with
the reason). The database keeps the index current on every write, by any client.
"""

from __future__ import annotations

import abc
import dataclasses as dc
import re
import typing as t

__all__ = ["TextIndexSpec", "FullText", "FullTextStore", "query_words"]

Where = t.Optional[t.Mapping[str, t.Any]]

#: What a query is split into: runs of characters that are not spaces or quotes.
_WORD = re.compile(r"[^\s\"'`]+")


@dc.dataclass(frozen=True)
class TextIndexSpec:
    """One full-text index: the VectorIndex it belongs to, the table and column it indexes.

    ``language``: a PostgreSQL text search configuration or MongoDB language, ``None`` for
    the default (``'english'``); SQLite and MySQL/MariaDB ignore it.

    Example:
        >>> TextIndexSpec("docs-idx", "docs", "text").name
        '_fts__docs-idx'
    """

    identifier: str
    table: str
    column: str
    language: t.Optional[str] = None

    @property
    def name(self) -> str:
        """The name of the database object(s): ``_fts__<identifier>`` (identifiers are validated)."""
        return f"_fts__{self.identifier}"

    def to_json(self) -> dict[str, t.Any]:
        return dc.asdict(self)

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> "TextIndexSpec":
        return cls(data["identifier"], data["table"], data["column"], data.get("language"))


def query_words(text: str) -> list[str]:
    """The words of a query, in order, without quotes (each engine quotes them its own way).

    Example:
        >>> query_words('error "E-4471" on boot')
        ['error', 'E-4471', 'on', 'boot']
    """
    return _WORD.findall(text or "")


class FullText(abc.ABC):
    """A full-text index over ``spec.column`` of ``spec.table``, kept by the database.

    Scores are higher-is-better (the engine's relevance: BM25, ``ts_rank_cd``, ``MATCH``
    relevance, ``textScore``); ties are ordered by id, so results are deterministic.
    """

    spec: TextIndexSpec

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the index is in the database."""

    @abc.abstractmethod
    def create(self) -> None:
        """Create the index (and what keeps it current) unless it exists; rows already in the
        table are indexed. Nothing is left behind if it fails."""

    @abc.abstractmethod
    def drop(self) -> None:
        """Remove the index and what kept it current (nothing to do if it is not there)."""

    @abc.abstractmethod
    def search(
        self, query: str, n: int, *, within: t.Optional[t.Collection[t.Any]] = None, filter: Where = None,
    ) -> list[tuple[t.Any, float]]:
        """The ``n`` best ``(id, score)`` rows matching any word of ``query``, among the ids in
        ``within`` and the rows matching ``filter`` (pre-filtering)."""


class FullTextStore(abc.ABC):
    """Optional: full-text indexes in the database (see :class:`FullText`)."""

    @abc.abstractmethod
    def full_text(self, spec: TextIndexSpec) -> t.Optional[FullText]:
        """A :class:`FullText` for ``spec`` (created or not), or ``None`` where this database
        has no full-text engine (then :meth:`full_text_missing` says why)."""

    def full_text_missing(self) -> str:
        """Why :meth:`full_text` gives ``None`` here (for the error ``apply()`` raises)."""
        return "this database has no full-text engine pinnacle can use"
