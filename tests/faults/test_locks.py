"""Part 2 of issue 16, the waits: a lock held too long by another client.

Every connection pinnacle opens bounds its lock waits (``lock_timeout_s``, default 60 s;
``$PINNACLE_LOCK_TIMEOUT_S`` for ``pinnacle worker``): PostgreSQL's ``lock_timeout``,
MySQL/MariaDB's ``innodb_lock_wait_timeout`` and ``lock_wait_timeout``, SQLite's
``busy_timeout``. A call that waits past it raises a :class:`BackendError` that names the
setting and the bound, having written nothing; a worker waits the lock out like an
outage (on SQLite, a writer holding the database is the outage there is).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time

import pytest
import sqlalchemy as sa

from faults.common import Writer, apply_listener, outage_lines, wait_drained, wait_outputs
from pinnacle.errors import BackendError
from reliability.helpers import assert_exactly_once, child_env, hash_bytes, read_state

EXPECTED = hash_bytes(16)
SETTING = {"sqlite": "busy_timeout", "postgresql": "lock_timeout", "mariadb": "innodb_lock_wait_timeout"}


@contextlib.contextmanager
def holding(backend_kind: str, backend_uri: str, raw_engine: sa.Engine, lock_sql: str):
    """Another client holding a lock (SQLite: the database's write lock) until the block ends."""
    if backend_kind == "sqlite":
        conn = sqlite3.connect(backend_uri[len("sqlite:///"):], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with raw_engine.connect() as conn:
        conn.begin()
        conn.exec_driver_sql(lock_sql)
        try:
            yield
        finally:
            conn.rollback()
            if backend_kind == "mariadb":
                conn.exec_driver_sql("UNLOCK TABLES")


def test_a_lock_wait_is_bounded_and_named(backend_kind, backend_uri, connect, raw_engine, faults_report):
    db = connect(lock_timeout_s=1)
    db["docs"].insert([{"_id": "x", "text": "old"}, {"_id": "y", "text": "free"}])
    began = time.monotonic()
    with holding(backend_kind, backend_uri, raw_engine, "SELECT * FROM docs WHERE _id = 'x' FOR UPDATE"):
        with pytest.raises(BackendError) as raised:
            db["docs"].update({"_id": "x"}, {"text": "new"})
    waited = time.monotonic() - began
    message = str(raised.value)
    assert SETTING[backend_kind] in message and "(1 s)" in message, message
    assert "lock_timeout_s" in message and "'docs' failed on" in message, message
    assert raised.value.orig is not None
    assert waited < 30, waited  # bounded (the default would be 60 s, the servers' own a year or forever)
    with raw_engine.connect() as conn:  # nothing was written
        assert conn.exec_driver_sql("SELECT text FROM docs WHERE _id = 'x'").scalar_one() == "old"
    assert db["docs"].update({"_id": "x"}, {"text": "new"}) == 1  # the lock is gone: the same call works
    faults_report(kind=backend_kind, lock_waits=1, bounded_s=1, waited_s=round(waited, 1))


def _table_lock(backend_kind: str) -> str:
    return {
        "sqlite": "",  # BEGIN IMMEDIATE: see holding()
        "postgresql": "LOCK TABLE _queue__emb IN ACCESS EXCLUSIVE MODE",
        "mariadb": "LOCK TABLES _queue__emb WRITE",
    }[backend_kind]


HOLDS = 3


def test_worker_waits_out_held_locks(backend_kind, backend_uri, connect, raw_engine, procs, faults_report):
    db = connect()
    writer = Writer(db, raw_engine)
    writer.insert(1500)
    apply_listener(db)
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=0.2, PINNACLE_LOCK_TIMEOUT_S=0.5)
    worker = procs.cli("--db", backend_uri, "worker", "--poll", "0.2", env=env, name="worker")
    wait_outputs(raw_engine, 1)
    for _ in range(HOLDS):
        with holding(backend_kind, backend_uri, raw_engine, _table_lock(backend_kind)):
            time.sleep(2.5)  # longer than the worker's bound (MariaDB rounds it up to 1 s)
            assert worker.alive(), worker.stderr()
        writer.insert(200)
        wait_drained(raw_engine, writer.next, worker=worker)
    worker.popen.send_signal(signal.SIGTERM)
    worker.finish(timeout=60)
    counts = assert_exactly_once(read_state(raw_engine), EXPECTED)
    lines = outage_lines(worker.stderr())
    assert len(lines) == HOLDS, lines
    assert all(SETTING[backend_kind] in line for line in lines), lines
    faults_report(kind=backend_kind, outages=HOLDS, worker_outage_lines=len(lines), rows=counts["rows"],
                  outputs=counts["outputs"], lost=counts["lost"], duplicated=counts["duplicates"])
