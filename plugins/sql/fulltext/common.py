"""What the SQL full-text indexes share: the source table, filters, errors and the result order."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from pinnacle.backends.fulltext import FullText, TextIndexSpec, query_words
from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.statements import where_clause

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.backend import SQLBackend

__all__ = ["SQLFullText", "MAX_WORDS"]

#: Words of a query passed to the engine (the rest are ignored): bounds the statement.
MAX_WORDS = 64


class SQLFullText(FullText):
    """Base of the SQL full-text indexes: subclasses give the DDL and the match/score expressions."""

    def __init__(self, backend: "SQLBackend", spec: TextIndexSpec):
        self.backend = backend
        self.spec = spec
        self.quote = backend.quote

    @classmethod
    def open(cls, backend: "SQLBackend", spec: TextIndexSpec) -> "SQLFullText":
        return cls(backend, spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r} on {self.spec.table}.{self.spec.column})"

    @property
    def what(self) -> str:
        return f"full-text index of VectorIndex {self.spec.identifier!r} on {self.spec.table}.{self.spec.column}"

    def errors(self, doing: str) -> t.Any:
        """A context in which a driver error becomes a BackendError about ``doing`` this index."""
        return self.backend._translate_errors(f"{doing} the {self.what}")

    def source(self) -> tuple[sa.Table, sa.Column]:
        """The reflected source table and its primary key column; the column must exist."""
        table = self.backend.table(self.spec.table)
        if self.spec.column not in table.c:
            raise ConfigError(
                f"VectorIndex {self.spec.identifier!r}: full_text needs column {self.spec.column!r} in "
                f"table {self.spec.table!r}; its columns are {list(table.c.keys())}."
            )
        return table, table.c[self.backend.primary_key(self.spec.table)]

    def words(self, query: str) -> list[str]:
        """The query's words that hold a letter or digit (at most :data:`MAX_WORDS`)."""
        return [w for w in query_words(query) if any(ch.isalnum() for ch in w)][:MAX_WORDS]

    def restrict(self, select: sa.Select, table: sa.Table, pk: sa.Column, within, filter) -> sa.Select:
        """``select`` limited to ``within`` ids and ``filter`` on the source table (pre-filtering)."""
        clause = where_clause(table, filter)
        if clause is not None:
            select = select.where(clause)
        if within is not None:
            select = select.where(self.backend.dialect.one_of(pk, list(within)))
        return select

    def run(self, select: sa.Select) -> list[tuple[t.Any, float]]:
        with self.errors("searching"), self.backend.engine.connect() as conn:
            return [(source, float(score)) for source, score in conn.execute(select)]

    def search(self, query, n, *, within=None, filter=None):
        if n <= 0 or (within is not None and len(within) == 0):
            return []
        words = self.words(query)
        if not words:
            return []
        return self.run(self.select(words, int(n), within, filter))

    def select(self, words: list[str], n: int, within, filter) -> sa.Select:
        """The statement of :meth:`search`: ``(id, score)`` best first, ties by id, ``n`` rows."""
        raise NotImplementedError
