"""Part 1 of issue 16: the database server restarts while pinnacle works.

A ``pinnacle worker`` drains thousands of rows of a throwaway PostgreSQL cluster or MariaDB
server (``servers.py``: never the shared ones) while the test stops and starts the server
several times, cleanly and as a crash (``pg_ctl -m immediate``, SIGKILL), right after
writing more rows (so that the worker is busy when the server goes), and waits for the
worker to catch up by itself after each restart. The worker keeps running, logs one line per outage, and at the end
every row has exactly one output, the right one: none lost, none duplicated.

A user's ``insert()`` while the server is down raises a :class:`BackendError` that says
so, writes nothing, and the next call works once the server is back.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
import sqlalchemy as sa

import pinnacle
from faults.common import Writer, apply_listener, outage_lines, raw_engine_for, recomputed, wait_drained, wait_outputs
from pinnacle.errors import BackendError
from reliability.helpers import assert_exactly_once, child_env, hash_bytes, read_state
from reliability.worker import text_of

EXPECTED = hash_bytes(16)
ROWS = 3000
OUTAGES = 3
DOWN_S = 1.5


def test_worker_drains_through_server_restarts(own_server, procs, faults_report, tmp_path):
    rng = random.Random(16)
    uri = own_server.uri
    raw = raw_engine_for(uri)
    db = pinnacle.connect(uri)
    writer = Writer(db, raw)
    writer.insert(ROWS)
    apply_listener(db)
    predict_log = tmp_path / "predicted"
    predict_log.mkdir()
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=0.25, PINNACLE_TEST_PREDICT_LOG=predict_log)
    worker = procs.cli("--db", uri, "worker", "--poll", "0.2", env=env, name="worker")
    wait_outputs(raw, 1)  # the worker has started draining
    refused = []
    for outage in range(OUTAGES):
        for _ in range(3):
            writer.insert(100)
        writer.update(20, rng)
        own_server.stop("immediate" if outage % 2 else "fast")
        refused.append(writer.try_insert(50))  # the server is gone: refused, nothing written
        time.sleep(DOWN_S)
        own_server.start()
        writer.check_absent()
        # The worker comes back by itself: everything written so far gets its output.
        wait_drained(raw, writer.next - 50 * (outage + 1), worker=worker)
    writer.insert(200)
    total = writer.next - 50 * OUTAGES
    wait_drained(raw, total, worker=worker)
    assert worker.alive(), f"the worker stopped:\n{worker.stderr()}"
    worker.popen.send_signal(signal.SIGTERM)
    worker.finish(timeout=60)

    assert all(isinstance(exc, BackendError) for exc in refused), refused
    for exc in refused:
        assert exc.orig is not None and "insert" in str(exc), str(exc)
    assert writer.in_doubt == 0  # nothing could commit with the server down
    counts = assert_exactly_once(read_state(raw), EXPECTED)
    lines = outage_lines(worker.stderr())
    assert len(lines) == OUTAGES, lines  # one line per outage, each outage seen
    assert "Worker stopped (SIGTERM)" in worker.stdout()
    faults_report(
        kind=own_server.kind, outages=OUTAGES, rows=counts["rows"], outputs=counts["outputs"], lost=counts["lost"],
        duplicated=counts["duplicates"], worker_outage_lines=len(lines), refused_inserts=len(refused),
        write_errors=writer.errors, recomputed=recomputed(predict_log),
    )
    db.close()
    raw.dispose()


def test_insert_while_the_server_is_gone(own_server, faults_report):
    """``insert(wait=True)``: a clear error while the server is down, nothing half-written,
    and the next call works once it is back (the pool's dead connections are replaced)."""
    uri = own_server.uri
    raw = raw_engine_for(uri)
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": f"a{i}", "text": text_of(f"a{i}")} for i in range(10)])
    apply_listener(db)
    db.drain()
    attempts = 0
    for mode in ("fast", "immediate"):
        own_server.stop(mode)
        rows = [{"_id": f"{mode}{i}", "text": text_of(f"{mode}{i}")} for i in range(5)]
        with pytest.raises(BackendError) as raised:
            db["docs"].insert(rows)
        attempts += 1
        message = str(raised.value)
        assert own_server.uri.split("@", 1)[1].split("/")[0] in message, message  # names the server
        assert "cannot connect" in message or "connection was lost" in message, message
        assert raised.value.orig is not None
        own_server.start()
        with raw.connect() as conn:
            written = sa.text("SELECT count(*) FROM docs WHERE _id LIKE :p")
            assert conn.execute(written, {"p": f"{mode}%"}).scalar_one() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM _queue__emb").scalar_one() == 0
        assert db["docs"].insert(rows) == [r["_id"] for r in rows]  # the next call works
    counts = assert_exactly_once(read_state(raw), EXPECTED)
    faults_report(kind=own_server.kind, outages=attempts, rows=counts["rows"], outputs=counts["outputs"],
                  lost=counts["lost"], duplicated=counts["duplicates"], refused_inserts=attempts)
    db.close()
    raw.dispose()
