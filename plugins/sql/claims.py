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

import collections
import logging
import threading
import time
import typing as t

import sqlalchemy as sa

from pinnacle.backends.base import Claim, Failure, ListenerSpec, WorkItem, WorkResult
from pinnacle.plugins.sql import inflight, versions
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
    # Without row locks (SQLite), this process's open claims are skipped by its next claim:
    # a drain claims batch k+1 while batch k is still being computed or committed.
    held = None if locking or sources is not None else backend.held_entries(spec.queue_table)
    held_ids: list[int] = []
    # Row locks: the claim's transaction stays open until the commit. Otherwise (SQLite) the
    # claim only reads, in a snapshot that takes no write lock.
    conn = backend.engine.connect() if locking else dialect.read_connection()
    try:
        conn.begin()
        skip = None
        if held is not None:
            with backend._listener_lock:
                skip = sorted(held)
        columns = [pk, *(source_table.c[c] for c in spec.key_columns if c != pk.name)]
        reader = _Reader(dialect, queue, columns, sources is not None)
        entries = reader.entries(conn, limit, sources, skip)
        if held is not None:
            held_ids = [qid for got in entries.values() for qid, _ in got]
            _hold(backend, held, held_ids, +1)
        found = reader.rows if reader.rows is not None else reader.read_rows(conn, list(entries))
        # Who holds the claim: the connection holding its row locks (SQLite: this process).
        holder = dialect.holder_of(conn) if entries else ""
        if not locking:  # SQLite: nothing held while the model runs
            conn.rollback()
            conn.close()
            conn = None
    except BaseException:
        if conn is not None:
            conn.close()
        if held_ids:
            _hold(backend, held, held_ids, -1)
        raise
    items = [
        WorkItem(source=src, queue_ids=[q for q, _ in got], attempts=max(a for _, a in got), row=found.get(src))
        for src, got in entries.items()
    ]
    return SQLClaim(backend, spec, items, conn, (outputs, queue, failed), holder, (held, held_ids))


def _hold(backend: t.Any, held: collections.Counter, ids: list[int], step: int) -> None:
    """Count ``ids`` as held by one more (``+1``) or one fewer (``-1``) open claim of this process."""
    with backend._listener_lock:
        for qid in ids:
            count = held[qid] + step
            if count > 0:
                held[qid] = count
            else:
                held.pop(qid, None)


class _Reader:
    """The reads of one claim: its queue entries, and its source rows. Where claims lock
    nothing (SQLite) the rows come with the entries, through a join; where they lock rows the
    rows are read after, by key, so that no lock reaches the source table and the plan of the
    locking read stays a walk of the queue's primary key (or, on MySQL/MariaDB, in the plain
    read that finds the entries of given sources before they are locked: a row read after its
    entry was made is never older than the change the entry stands for)."""

    def __init__(self, dialect: "Dialect", queue: sa.Table, columns: list[sa.Column], sources: bool):
        self.dialect, self.queue, self.columns = dialect, queue, columns
        self.names = [c.name for c in columns]
        # Given sources, a database that locks them by primary key after a plain read
        # (``dialect.plain_read_first``, MySQL/MariaDB) reads the rows in that plain read.
        self.join = not dialect.locking_claims or (sources and dialect.plain_read_first)
        #: ``{source: row}`` read with the entries (``None`` when read after, by :meth:`read_rows`).
        self.rows: t.Optional[dict[t.Any, t.Optional[dict]]] = {} if self.join else None

    def _select(self, *extra: t.Any) -> sa.Select:
        queue = self.queue
        selected = [queue.c.id, queue.c._source, queue.c.attempts, *extra]
        if not self.join:
            return sa.select(*selected)
        pk = self.columns[0]
        joined = queue.outerjoin(pk.table, pk == queue.c._source)
        return sa.select(*selected, *self.columns).select_from(joined)

    def _take(self, entries: dict, rows: t.Sequence[t.Sequence[t.Any]], width: int) -> None:
        """Add ``rows`` (queue id, source, attempts, ..., and from ``width`` on the source row) to ``entries``."""
        found, names = self.rows, self.names
        for row in rows:
            got = entries.get(row[1])
            if got is None:
                entries[row[1]] = [(row[0], row[2])]
                if found is not None:
                    values = row[width:]
                    found[row[1]] = dict(zip(names, values)) if values[0] is not None else None
            else:
                got.append((row[0], row[2]))

    def read_rows(self, conn: sa.Connection, sources: list[t.Any]) -> dict[t.Any, dict]:
        pk, found, names = self.columns[0], {}, self.names
        for part in chunks(sources, self.dialect.keys_per_statement):
            for row in conn.execute(sa.select(*self.columns).where(self.dialect.one_of(pk, part))).all():
                found[row[0]] = dict(zip(names, row))
        return found

    def entries(self, conn: sa.Connection, limit: int, sources, skip: t.Optional[list[int]]) -> dict[t.Any, list[tuple[int, int]]]:
        dialect, queue = self.dialect, self.queue
        locking, one_of = dialect.locking_claims, dialect.one_of
        due = sa.or_(queue.c.not_before.is_(None), queue.c.not_before <= time.time())
        entries: dict[t.Any, list[tuple[int, int]]] = {}
        if sources is not None:
            # The writer waits for a worker holding these rows, so its outputs exist on return.
            for part in chunks(list(sources), dialect.keys_per_statement):
                query = self._select().where(one_of(queue.c._source, part), due).order_by(queue.c.id)
                # An entry's source never changes; whether it is due may (a retry's backoff).
                self._take(entries, list(dialect.select_for_update(conn, queue, query, skip_locked=False, recheck=due)), 3)
            return entries
        # The head of the queue: ``limit`` entries (a source queued twice there counts once),
        # each with the number of entries its source has (a read that locks nothing).
        others = queue.alias("_entries")
        count = sa.select(sa.func.count()).where(others.c._source == queue.c._source).scalar_subquery()
        head = self._select(count).where(due)
        if skip:  # held by this process's open claims
            head = head.where(sa.not_(one_of(queue.c.id, skip)))
        head = head.order_by(queue.c.id).limit(max(1, limit))
        if locking:
            head = head.with_for_update(skip_locked=True)
        rows = conn.execute(head).all()
        self._take(entries, rows, 4)
        total: dict[t.Any, int] = {row[1]: row[3] for row in rows}
        # Take every entry of the chosen sources: read the ones the head missed (most sources
        # have one entry); drop a source another worker holds part of.
        more = [src for src, got in entries.items() if total[src] > len(got)]
        columns = (queue.c.id, queue.c._source, queue.c.attempts)
        for part in chunks(more, dialect.keys_per_statement):
            query = sa.select(*columns).where(one_of(queue.c._source, part)).order_by(queue.c.id)
            for qid, src, attempts in dialect.select_for_update(conn, queue, query, skip_locked=True, recheck=sa.true()):
                if all(q != qid for q, _ in entries[src]):
                    entries[src].append((qid, attempts))
        if locking:
            for src in more:
                if total[src] > len(entries[src]):
                    logger.debug("source %r is partly held by another worker; leaving it", src)
                    del entries[src]
                    if self.rows is not None:
                        self.rows.pop(src, None)
        return entries


class SQLClaim(Claim):
    """Claimed work; :meth:`commit` stores the results, :meth:`release` gives the rows back."""

    def __init__(
        self, backend, spec: ListenerSpec, items: list[WorkItem], conn: t.Optional[sa.Connection], tables,
        holder: str = "", held: tuple[t.Optional[collections.Counter], list[int]] = (None, []),
    ):
        self.backend = backend
        self.spec = spec
        self.items = items
        self._conn = conn
        self._tables = tables
        self._holder = holder
        self._record: t.Optional[int] = None  # the in-flight record, from mark_in_flight until the commit
        #: ``(old, new)`` version of the outputs after a commit that changed them (``versions.py``).
        self.outputs_version: t.Optional[tuple[str, str]] = None
        # Without row locks (SQLite): the queue ids this claim holds in this process, until it ends.
        self._held, self._held_ids = held
        # mark_in_flight may run in a timer thread (drain.py): it and the end of the claim
        # (commit, release) take turns, and no record is made once the claim has ended.
        self._lock = threading.RLock()
        self._ended = False

    def _unhold(self) -> None:
        ids, self._held_ids = self._held_ids, []
        if ids:
            _hold(self.backend, self._held, ids, -1)

    def mark_in_flight(self) -> None:
        """Record these rows as in flight (``status()``): the model starts on them now. The
        record is made in a transaction of its own, so other processes see it while the model
        runs; the commit removes it with the outputs (see ``inflight``). A drain calls this once
        its model has had the batch for ``drain.IN_FLIGHT_AFTER_S`` (a batch claimed ahead is
        not in flight yet, and one computed sooner is done before anyone could see it)."""
        with self._lock:
            if not self._ended:
                self._mark()

    def _mark(self) -> None:
        if self._record is not None or not self.items:
            return
        backend = self.backend
        with backend._translate_errors(f"claim of listener {self.spec.identifier!r}"), backend.engine.begin() as own:
            self._record = inflight.register(
                own, backend._claims_table, self.spec.queue_table, len(self.items), self._holder, time.time()
            )

    def release(self) -> None:
        with self._lock:
            self._ended = True
            self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.rollback()
                finally:
                    conn.close()
        finally:
            self._unhold()
            record, self._record = self._record, None
            if record is not None:  # not removed by a commit
                with self.backend.engine.begin() as own:
                    inflight.unregister(own, self.backend._claims_table, record)

    def commit(self, result: WorkResult) -> tuple[set, float]:
        with self._lock:
            self._ended = True
            return self._commit(result)

    def _commit(self, result: WorkResult) -> tuple[set, float]:
        now = time.time()
        if not self.items:
            self._release()
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
            self._unhold()
        return mine, now

    def _write(self, conn: sa.Connection, result: WorkResult, now: float) -> set:
        outputs, queue, failed = self._tables
        items, spec = self.items, self.spec
        dialect = self.backend.dialect
        claimed = [qid for item in items for qid in item.queue_ids]
        removed = False  # the claimed entries still there are deleted already
        if self._conn is not None:  # our locks held them since the claim: all still there
            still_there = set(claimed)
        elif not result.retry and dialect.delete_returning:
            # SQLite: BEGIN IMMEDIATE holds the write lock. Delete the entries other writers
            # left and learn which they were, in one statement (nothing is retried here).
            still_there, removed = set(dialect.delete_keys_returning(conn, queue.c.id, claimed)), True
        else:  # SQLite: see what other writers left
            still_there = set()
            for part in chunks(claimed, dialect.keys_per_statement):
                still_there.update(conn.execute(sa.select(queue.c.id).where(dialect.one_of(queue.c.id, part))).scalars())
        if len(still_there) == len(claimed):
            mine = {item.source for item in items}
        else:
            mine = {item.source for item in items if any(q in still_there for q in item.queue_ids)}
        if spec.flatten:
            _park_long_item_ids(result, spec)
        done = [s for s, _ in result.outputs if s in mine]
        gone = [s for s in result.gone if s in mine]
        if spec.flatten:
            _replace_items(conn, dialect, outputs, [(s, data) for s, data in result.outputs if s in mine], gone, spec.model_uuid, now)
        else:
            rows = [(s, data, spec.model_uuid, now) for s, data in result.outputs if s in mine]
            dialect.upsert_outputs(conn, outputs, rows)
            dialect.delete_keys(conn, outputs.c._source, gone)
        dialect.delete_rare_keys(conn, failed.c._source, done + gone)
        if done or gone:
            self.outputs_version = versions.replace(conn, dialect, self.backend._state_table, outputs.name)
        parked = [
            {"_source": s, "error_type": f.error_type[:200], "message": f.message, "attempts": f.attempts, "failed_at": now}
            for s, f in result.failed
            if s in mine
        ]
        for part in chunks(parked, 500):
            dialect.upsert(conn, failed, list(part), "_source")
        retry_ids: set[int] = set()
        if result.retry:
            by_source = {item.source: item for item in items}
            for s, attempts, not_before in result.retry:
                if s not in mine:
                    continue
                ids = [q for q in by_source[s].queue_ids if q in still_there]
                retry_ids.update(ids)
                conn.execute(queue.update().where(queue.c.id.in_(ids)).values(attempts=attempts, not_before=not_before))
        if not removed:
            finished = [qid for qid in still_there if qid not in retry_ids] if retry_ids else list(still_there)
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
