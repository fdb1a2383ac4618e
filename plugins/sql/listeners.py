"""The embedding path on SQL: outputs, queue and failed tables, triggers, claim and commit."""

from __future__ import annotations

import collections
import logging
import threading
import time
import typing as t

import sqlalchemy as sa

from pinnacle.backends.base import ListenerSpec
from pinnacle.errors import ConfigError, NotFoundError
from pinnacle.plugins.sql.schema import listener_tables
from pinnacle.plugins.sql import inflight, versions
from pinnacle.plugins.sql.claims import claim
from pinnacle.plugins.sql.pgvector import vector_type
from pinnacle.plugins.sql.statements import chunks

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

logger = logging.getLogger(__name__)

__all__ = ["ListenerStorage"]


class ListenerStorage:
    """Mixin of :class:`~pinnacle.plugins.sql.backend.SQLBackend` for listener storage."""

    engine: sa.Engine
    dialect: "Dialect"
    quote: t.Callable[[str], str]

    def __init__(self) -> None:
        self._listener_tables: dict[str, tuple[sa.Table, sa.Table, sa.Table]] = {}
        self._listener_lock = threading.RLock()
        #: Queue ids of this process's open claims per queue table, on databases whose claims
        #: hold no row locks (SQLite): a drain's next claim skips them (see ``claims.py``).
        self._held: dict[str, collections.Counter] = {}

    def _tables_for(self, spec: ListenerSpec) -> tuple[sa.Table, sa.Table, sa.Table]:
        with self._listener_lock:
            found = self._listener_tables.get(spec.storage_name)
            if found is None:
                source = self.table(spec.table)  # type: ignore[attr-defined]
                pk = source.c[self.primary_key(spec.table)]  # type: ignore[attr-defined]
                found = listener_tables(
                    sa.MetaData(), spec.outputs_table, spec.queue_table, spec.failed_table, pk.type,
                    flatten=spec.flatten, text=spec.text, output_type=vector_type(self, spec),
                )
                self._listener_tables[spec.storage_name] = found
            return found

    # -- lifecycle --------------------------------------------------------------------
    def create_listener(self, spec: ListenerSpec) -> int:
        source = self.table(spec.table)  # type: ignore[attr-defined]
        missing = [c for c in spec.key_columns if c not in source.c]
        if missing:
            raise ConfigError(
                f"Listener {spec.identifier!r}: table {spec.table!r} has no column(s) {missing}; "
                f"its columns are {list(source.c.keys())}."
            )
        pk = self.primary_key(spec.table)  # type: ignore[attr-defined]
        self._listener_tables.pop(spec.storage_name, None)
        outputs, queue, failed = self._tables_for(spec)
        dialect = self.dialect
        triggers = dialect.create_triggers(spec.storage_name, spec.table, spec.queue_table, pk, spec.key_columns)
        with self.engine.begin() as conn:
            for tbl in (outputs, queue, failed):
                tbl.create(conn, checkfirst=True)
            for stmt in dialect.drop_triggers(spec.storage_name, spec.table):
                conn.exec_driver_sql(stmt)
            # Triggers first: they lock the table, so every row committed before is seen by the
            # backfill below and every row committed after goes through a trigger.
            for stmt in triggers:
                conn.exec_driver_sql(stmt)
            done = sa.select(outputs.c._source)
            backfill = sa.select(source.c[pk]).where(source.c[pk].not_in(done))
            result = conn.execute(sa.insert(queue).from_select(["_source"], backfill))
            enqueued = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else 0
        logger.info("Listener %r: change capture on %r, %d row(s) queued", spec.identifier, spec.table, enqueued)
        return enqueued

    def drop_listener(self, spec: ListenerSpec) -> None:
        has_source = self.has_table(spec.table)  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            if has_source:
                for stmt in self.dialect.drop_triggers(spec.storage_name, spec.table):
                    conn.exec_driver_sql(stmt)
            for name in (spec.outputs_table, spec.queue_table, spec.failed_table):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.quote(name)}")
            conn.execute(self._claims_table.delete().where(self._claims_table.c.queue == spec.queue_table))
        self._listener_tables.pop(spec.storage_name, None)
        for name in (spec.outputs_table, spec.queue_table, spec.failed_table):
            self.forget_table(name)  # type: ignore[attr-defined]

    # -- draining ---------------------------------------------------------------------
    def claim_work(self, spec: ListenerSpec, limit: int, sources=None):
        return claim(self, spec, limit, sources)

    @property
    def concurrent_claims(self) -> bool:
        """Claims of this process may be open together, in any thread: the next claim takes
        other rows (row locks, or the ids this process holds), so a drain claims ahead of
        its model. Not on an in-memory SQLite database (each thread has its own)."""
        return not isinstance(self.engine.pool, sa.pool.SingletonThreadPool)

    def held_entries(self, queue_table: str) -> collections.Counter:
        """The queue ids of ``queue_table`` that this process's open claims hold (no row locks)."""
        with self._listener_lock:
            return self._held.setdefault(queue_table, collections.Counter())

    def pending_sources(self, spec: ListenerSpec, after: t.Optional[int] = None, limit: int = 1000) -> list[tuple[int, t.Any]]:
        _, queue, _ = self._tables_for(spec)
        due = sa.or_(queue.c.not_before.is_(None), queue.c.not_before <= time.time())
        query = sa.select(queue.c.id, queue.c._source).where(due)
        if after is not None:
            query = query.where(queue.c.id > int(after))
        with self.engine.connect() as conn:
            return [(int(q), s) for q, s in conn.execute(query.order_by(queue.c.id).limit(int(limit)))]

    # -- reading ----------------------------------------------------------------------
    def read_outputs(self, spec: ListenerSpec, sources=None) -> t.Iterator[tuple[t.Any, t.Any]]:
        outputs, _, _ = self._tables_for(spec)
        if spec.flatten:
            yield from self._read_items(outputs, sources, spec.text)
            return
        query = sa.select(outputs.c._source, outputs.c._output)
        with self.engine.connect() as conn:
            if sources is None:
                for src, data in conn.execution_options(yield_per=2000).execute(query):
                    yield src, _stored(data, spec.text)
                return
            for part in chunks(list(sources)):
                for src, data in conn.execute(query.where(outputs.c._source.in_(part))):
                    yield src, _stored(data, spec.text)

    def _read_items(self, outputs: sa.Table, sources, text: bool) -> t.Iterator[tuple[t.Any, list]]:
        """``(source, [items in position order])`` of a flattened listener's outputs."""
        query = sa.select(outputs.c._source, outputs.c._output).order_by(outputs.c._source, outputs.c._position)
        parts = [None] if sources is None else list(chunks(list(sources)))
        with self.engine.connect() as conn:
            for part in parts:
                current, items = None, []
                selected = query if part is None else query.where(outputs.c._source.in_(part))
                for src, data in conn.execution_options(yield_per=2000).execute(selected):
                    if items and src != current:
                        yield current, items
                        items = []
                    current = src
                    items.append(_stored(data, text))
                if items:
                    yield current, items

    def output_stamps(self, spec: ListenerSpec) -> t.Iterator[tuple[t.Any, float]]:
        outputs, _, _ = self._tables_for(spec)
        with self.engine.connect() as conn:
            for src, stamp in conn.execution_options(yield_per=5000).execute(
                sa.select(outputs.c._source, outputs.c._updated_at)
            ):
                yield src, float(stamp)

    def outputs_version(self, spec: ListenerSpec) -> str:
        """The token every commit that changes the outputs replaces (``versions.py``): one row read by key."""
        outputs, _, _ = self._tables_for(spec)
        with self.engine.connect() as conn:
            return versions.read(conn, self._state_table, outputs.name)

    def queue_status(self, spec: ListenerSpec) -> dict[str, int]:
        outputs, queue, failed = self._tables_for(spec)
        now = time.time()
        with self.engine.connect() as conn:
            pending = conn.execute(sa.select(sa.func.count(sa.distinct(queue.c._source)))).scalar_one()
            retrying = conn.execute(
                sa.select(sa.func.count(sa.distinct(queue.c._source))).where(queue.c.not_before > now)
            ).scalar_one()
            n_failed = conn.execute(sa.select(sa.func.count()).select_from(failed)).scalar_one()
            counted = sa.func.count(sa.distinct(outputs.c._source)) if spec.flatten else sa.func.count()
            n_outputs = conn.execute(sa.select(counted).select_from(outputs)).scalar_one()
        in_flight = inflight.count_in_flight(self.dialect, self._claims_table, spec.queue_table)
        return {
            "pending": int(pending), "in_flight": in_flight, "retrying": int(retrying),
            "failed": int(n_failed), "outputs": int(n_outputs),
        }

    def failures(self, spec: ListenerSpec, limit: int = 100) -> list[dict]:
        _, _, failed = self._tables_for(spec)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(failed).order_by(failed.c.failed_at.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def requeue_failed(self, spec: ListenerSpec) -> int:
        _, queue, failed = self._tables_for(spec)
        # Requeue exactly the rows read (and locked) here: a row parked meanwhile by a worker stays
        # parked rather than being deleted unqueued; and INSERT ... SELECT has no reliable rowcount.
        with self.engine.begin() as conn:
            sources = list(conn.execute(sa.select(failed.c._source).with_for_update()).scalars())
            for part in chunks(sources):
                conn.execute(sa.insert(queue), [{"_source": s} for s in part])
                conn.execute(failed.delete().where(failed.c._source.in_(part)))
        return len(sources)

    def has_listener_storage(self, spec: ListenerSpec) -> bool:
        try:
            return self.has_table(spec.queue_table)  # type: ignore[attr-defined]
        except NotFoundError:
            return False


def _stored(data: t.Any, text: bool) -> t.Any:
    """An ``_output`` value as read: ``str`` for text outputs, ``bytes`` otherwise."""
    return data if text else bytes(data)
