"""A worker stopped (SIGTERM, Ctrl-C) in the middle of a statement leaves its connections usable.

The worker's signal handler raises at once, wherever the worker is: possibly inside a
statement the driver is waiting on, such as the raw ``COPY`` of a commit. psycopg cancels
the statement on the server only for a ``KeyboardInterrupt`` (or ``SystemExit``); any
other exception left the connection busy (``ACTIVE``), and the pool handed it out again to
the next call ("can't change 'autocommit' now"), which turned a clean stop into an error
exit (seen in CI, tests/faults/test_locks.py).
"""

from __future__ import annotations

import signal
import time

import pytest

from pinnacle.cli.worker import _Stop

SLEEP = {"postgresql": "SELECT pg_sleep(5)", "mariadb": "SELECT SLEEP(5)"}


def test_a_stop_inside_a_statement_leaves_the_pool_usable(backend_kind, connect):
    if backend_kind not in SLEEP:
        pytest.skip("SQLite runs a statement inside its C library: the signal is handled after it")
    db = connect()
    engine = db.backend.engine

    def stop(_signum, _frame):
        raise _Stop()

    previous = signal.signal(signal.SIGALRM, stop)
    began = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(_Stop), engine.connect() as conn:
            conn.begin()  # as a claim's connection is, holding its row locks
            if backend_kind == "postgresql":  # on the driver's own cursor, as a commit's COPY
                conn.connection.driver_connection.cursor().execute(SLEEP[backend_kind])
            else:  # through SQLAlchemy, as every statement on MariaDB
                conn.exec_driver_sql(SLEEP[backend_kind])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 4, "the stop waited for the statement"
    # Every pooled connection (a FIFO pool: one checkout each) answers, the interrupted one too.
    for _ in range(engine.pool.checkedin() + 1):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    db["docs"].insert([{"_id": "a", "text": "after the stop"}])
    assert db["docs"].count() == 1
