"""``status()``'s ``in_flight`` (issue 3, part 1): the rows a live worker is computing now.

A worker process claims a batch and its model sleeps on it; meanwhile another process sees
exactly that batch in flight. Killed with SIGKILL, the worker's claim stops counting (its
rows are only pending again) and a later drain computes them.
"""

from __future__ import annotations

import time

import pinnacle
from reliability.flaky_models import HashEmbed
from reliability.helpers import child_env

#: Seconds the worker's model sleeps per batch: how long its claim is held.
BATCH_SLEEP = 4.0


def _wait_for(db, check, what: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = db.status()["emb"]
        if check(status):
            return status
        assert time.monotonic() < deadline, f"{what}: {status}"
        time.sleep(0.05)


def test_in_flight_counts_a_live_claim_and_not_a_killed_one(backend_uri, connect, procs, report):
    db = connect()
    db["docs"].insert([{"_id": f"r{i:02d}", "text": f"row {i}"} for i in range(20)])
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=16), key="text", select="docs"), wait=False)
    assert db.status()["emb"]["in_flight"] == 0

    env = child_env(PINNACLE_TEST_BATCH_SLEEP=BATCH_SLEEP)
    worker = procs.worker("drain", backend_uri, "--batch-rows", "8", env=env)
    worker.wait_line("ready")
    held = _wait_for(db, lambda s: s["in_flight"] > 0, "the worker never claimed a batch")
    assert (held["pending"], held["in_flight"], held["outputs"]) == (20, 8, 0)

    assert worker.kill9()  # mid-batch: its model is still sleeping
    freed = _wait_for(db, lambda s: s["in_flight"] == 0, "a killed worker's claim still counts")
    assert (freed["pending"], freed["outputs"]) == (20, 0)

    db.drain()
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 20, "version": 0}
    report(backend=backend_uri.split(":")[0], rows=20, in_flight_while_held=held["in_flight"], in_flight_after_kill=0)
