"""Rows being computed right now: one small record per live claim, for ``status()``.

A claim leaves no mark in the queue that another process could count: on PostgreSQL and
MySQL/MariaDB it is a row lock held while the model runs, on SQLite a plain read. So each
claim adds a record to ``_pinnacle_claims`` (defined in ``schema.metadata_tables``: the
queue table, how many rows, who holds them), and its commit removes it in the same
transaction as the outputs (a release, in one of its own; on MySQL/MariaDB the table is a
MEMORY table, outside transactions, so the removal stands even if the commit fails).

A holder killed half-way (kill -9) leaves its record behind. Such a record is not counted,
because the holder is checked when counting: on PostgreSQL the claim connection's backend
pid in ``pg_stat_activity``, on MySQL/MariaDB its connection id in the process list (both
end with the connection, as the row locks do), on SQLite the process id on this host.
Records of dead holders are deleted by the next count. (A MySQL account without the
PROCESS privilege sees only its own connections: run ``status`` as the workers' account.)
"""

from __future__ import annotations

import os
import socket

import sqlalchemy as sa

__all__ = ["holder_of", "register", "unregister", "count_in_flight"]

_HOST = socket.gethostname()


def holder_of(conn: sa.Connection) -> str:
    """Who holds a claim made on ``conn``: the server's id of that connection (cached on it),
    or on SQLite ``host:pid``.

    Example:
        >>> holder_of(engine.connect())  # doctest: +SKIP
        'pg:48211'
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return f"sqlite:{_HOST}:{os.getpid()}"
    cached = conn.info.get("pinnacle_holder")
    if cached is None:
        if dialect == "postgresql":
            cached = f"pg:{conn.exec_driver_sql('SELECT pg_backend_pid()').scalar()}"
        else:
            cached = f"mysql:{conn.exec_driver_sql('SELECT CONNECTION_ID()').scalar()}"
        conn.info["pinnacle_holder"] = cached
    return cached


def register(conn: sa.Connection, table: sa.Table, queue: str, sources: int, holder: str, now: float) -> int:
    """Record a claim of ``sources`` rows of ``queue``; returns the record's id."""
    result = conn.execute(table.insert().values(queue=queue, sources=int(sources), holder=holder, claimed_at=now))
    return int(result.inserted_primary_key[0])


def unregister(conn: sa.Connection, table: sa.Table, record_id: int) -> None:
    conn.execute(table.delete().where(table.c.id == record_id))


def count_in_flight(engine: sa.Engine, table: sa.Table, queue: str) -> int:
    """Rows of ``queue`` claimed by holders that are still alive."""
    with engine.connect() as conn:
        records = conn.execute(sa.select(table.c.id, table.c.holder, table.c.sources).where(table.c.queue == queue)).all()
        if not records:
            return 0
        alive = _alive(conn, {holder for _, holder, _ in records})
        dead = [record_id for record_id, holder, _ in records if holder not in alive]
    if dead:
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.id.in_(dead)))
    return sum(sources for _, holder, sources in records if holder in alive)


def _alive(conn: sa.Connection, holders: set[str]) -> set[str]:
    found: set[str] = set()
    for holder in holders:
        kind, _, rest = holder.partition(":")
        if kind == "sqlite":
            host, _, pid = rest.rpartition(":")
            if host != _HOST or _process_exists(int(pid)):  # another host's process cannot be checked
                found.add(holder)
    server_ids = {int(h.partition(":")[2]): h for h in holders if not h.startswith("sqlite:")}
    if server_ids:
        if conn.dialect.name == "postgresql":
            query = "SELECT pid FROM pg_stat_activity"
        else:
            query = "SELECT ID FROM information_schema.PROCESSLIST"
        live = {int(i) for i in conn.exec_driver_sql(query).scalars()}
        found.update(h for i, h in server_ids.items() if i in live)
    return found


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
