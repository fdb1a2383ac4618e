"""What the fault tests share: a writer that survives outages, waiting for a drained queue,
and the counts (worker warnings, rows computed more than once)."""

from __future__ import annotations

import collections
import time
import typing as t

import sqlalchemy as sa

import pinnacle
from pinnacle.errors import BackendError
from reliability.flaky_models import HashEmbed, read_predict_logs
from reliability.helpers import driver_url
from reliability.worker import text_of

#: What ``pinnacle worker`` logs (once) when an outage starts.
OUTAGE_LINE = "Database unavailable ("


def apply_listener(db: pinnacle.Datalayer, dim: int = 16) -> None:
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=dim), key="text", select="docs"), wait=False)


class Writer:
    """Writes rows ``{"_id", "text"}`` to ``docs`` without waiting for their outputs, and
    checks after each failed write that it is all or nothing.

    ``errors`` counts the writes that raised :class:`BackendError`; ``in_doubt`` those of
    them that had committed all the same (the connection was lost during COMMIT).
    """

    def __init__(self, db: pinnacle.Datalayer, raw: sa.Engine):
        self.db = db
        self.raw = raw
        self.next = 0
        self.revision: dict[str, int] = {}
        self.errors = 0
        self.in_doubt = 0
        self.messages: list[str] = []

    def _ids(self, n: int) -> list[str]:
        ids = [f"r{self.next + i:05d}" for i in range(n)]
        self.next += n
        return ids

    def insert(self, n: int, *, retry_until: float = 60.0) -> None:
        """Insert ``n`` new rows; after a :class:`BackendError` retry (once the server is
        back) unless the failed call turns out to have committed, all of it."""
        rows = [{"_id": rid, "text": text_of(rid)} for rid in self._ids(n)]
        self._write(lambda: self.db["docs"].insert(rows, wait=False), [r["_id"] for r in rows], retry_until)
        for r in rows:
            self.revision[r["_id"]] = 0

    def try_insert(self, n: int) -> t.Optional[BackendError]:
        """One insert of ``n`` rows while the server may be gone: the error, or ``None``.
        A failed insert must have written nothing (checked once the server is back, by :meth:`check_absent`)."""
        rows = [{"_id": rid, "text": text_of(rid)} for rid in self._ids(n)]
        try:
            self.db["docs"].insert(rows, wait=False)
        except BackendError as exc:
            self.errors += 1
            self.messages.append(str(exc))
            self._absent_later = [r["_id"] for r in rows]
            return exc
        for r in rows:
            self.revision[r["_id"]] = 0
        return None

    def check_absent(self) -> None:
        ids = getattr(self, "_absent_later", [])
        present = self._present(ids)
        assert present in (0, len(ids)), f"a failed insert left {present} of {len(ids)} rows (half-written)"
        if present:
            self.in_doubt += 1
            for rid in ids:
                self.revision[rid] = 0
        self._absent_later = []

    def update(self, n: int, rng) -> None:
        """Change the text of ``n`` existing rows (each a revision further)."""
        for rid in rng.sample(sorted(self.revision), min(n, len(self.revision))):
            revision = self.revision[rid] + 1
            self._write(lambda: self.db["docs"].update({"_id": rid}, {"text": text_of(rid, revision)}, wait=False), None, 60.0)
            self.revision[rid] = revision

    def _present(self, ids: list[str]) -> int:
        with self.raw.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM docs WHERE _id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)), {"ids": ids}).scalar_one())

    def _write(self, call: t.Callable[[], t.Any], ids: t.Optional[list[str]], retry_until: float) -> None:
        deadline = time.monotonic() + retry_until
        while True:
            try:
                call()
                return
            except BackendError as exc:
                self.errors += 1
                self.messages.append(str(exc))
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
            if ids is not None:
                try:
                    present = self._present(ids)
                except sa.exc.OperationalError:
                    continue  # still down: try the write again later
                assert present in (0, len(ids)), f"a failed insert left {present} of {len(ids)} rows (half-written)"
                if present:  # committed, though the connection was lost before the answer
                    self.in_doubt += 1
                    return


def raw_engine_for(uri: str) -> sa.Engine:
    return sa.create_engine(driver_url(uri), poolclass=sa.pool.NullPool)


def wait_drained(raw: sa.Engine, rows: int, timeout: float = 180.0, worker=None) -> None:
    """Until every row has an output and the queue is empty (the worker keeps running)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with raw.connect() as conn:
                outputs = conn.execute(sa.text("SELECT count(*) FROM _outputs__emb")).scalar_one()
                queued = conn.execute(sa.text("SELECT count(*) FROM _queue__emb")).scalar_one()
            if outputs == rows and queued == 0:
                return
        except sa.exc.OperationalError:
            pass
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker died:\n{worker.stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained in {timeout} s: {outputs} outputs of {rows} rows, {queued} queued")
        time.sleep(0.2)


def wait_outputs(raw: sa.Engine, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with raw.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM _outputs__emb")).scalar_one() >= at_least:
                    return
        except sa.exc.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} outputs after {timeout} s")


def outage_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if OUTAGE_LINE in line]


def recomputed(predict_log: str) -> int:
    """Inputs that some process predicted more than once (work redone after an outage)."""
    counts = collections.Counter(x for inputs in read_predict_logs(predict_log).values() for x in inputs)
    return sum(1 for n in counts.values() if n > 1)
