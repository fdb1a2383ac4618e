"""Crash safety (issue 3, part 4): kill -9 a draining process at random points.

A worker drains the queue of a listener whose (cheap, deterministic) model sleeps a little
per batch; the test writes to the table meanwhile (updates, inserts, deletes) and kills the
worker after a random delay. After every kill nothing is lost: every row whose output is
missing or stale, and every output of a deleted row, is still in the queue. After the
kills a restarted worker (``pinnacle worker --once``) leaves every row with exactly one
output equal to the model's output for the row's current text.
"""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa

import pinnacle
from reliability.flaky_models import HashEmbed
from reliability.helpers import assert_exactly_once, child_env, hash_bytes, open_work, read_state
from reliability.worker import text_of

EXPECTED = hash_bytes(16)
#: Seconds the model sleeps per batch: a drain of 100 rows in batches of 8 takes about 0.3 s.
BATCH_SLEEP = 0.02
#: Rows kept queued before each kill point: a drain of them (about a second) outlasts the
#: kill's random delay (at most 0.9 s), so that most kills land in the middle of a drain.
QUEUED = 300


class Table:
    """The test's own view of the rows it wrote (ids, revisions), to write more of them."""

    def __init__(self, db, rng: random.Random):
        self.db = db
        self.rng = rng
        self.next = 0
        self.revision: dict[str, int] = {}

    def insert(self, n: int, wait: bool = False) -> None:
        rows = []
        for _ in range(n):
            rid = f"r{self.next:05d}"
            self.next += 1
            self.revision[rid] = 0
            rows.append({"_id": rid, "text": text_of(rid)})
        self.db["docs"].insert(rows, wait=wait)

    def churn(self) -> None:
        """Writes racing the worker: update 3 rows, insert 2, delete 1 (none of them waits)."""
        live = sorted(self.revision)
        for rid in self.rng.sample(live, 3):
            self.revision[rid] += 1
            self.db["docs"].update({"_id": rid}, {"text": text_of(rid, self.revision[rid])}, wait=False)
        self.insert(2)
        gone = self.rng.choice(live)
        self.db["docs"].delete({"_id": gone}, wait=False)
        del self.revision[gone]


def _kill_points(backend_uri, raw_engine, connect, procs, kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    db = connect()
    table = Table(db, rng)
    table.insert(QUEUED)
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=16), key="text", select="docs"), wait=False)
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=BATCH_SLEEP)
    killed = finished = tries = 0
    max_in_flight = 0
    mid_drain = committed_by_killed = 0
    while killed < kills:
        tries += 1
        assert tries <= 3 * kills + 5, f"the worker kept finishing before the kill ({finished} times)"
        worker = procs.worker("drain", backend_uri, "--batch-rows", "8", env=env, name=f"drain-{tries}")
        worker.wait_line("ready")
        stamp = time.time()
        start = time.monotonic()
        delay = rng.uniform(0.0, 0.9)
        table.churn()
        time.sleep(max(0.0, delay - (time.monotonic() - start)))
        was_running = worker.kill9()
        with raw_engine.connect() as conn:  # outputs this worker committed before it died
            committed = conn.execute(
                sa.text("SELECT count(*) FROM _outputs__emb WHERE _updated_at >= :t"), {"t": stamp}
            ).scalar_one()
        if was_running:
            killed += 1
            mid_drain += committed > 0
            committed_by_killed += committed
        else:
            finished += 1
        state = read_state(raw_engine)
        work = open_work(state, EXPECTED)
        max_in_flight = max(max_in_flight, len(work["missing"] | work["stale"] | work["orphans"]))
        assert not work["lost"], f"after kill {killed}: rows neither right nor queued: {sorted(work['lost'])[:10]}"
        assert state["duplicates"] == 0
        if len(state["queue"]) < QUEUED:
            table.insert(QUEUED - len(state["queue"]))
    # Restart: a fresh worker finishes the work.
    procs.cli("--db", backend_uri, "-q", "worker", "--once", name="restart").finish()
    counts = assert_exactly_once(read_state(raw_engine), EXPECTED)
    assert set(read_state(raw_engine)["rows"]) == set(table.revision)
    return {
        "kill_points": killed,
        "killed_after_a_commit": mid_drain,
        "rows_committed_by_killed_workers": committed_by_killed,
        "finished_before_kill": finished,
        "max_open_after_kill": max_in_flight,
        **counts,
    }


def test_kill9_while_draining(backend_kind, backend_uri, raw_engine, connect, procs, report):
    counts = _kill_points(backend_uri, raw_engine, connect, procs, kills=10, seed=20240603)
    report(backend=backend_kind, **counts)
    assert counts["kill_points"] >= 10 and counts["duplicates"] == 0 and counts["lost"] == 0


@pytest.mark.slow
def test_kill9_while_draining_many(backend_kind, backend_uri, raw_engine, connect, procs, report):
    counts = _kill_points(backend_uri, raw_engine, connect, procs, kills=50, seed=7)
    report(backend=backend_kind, **counts)
    assert counts["kill_points"] >= 50 and counts["duplicates"] == 0 and counts["lost"] == 0


def test_kill9_during_apply_and_backfill(backend_kind, backend_uri, raw_engine, connect, procs, report):
    """Kill ``apply`` once early (change capture being set up) and once during its backfill."""
    rng = random.Random(99)
    db = connect()
    table = Table(db, rng)
    table.insert(150)
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=BATCH_SLEEP)
    phases = []
    for name, (low, high) in (("early", (0.0, 0.08)), ("backfill", (0.4, 0.9))):
        proc = procs.worker("apply", backend_uri, "--batch-rows", "8", env=env, name=f"apply-{name}")
        proc.wait_line("ready")
        time.sleep(rng.uniform(low, high))
        was_running = proc.kill9()
        with raw_engine.connect() as conn:
            applied = conn.execute(
                sa.text("SELECT count(*) FROM _pinnacle_components WHERE type = 'Listener' AND identifier = 'emb'")
            ).scalar_one()
            has_outputs = sa.inspect(conn).has_table("_outputs__emb")
            outputs = conn.execute(sa.text("SELECT count(*) FROM _outputs__emb")).scalar_one() if has_outputs else 0
        phases.append({"kill": name, "was_running": was_running, "listener_stored": bool(applied), "outputs": outputs})
        table.churn()  # writes between the crash and the restart
    # Restart: apply again; it finishes the backfill.
    status = procs.worker("apply", backend_uri, "--batch-rows", "32", name="apply-restart").finish()
    assert status["pending"] == 0 and status["failed"] == 0, status
    counts = assert_exactly_once(read_state(raw_engine), EXPECTED)
    report(backend=backend_kind, apply_kills=phases, **counts)
    assert any(p["was_running"] for p in phases)
