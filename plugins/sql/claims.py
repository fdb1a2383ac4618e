"""Claiming queued rows and committing their outputs on SQL.

PostgreSQL and MySQL/MariaDB claim with ``SELECT ... FOR UPDATE SKIP LOCKED`` in a
transaction that stays open while the model runs, so concurrent workers take disjoint
rows and a crashed worker's rows are free again the moment its connection drops. A
source is claimed only when all of its queue entries are locked by the claimant.

SQLite has one writer at a time; its claims hold no transaction while the model runs.
(What differs per database, locking, upserts and deletes, is asked of ``backend.dialect``.)

On every backend the commit writes a source's output only if at least one of the queue
entries read for it still exists; entries are deleted only by commits, so a result
computed from an older state can never overwrite a newer one.
"""

from __future__ import annotations

import logging
import time
import typing as t

import sqlalchemy as sa

from pinnacle.backends.base import Claim, Failure, ListenerSpec, WorkItem, WorkResult
from pinnacle.plugins.sql import inflight
from pinnacle.plugins.sql.schema import ITEM_ID_LENGTH
from pinnacle.plugins.sql.statements import chunks

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

logger = logging.getLogger(__name__)

__all__ = ["SQLClaim", "claim"]


def claim(backend: t.Any, spec: ListenerSpec, limit: int, sources: t.Optional[t.Sequence[t.Any]]) -> "SQLClaim":
    """Claim up to ``limit`` due sources (only ``sources`` if given) of ``spec``'s queue."""
    outputs, queue, failed = backend._tables_for(spec)
    source_table = backend.table(spec.table)
    pk = source_table.c[backend.primary_key(spec.table)]
    dialect = backend.dialect
    locking = dialect.locking_claims
    conn = backend.engine.connect()
    try:
        conn.begin()
        entries = _claim_entries(conn, dialect, queue, limit, sources)
        columns = [pk, *(source_table.c[c] for c in spec.key_columns if c != pk.name)]
        found: dict[t.Any, dict] = {}
        for part in chunks(list(entries)):
            for row in conn.execute(sa.select(*columns).where(dialect.one_of(pk, part))):
                mapping = dict(row._mapping)
                found[mapping[pk.name]] = mapping
        record = _register(backend, conn, spec, len(entries), locking) if entries else None
        if not locking:  # SQLite: release the write lock while the model runs
            conn.commit()
            conn.close()
            conn = None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    items = [
        WorkItem(source=src, queue_ids=[q for q, _ in got], attempts=max(a for _, a in got), row=found.get(src))
        for src, got in entries.items()
    ]
    return SQLClaim(backend, spec, items, conn, (outputs, queue, failed), record)


def _register(backend: t.Any, conn: sa.Connection, spec: ListenerSpec, sources: int, locking: bool) -> int:
    """Record the claim for ``status()`` (see ``inflight``): in a transaction of its own where
    the claim's stays open while the model runs (so others see it now), else in the claim's."""
    holder, table, now = backend.dialect.holder_of(conn), backend._claims_table, time.time()
    if not locking:
        return inflight.register(conn, table, spec.queue_table, sources, holder, now)
    with backend.engine.begin() as own:
        return inflight.register(own, table, spec.queue_table, sources, holder, now)


def _claim_entries(conn: sa.Connection, dialect: "Dialect", queue: sa.Table, limit: int, sources) -> dict[t.Any, list[tuple[int, int]]]:
    locking, one_of = dialect.locking_claims, dialect.one_of
    now = time.time()
    due = sa.or_(queue.c.not_before.is_(None), queue.c.not_before <= now)
    columns = (queue.c.id, queue.c._source, queue.c.attempts)
    entries: dict[t.Any, list[tuple[int, int]]] = {}
    if sources is not None:
        # The writer waits for a worker holding these rows, so its outputs exist on return.
        for part in chunks(list(sources)):
            query = sa.select(*columns).where(one_of(queue.c._source, part), due).order_by(queue.c.id)
            for qid, src, attempts in dialect.select_for_update(conn, queue, query, skip_locked=False):
                entries.setdefault(src, []).append((qid, attempts))
        return entries
    head = sa.select(*columns).where(due).order_by(queue.c.id).limit(max(1, limit) * 4)
    if locking:
        head = head.with_for_update(skip_locked=True)
    for qid, src, attempts in conn.execute(head):
        if src in entries or len(entries) < limit:
            entries.setdefault(src, []).append((qid, attempts))
    if not entries:
        return entries
    # Take every entry of the chosen sources; drop a source another worker holds part of.
    wanted = list(entries)
    total: dict[t.Any, int] = {}
    for part in chunks(wanted):
        more = sa.select(*columns).where(one_of(queue.c._source, part)).order_by(queue.c.id)
        for qid, src, attempts in dialect.select_for_update(conn, queue, more, skip_locked=True):
            if all(q != qid for q, _ in entries[src]):
                entries[src].append((qid, attempts))
        if locking:
            counts = sa.select(queue.c._source, sa.func.count()).where(one_of(queue.c._source, part)).group_by(queue.c._source)
            total.update(dict(conn.execute(counts).all()))
    if locking:
        for src in wanted:
            if total.get(src, 0) > len(entries[src]):
                logger.debug("source %r is partly held by another worker; leaving it", src)
                del entries[src]
    return entries


class SQLClaim(Claim):
    """Claimed work; :meth:`commit` stores the results, :meth:`release` gives the rows back."""

    def __init__(self, backend, spec: ListenerSpec, items: list[WorkItem], conn: t.Optional[sa.Connection], tables, record=None):
        self.backend = backend
        self.spec = spec
        self.items = items
        self._conn = conn
        self._tables = tables
        self._record = record  # this claim's in-flight record, until the commit removes it

    def release(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.rollback()
                finally:
                    conn.close()
        finally:
            record, self._record = self._record, None
            if record is not None:  # not removed by a commit
                with self.backend.engine.begin() as own:
                    inflight.unregister(own, self.backend._claims_table, record)

    def commit(self, result: WorkResult) -> tuple[set, float]:
        now = time.time()
        if not self.items:
            self.release()
            return set(), now
        conn = self._conn
        if conn is None:  # SQLite: a fresh BEGIN IMMEDIATE transaction
            conn = self.backend.engine.connect()
            conn.begin()
        try:
            mine = self._write(conn, result, now)
            if self._record is not None:
                inflight.unregister(conn, self.backend._claims_table, self._record)
            conn.commit()
            self._record = None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
            self._conn = None
        return mine, now

    def _write(self, conn: sa.Connection, result: WorkResult, now: float) -> set:
        outputs, queue, failed = self._tables
        items, spec = self.items, self.spec
        claimed = [qid for item in items for qid in item.queue_ids]
        owner = {qid: item.source for item in items for qid in item.queue_ids}
        if self._conn is not None:  # our locks held them since the claim: all still there
            still_there = set(claimed)
        else:  # SQLite: BEGIN IMMEDIATE holds the write lock; see what other writers left
            still_there = set()
            for part in chunks(claimed):
                still_there.update(conn.execute(sa.select(queue.c.id).where(queue.c.id.in_(part))).scalars())
        mine = {owner[qid] for qid in still_there}
        if spec.flatten:
            _park_long_item_ids(result, spec)
        done = [s for s, _ in result.outputs if s in mine]
        gone = [s for s in result.gone if s in mine]
        dialect = self.backend.dialect
        if spec.flatten:
            _replace_items(conn, dialect, outputs, [(s, data) for s, data in result.outputs if s in mine], gone, spec.model_uuid, now)
        else:
            outs = [
                {"_source": s, "_output": data, "_model_uuid": spec.model_uuid, "_updated_at": now}
                for s, data in result.outputs
                if s in mine
            ]
            for part in chunks(outs, 500):
                dialect.upsert(conn, outputs, list(part), "_source")
            dialect.delete_keys(conn, outputs.c._source, gone)
        dialect.delete_keys(conn, failed.c._source, done + gone)
        parked = [
            {"_source": s, "error_type": f.error_type[:200], "message": f.message, "attempts": f.attempts, "failed_at": now}
            for s, f in result.failed
            if s in mine
        ]
        for part in chunks(parked, 500):
            dialect.upsert(conn, failed, list(part), "_source")
        retry_ids: set[int] = set()
        by_source = {item.source: item for item in items}
        for s, attempts, not_before in result.retry:
            if s not in mine:
                continue
            ids = [q for q in by_source[s].queue_ids if q in still_there]
            retry_ids.update(ids)
            conn.execute(queue.update().where(queue.c.id.in_(ids)).values(attempts=attempts, not_before=not_before))
        finished = [qid for qid in still_there if qid not in retry_ids]
        dialect.delete_keys(conn, queue.c.id, finished)
        return mine


def item_id(source: t.Any, position: int) -> str:
    """The id of item ``position`` of a flattened output of ``source``.

    Example:
        >>> item_id("d1", 3)
        'd1/3'
    """
    return f"{source}/{position}"


def _park_long_item_ids(result: WorkResult, spec: ListenerSpec) -> None:
    """Move the rows whose item ids would not fit the ``_id`` column from outputs to failures
    (in place), so one such row cannot fail its batch's commit again and again."""
    too_long = {s for s, items in result.outputs if len(item_id(s, max(len(items) - 1, 0))) > ITEM_ID_LENGTH}
    for s in too_long:
        message = (
            f"Listener {spec.identifier!r}, row {s!r} of {spec.table!r}: the ids of its items "
            f"('<row id>/<position>') would be longer than {ITEM_ID_LENGTH} characters; give the row a shorter id."
        )
        result.failed.append((s, Failure("InvalidOutput", message, 1)))
    if too_long:
        result.outputs[:] = [(s, data) for s, data in result.outputs if s not in too_long]


def _replace_items(conn: sa.Connection, dialect: "Dialect", outputs: sa.Table, results: list, gone: list, model_uuid: str, now: float) -> None:
    """A flattened listener's commit: each source's old items go, its new items come in.

    Deleting and inserting (rather than upserting) fires the delete and insert triggers of
    downstream listeners, so they recompute every item and drop the outputs of items that
    are gone, in this same transaction.
    """
    dialect.delete_keys(conn, outputs.c._source, [s for s, _ in results] + list(gone))
    rows = [
        {"_id": item_id(s, i), "_source": s, "_position": i, "_output": data, "_model_uuid": model_uuid, "_updated_at": now}
        for s, items in results
        for i, data in enumerate(items)
    ]
    for part in chunks(rows, 500):
        conn.execute(outputs.insert(), list(part))
