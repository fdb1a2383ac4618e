"""The version of a listener's outputs: one token that every commit changing them replaces.

An in-memory index (``pinnacle/search/indexes.py``) asks before each search whether the
outputs changed since it last read them. Counting the outputs table for that read every
row of it (about 90 ms per search at 100,000 rows of 384-d vectors); the token is one row
of ``_pinnacle_state`` read by its key, whatever the size of the table.

A commit reads the token it replaces under a lock (SQLite: the write lock its transaction
holds; elsewhere ``FOR UPDATE`` on the token's row, taken last, just before the commit), so
``(old, new)`` says that no other commit came between: an index that had seen ``old`` takes
the commit's own outputs and is then at ``new`` without reading the table.

Example:
    >>> import sqlalchemy as sa
    >>> from pinnacle.plugins.sql.dialects import dialect_for
    >>> from pinnacle.plugins.sql.schema import metadata_tables
    >>> engine = sa.create_engine("sqlite://")
    >>> meta = sa.MetaData(); _ = metadata_tables(meta, dialect_for(engine)); meta.create_all(engine)
    >>> state = meta.tables["_pinnacle_state"]
    >>> with engine.begin() as conn:
    ...     old, new = replace(conn, dialect_for(engine), state, "_outputs__docs-emb")
    >>> old, new == read(engine.connect(), state, "_outputs__docs-emb")
    ('', True)
"""

from __future__ import annotations

import typing as t
import uuid

import sqlalchemy as sa

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["replace", "read", "key_of"]


def key_of(outputs_table: str) -> str:
    """The ``_pinnacle_state`` key of an outputs table's version."""
    return f"outputs-version:{outputs_table}"


def read(conn: sa.Connection, state: sa.Table, outputs_table: str) -> str:
    """The current token (``""`` before the first commit)."""
    return conn.execute(sa.select(state.c.value).where(state.c.key == key_of(outputs_table))).scalar_one_or_none() or ""


def replace(conn: sa.Connection, dialect: "Dialect", state: sa.Table, outputs_table: str) -> tuple[str, str]:
    """Give the outputs a new token in ``conn``'s transaction; returns ``(old, new)``."""
    key = key_of(outputs_table)
    old = conn.execute(sa.select(state.c.value).where(state.c.key == key).with_for_update()).scalar_one_or_none()
    new = uuid.uuid4().hex
    dialect.upsert(conn, state, [{"key": key, "value": new}], "key")
    return old or "", new
