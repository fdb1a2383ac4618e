"""The pipelined drain (issue 14): batch k+1 is claimed and batch k-1 commits while the model
computes batch k, and every guarantee of a sequential drain still holds.

In one process, on SQLite, PostgreSQL and MariaDB: the next batch is claimed while the model
runs (and takes other rows), every row gets exactly one output, poison rows are parked
without sinking their batch, and a failing commit or a model that cannot run leaves every
row it had not committed queued, untouched and not in flight. (The kill -9 tests in
``test_crash.py`` and ``test_concurrency.py`` drain in several batches, so they run it too.)
"""

from __future__ import annotations

import dataclasses as dc
import time
import typing as t

import numpy as np
import pytest
import sqlalchemy as sa

import pinnacle
from pinnacle.embedding.drain import RetryPolicy
from reliability.flaky_models import HashEmbed, hash_vector

ROWS = 50
BATCH = 10

#: Called with each batch's inputs before the model computes them (set by a test).
PROBE: t.Optional[t.Callable[[list], None]] = None
#: Every input the model computed, in order.
SEEN: list[str] = []


@dc.dataclass(kw_only=True, repr=False)
class Probed(HashEmbed):
    """``HashEmbed`` that calls :data:`PROBE` first and raises for inputs containing "POISON"."""

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        if PROBE is not None:
            PROBE(list(inputs))
        bad = [x for x in inputs if "POISON" in x]
        if bad:
            raise ValueError(f"cannot embed {bad[0]!r}")
        SEEN.extend(inputs)
        return super().predict_batches(inputs)


@pytest.fixture(autouse=True)
def _reset():
    global PROBE
    SEEN.clear()
    yield
    PROBE = None


def _text(i: int) -> str:
    return f"row {i} POISON" if i % 13 == 5 else f"row {i}"


def _setup(connect, **options):
    db = connect(batch_rows=BATCH, retry=RetryPolicy(max_attempts=1), **options)
    db["docs"].insert([{"_id": f"r{i:03d}", "text": _text(i)} for i in range(ROWS)])
    db.apply(pinnacle.Listener("emb", model=Probed(identifier="probe", dim=16), key="text", select="docs"), wait=False)
    return db


def _open_claims(raw_engine) -> int:
    with raw_engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM _pinnacle_claims")).scalar_one()


def _check_exactly_once(db) -> None:
    outputs = db.outputs("emb")
    good = [i for i in range(ROWS) if "POISON" not in _text(i)]
    assert sorted(outputs) == [f"r{i:03d}" for i in good]
    for i in good:
        assert np.array_equal(outputs[f"r{i:03d}"], hash_vector(_text(i), 16))
    status = db.status()["emb"]
    assert (status["pending"], status["in_flight"], status["failed"]) == (0, 0, ROWS - len(good))


def test_the_next_batch_is_claimed_while_the_model_runs(connect, raw_engine, monkeypatch, report):
    global PROBE
    db = _setup(connect)
    backend, claims = db.backend, []
    claim_work = backend.claim_work

    def counting(*args, **kwargs):
        claim = claim_work(*args, **kwargs)
        claims.append(len(claim.items))
        return claim

    monkeypatch.setattr(backend, "claim_work", counting)
    ahead: list[int] = []
    in_flight: list[int] = []

    def probe(inputs: list) -> None:
        if not ahead:  # the first batch waits until the drain has claimed the next one
            deadline = time.monotonic() + 30
            while len(claims) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        ahead.append(len(claims))
        deadline = time.monotonic() + 10  # a batch counts as in flight once the model has had it a while
        while _open_claims(raw_engine) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        in_flight.append(_open_claims(raw_engine))

    PROBE = probe
    stats = db.drain()
    assert ahead[0] >= 2, "no batch was claimed while the model computed the first"
    assert in_flight[0] == 1  # a batch claimed ahead is not in flight until the model takes it
    assert stats.rows == ROWS and stats.skipped == 0
    good = [x for x in SEEN if "POISON" not in x]
    assert len(good) == len(set(good))  # open claims took different rows: nothing computed twice
    _check_exactly_once(db)
    assert _open_claims(raw_engine) == 0
    report(rows=ROWS, batch=BATCH, claimed_during_the_first_batch=ahead[0], most_records=max(in_flight))


def test_open_claims_of_one_process_take_different_rows(connect):
    db = _setup(connect)
    spec = db.runtimes.drainer("emb").spec
    first = db.backend.claim_work(spec, BATCH)
    second = db.backend.claim_work(spec, BATCH)
    try:
        one, two = {i.source for i in first.items}, {i.source for i in second.items}
        assert len(one) == len(two) == BATCH and not one & two
        assert db.status()["emb"]["in_flight"] == 0  # claimed, not yet computed
        first.mark_in_flight()
        second.mark_in_flight()
        assert db.status()["emb"]["in_flight"] == 2 * BATCH
    finally:
        first.release()
        second.release()
    assert db.status()["emb"]["in_flight"] == 0
    db.drain()
    _check_exactly_once(db)


def test_a_failing_commit_leaves_every_later_batch_queued(connect, monkeypatch):
    db = _setup(connect)
    dialect = db.backend.dialect
    upsert, calls = dialect.upsert_outputs, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the second commit fails")
        return upsert(*args, **kwargs)

    monkeypatch.setattr(dialect, "upsert_outputs", failing)
    reported: list[int] = []
    with pytest.raises(RuntimeError, match="the second commit fails"):
        db.drain("emb", on_batch=reported.append)
    status = db.status()["emb"]
    committed = status["outputs"] + status["failed"]
    assert 0 < committed < ROWS and status["pending"] == ROWS - committed and status["in_flight"] == 0
    assert reported == [committed]  # the batch that committed was reported before the drain failed
    monkeypatch.undo()
    db.drain()
    _check_exactly_once(db)


def test_a_model_that_cannot_run_leaves_its_claimed_rows_untouched(connect, raw_engine):
    global PROBE
    db = _setup(connect)
    batches: list[int] = []

    def probe(inputs: list) -> None:
        batches.append(len(inputs))
        if len(batches) == 2:
            raise ImportError("No module named 'a_native_library'")

    PROBE = probe
    with pytest.raises(Exception, match="a_native_library"):
        db.drain("emb")
    status = db.status()
    assert "emb" not in status or status["emb"]["in_flight"] == 0
    q = raw_engine.dialect.identifier_preparer.quote
    with raw_engine.connect() as conn:
        queued = conn.execute(sa.text(f"SELECT count(*), max(attempts) FROM {q('_queue__emb')}")).one()
        outputs = conn.execute(sa.text(f"SELECT count(*) FROM {q('_outputs__emb')}")).scalar_one()
        failed = conn.execute(sa.text(f"SELECT count(*) FROM {q('_failed__emb')}")).scalar_one()
    assert queued[0] == ROWS - outputs - failed and queued[0] >= ROWS - BATCH and queued[1] == 0
    assert _open_claims(raw_engine) == 0


def test_a_drain_over_an_in_memory_database_runs_in_one_thread():
    db = pinnacle.connect("sqlite://", batch_rows=BATCH, retry=RetryPolicy(max_attempts=1))
    assert not db.backend.concurrent_claims  # each thread would see a database of its own
    db["docs"].insert([{"_id": f"r{i:03d}", "text": _text(i)} for i in range(ROWS)])
    db.apply(pinnacle.Listener("emb", model=Probed(identifier="probe", dim=16), key="text", select="docs"))
    _check_exactly_once(db)


def test_a_claim_that_ended_is_never_recorded_in_flight(connect, raw_engine):
    """The drain records a batch as in flight from a timer thread; a timer that fires after
    the batch's commit or release records nothing."""
    db = _setup(connect)
    spec = db.runtimes.drainer("emb").spec
    released = db.backend.claim_work(spec, BATCH)
    released.release()
    released.mark_in_flight()
    assert _open_claims(raw_engine) == 0 and db.status()["emb"]["in_flight"] == 0
    assert db.status()["emb"]["pending"] == ROWS  # released: every row still queued
