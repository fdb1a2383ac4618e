"""Small statement helpers shared by the SQL backend (what differs per database is in ``dialects/``)."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from pinnacle.errors import ConfigError

__all__ = ["where_clause", "chunks"]

#: Rows per statement for IN lists and executemany (below SQLite's variable limit).
CHUNK = 900


def chunks(items: t.Sequence[t.Any], size: int = CHUNK) -> t.Iterator[t.Sequence[t.Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def where_clause(table: sa.Table, where: t.Optional[t.Mapping[str, t.Any]]) -> t.Optional[sa.ColumnElement]:
    """``col = value`` for each item; a list/tuple/set value means ``col IN (...)``; ``None`` is NULL."""
    if not where:
        return None
    clauses = []
    for column, value in where.items():
        if column not in table.c:
            raise ConfigError(
                f"Table {table.name!r} has no column {column!r}; columns are {[c.name for c in table.c]}."
            )
        col = table.c[column]
        if value is None:
            clauses.append(col.is_(None))
        elif isinstance(value, (list, tuple, set, frozenset)):
            clauses.append(col.in_(list(value)))
        else:
            clauses.append(col == value)
    return sa.and_(*clauses)
