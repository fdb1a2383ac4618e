"""Rows being computed right now: one small record per live claim, for ``status()``.

A claim leaves no mark in the queue that another process could count: on PostgreSQL and
MySQL/MariaDB it is a row lock held while the model runs, on SQLite a plain read. So each
claim adds a record to ``_pinnacle_claims`` (defined in ``schema.metadata_tables``: the
queue table, how many rows, who holds them) when its rows reach the model
(``SQLClaim.mark_in_flight``: a drain that claims its next batch ahead of the model does not
count that batch yet), and its commit removes it in the same transaction as the outputs (a
release, in one of its own; on MySQL/MariaDB the table is a MEMORY table, outside
transactions, so the removal stands even if the commit fails).

A holder killed half-way (kill -9) leaves its record behind. Such a record is not counted,
because the holder is checked when counting (by the dialect, ``dialects/``): on PostgreSQL
the claim connection's backend pid in ``pg_stat_activity``, on MySQL/MariaDB its connection
id in the process list (both end with the connection, as the row locks do), on SQLite the
process id on this host. Records of dead holders are deleted by the next count. (A MySQL account without the
PROCESS privilege sees only its own connections: run ``status`` as the workers' account.)
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["register", "unregister", "count_in_flight"]


def register(conn: sa.Connection, table: sa.Table, queue: str, sources: int, holder: str, now: float) -> int:
    """Record a claim of ``sources`` rows of ``queue`` by ``holder``
    (:meth:`~pinnacle.plugins.sql.dialects.base.Dialect.holder_of`); returns the record's id."""
    result = conn.execute(table.insert().values(queue=queue, sources=int(sources), holder=holder, claimed_at=now))
    return int(result.inserted_primary_key[0])


def unregister(conn: sa.Connection, table: sa.Table, record_id: int) -> None:
    conn.execute(table.delete().where(table.c.id == record_id))


def count_in_flight(dialect: "Dialect", table: sa.Table, queue: str) -> int:
    """Rows of ``queue`` claimed by holders that are still alive (asked of ``dialect``)."""
    engine = dialect.engine
    with engine.connect() as conn:
        records = conn.execute(sa.select(table.c.id, table.c.holder, table.c.sources).where(table.c.queue == queue)).all()
        if not records:
            return 0
        alive = dialect.alive_holders(conn, {holder for _, holder, _ in records})
        dead = [record_id for record_id, holder, _ in records if holder not in alive]
    if dead:
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.id.in_(dead)))
    return sum(sources for _, holder, sources in records if holder in alive)
