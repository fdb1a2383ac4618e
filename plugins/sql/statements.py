"""Small dialect-aware statement builders shared by the SQL backend."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from pinnacle.errors import ConfigError

__all__ = ["upsert", "where_clause", "chunks", "dialect_name", "one_of"]

#: Rows per statement for IN lists and executemany (below SQLite's variable limit).
CHUNK = 900


def dialect_name(bind: sa.Engine | sa.Connection) -> str:
    name = bind.dialect.name
    return "mysql" if name == "mariadb" else name


def chunks(items: t.Sequence[t.Any], size: int = CHUNK) -> t.Iterator[t.Sequence[t.Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_of(column: sa.ColumnElement, keys: t.Sequence[t.Any], bind: t.Optional[sa.Engine | sa.Connection]) -> sa.ColumnElement:
    """``column IN (keys)``; on PostgreSQL ``column = ANY(:keys)``: one array parameter
    instead of one per key, so the statement is the same text for any number of keys.

    Example:
        >>> docs = sa.table("docs", sa.column("id", sa.Integer))
        >>> str(one_of(docs.c.id, [1, 2], bind=None))
        'docs.id IN (__[POSTCOMPILE_id_1])'
    """
    if bind is not None and bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, list(keys), type_=ARRAY(column.type), unique=True))
    return column.in_(list(keys))


def upsert(conn: sa.Connection, table: sa.Table, rows: list[dict], key: str) -> None:
    """Insert ``rows``, replacing those whose ``key`` exists already."""
    if not rows:
        return
    name = dialect_name(conn)
    columns = [c for c in rows[0] if c != key]
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "mysql":
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(table)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
        conn.execute(stmt, rows)
        return
    else:  # pragma: no cover - generic fallback
        keys = [r[key] for r in rows]
        conn.execute(table.delete().where(table.c[key].in_(keys)))
        conn.execute(table.insert(), rows)
        return
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, rows)


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
