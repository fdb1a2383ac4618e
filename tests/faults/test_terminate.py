"""Part 2 of issue 16: the server ends pinnacle's connections at random points.

While a ``pinnacle worker`` drains and the test keeps inserting, the test terminates every
connection of this test's clients on the server (``pg_terminate_backend`` by application
name on PostgreSQL, ``KILL CONNECTION`` on MariaDB for this test's database: the shared
servers, other tests' connections untouched) at random moments, so kills land in claims,
commits, inserts and idle pooled connections. The worker keeps running and logs at most one
line per kill (one per kill that lands in its work); a killed insert leaves all its rows or
none; at the end every row has exactly one output.
"""

from __future__ import annotations

import random
import signal
import threading
import uuid

import pytest
import sqlalchemy as sa

import pinnacle
from faults.common import Writer, apply_listener, outage_lines, raw_engine_for, recomputed, wait_drained, wait_outputs
from reliability.helpers import (
    POSTGRESQL_ADMIN, assert_exactly_once, child_env, driver_url, hash_bytes, read_state, server_params,
)

EXPECTED = hash_bytes(16)
ROWS = 2000
KILLS = 10


def _clients_uri(backend_uri: str, backend_kind: str, app: str) -> str:
    if backend_kind == "postgresql":
        return f"{backend_uri}{'&' if '?' in backend_uri else '?'}application_name={app}"
    return backend_uri


def _kill(admin: sa.Engine, backend_kind: str, app: str, database: str) -> int:
    """End the connections of this test's clients; how many were ended."""
    with admin.connect() as conn:
        if backend_kind == "postgresql":
            return int(conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :app"), {"app": app}).scalar_one())
        ids = list(conn.execute(sa.text(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> CONNECTION_ID()"), {"db": database}).scalars())
        ended = 0
        for connection_id in ids:
            try:
                conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
                ended += 1
            except sa.exc.OperationalError:  # it ended meanwhile
                pass
        return ended


# SQLite has no server connections to end; its faults are locks and a full disk (test_locks.py, test_disk_full.py).
@pytest.mark.parametrize("backend_kind", server_params("postgresql", "mariadb"), indirect=True)
def test_worker_and_writers_survive_terminated_connections(backend_kind, backend_uri, procs, faults_report, tmp_path):
    rng = random.Random(1602)
    app = f"pnf-{uuid.uuid4().hex[:10]}"
    uri = _clients_uri(backend_uri, backend_kind, app)
    database = sa.engine.make_url(driver_url(backend_uri)).database
    admin_url = POSTGRESQL_ADMIN if backend_kind == "postgresql" else backend_uri
    admin = sa.create_engine(driver_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    raw = raw_engine_for(backend_uri)
    db = pinnacle.connect(uri)
    writer = Writer(db, raw)
    writer.insert(ROWS)
    apply_listener(db)
    predict_log = tmp_path / "predicted"
    predict_log.mkdir()
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=0.3, PINNACLE_TEST_PREDICT_LOG=predict_log)
    worker = procs.cli("--db", uri, "worker", "--poll", "0.1", env=env, name="worker")
    wait_outputs(raw, 1)
    ended: list[int] = []
    for _ in range(KILLS):
        # The kill lands somewhere in this insert, the worker's drain of it, or an idle moment.
        killer = threading.Timer(rng.uniform(0.0, 0.5), lambda: ended.append(_kill(admin, backend_kind, app, database)))
        killer.start()
        writer.insert(rng.choice((200, 1000)))
        writer.update(10, rng)
        killer.join()
        wait_drained(raw, writer.next, worker=worker)  # the worker came back by itself
    ended = sum(ended)
    worker.popen.send_signal(signal.SIGTERM)
    worker.finish(timeout=60)

    counts = assert_exactly_once(read_state(raw), EXPECTED)
    lines = outage_lines(worker.stderr())
    assert 1 <= len(lines) <= KILLS, lines
    assert ended >= KILLS  # every kill found at least one of this test's connections
    faults_report(
        kind=backend_kind, kills=KILLS, connections_ended=ended, worker_outage_lines=len(lines), rows=counts["rows"],
        outputs=counts["outputs"], lost=counts["lost"], duplicated=counts["duplicates"], write_errors=writer.errors,
        writes_in_doubt=writer.in_doubt, recomputed=recomputed(predict_log),
    )
    db.close()
    raw.dispose()
    admin.dispose()
