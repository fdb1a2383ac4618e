"""Concurrent workers and writers (issue 3, parts 3 and 5).

Worker processes (``python -m reliability.worker drain``: connect, loop ``db.drain()``)
and writer processes (``db["docs"].insert(..., wait=False)``) run against one database at
once. Each model call appends its inputs to a per-process log, so the tests see which
process computed which row:

* PostgreSQL and MariaDB claim with ``FOR UPDATE SKIP LOCKED``: the rows computed by the
  workers are disjoint, and every row is computed exactly once.
* SQLite claims optimistically (a row may be computed twice; the second result is not
  stored); no ``database is locked`` error reaches anyone.
* On every backend every row ends with exactly one output, equal to a direct computation.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest

import pinnacle
from reliability.flaky_models import CountingSentenceTransformer, HashEmbed, read_predict_logs
from reliability.helpers import assert_exactly_once, child_env, hash_bytes, read_state, server_params
from reliability.worker import text_of

EXPECTED = hash_bytes(16)
LOCKED_ERRORS = ("database is locked", "deadlock", "lock wait timeout", "Traceback")


def _hash_listener(db) -> None:
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=16), key="text", select="docs"), wait=False)


def _start_workers(procs, uri, tmp_path, n, batch_rows, env, *, stop_file=None):
    go = tmp_path / "go"
    args = ["--batch-rows", str(batch_rows), "--go-file", str(go)]
    if stop_file is not None:
        args += ["--stop-file", str(stop_file)]
    workers = [procs.worker("drain", uri, *args, env=env, name=f"worker-{i}") for i in range(n)]
    return workers, go


def _no_lock_errors(procs) -> None:
    for proc in procs.started:
        text = proc.stderr()
        for needle in LOCKED_ERRORS:
            assert needle.lower() not in text.lower(), f"{proc.name} stderr:\n{text}"


def _prediction_counts(log_dir, workers) -> tuple[collections.Counter, dict[int, int]]:
    logs = read_predict_logs(log_dir)
    counts = collections.Counter(x for inputs in logs.values() for x in inputs)
    per_worker = {w.pid: len(logs.get(str(w.pid), [])) for w in workers}
    return counts, per_worker


@pytest.mark.parametrize("backend_kind", server_params("postgresql", "mariadb"), indirect=True)
def test_two_workers_claim_disjoint_rows(backend_kind, backend_uri, connect, raw_engine, procs, tmp_path, report):
    """Two workers draining one queue: disjoint claims, each row computed once, one output each."""
    db = connect()
    n = 1000
    db["docs"].insert([{"_id": f"p{i:04d}", "text": text_of(f"p{i:04d}")} for i in range(n)])
    _hash_listener(db)
    log_dir = tmp_path / "predicted"
    log_dir.mkdir()
    env = child_env(PINNACLE_TEST_PREDICT_LOG=log_dir, PINNACLE_TEST_BATCH_SLEEP=0.01)
    workers, go = _start_workers(procs, backend_uri, tmp_path, 2, 20, env)
    for w in workers:
        w.wait_line("ready")
    go.touch()
    results = [w.finish(timeout=240) for w in workers]
    counts, per_worker = _prediction_counts(log_dir, workers)
    assert set(counts) == {text_of(f"p{i:04d}") for i in range(n)}
    twice = [x for x, c in counts.items() if c > 1]
    assert not twice, f"{len(twice)} rows computed by more than one claim, e.g. {twice[:5]}"
    assert all(per_worker.values()), f"one worker got no work: {per_worker}"
    assert sum(per_worker.values()) == n
    state = assert_exactly_once(read_state(raw_engine), EXPECTED)
    _no_lock_errors(procs)
    report(backend=backend_kind, workers=2, predicted_per_worker=sorted(per_worker.values()),
           computed_twice=len(twice), skipped=sum(r["skipped"] for r in results), **state)


def test_writers_and_workers_at_once(backend_kind, backend_uri, connect, raw_engine, procs, tmp_path, report):
    """3 writers that wait for their own outputs and 2 workers, all at once: no lock error escapes."""
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": text_of("seed")}])
    _hash_listener(db)
    db.drain()
    env = child_env(PINNACLE_TEST_BATCH_SLEEP=0.005)
    stop = tmp_path / "stop"
    workers, go = _start_workers(procs, backend_uri, tmp_path, 2, 16, env, stop_file=stop)
    writers = [
        procs.worker("write", backend_uri, "--prefix", f"w{k}-", "--count", "150", "--batch", "10", "--wait",
                     "--go-file", str(go), env=env, name=f"writer-{k}")
        for k in range(3)
    ]
    for p in workers + writers:
        p.wait_line("ready")
    go.touch()
    for w in writers:
        assert w.finish(timeout=240) == {"inserted": 150}
    stop.touch()
    for w in workers:
        w.finish(timeout=240)
    _no_lock_errors(procs)
    counts = assert_exactly_once(read_state(raw_engine), EXPECTED)
    assert counts["rows"] == 451
    report(backend=backend_kind, writers_waiting=3, workers=2, **counts)


def _four_writers_two_workers(procs, backend_uri, tmp_path, per_writer, batch, worker_batch, env):
    stop = tmp_path / "stop"
    workers, go = _start_workers(procs, backend_uri, tmp_path, 2, worker_batch, env, stop_file=stop)
    writers = [
        procs.worker("write", backend_uri, "--prefix", f"w{k}-", "--count", str(per_writer), "--batch", str(batch),
                     "--go-file", str(go), env=env, name=f"writer-{k}")
        for k in range(4)
    ]
    for p in workers + writers:
        p.wait_line("ready", timeout=300)
    start = time.monotonic()
    go.touch()
    for w in writers:
        assert w.finish(timeout=300) == {"inserted": per_writer}
    stop.touch()
    results = [w.finish(timeout=300) for w in workers]
    return workers, results, time.monotonic() - start


def test_four_writers_two_workers_10000_rows(backend_kind, backend_uri, connect, raw_engine, procs, tmp_path, report):
    """4 writers x 2,500 rows (wait=False) while 2 workers drain: exactly 10,000 outputs, none lost."""
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": text_of("seed")}])
    _hash_listener(db)
    db.drain()
    db["docs"].delete({"_id": "seed"})
    log_dir = tmp_path / "predicted"
    log_dir.mkdir()
    env = child_env(PINNACLE_TEST_PREDICT_LOG=log_dir)
    workers, results, seconds = _four_writers_two_workers(procs, backend_uri, tmp_path, 2500, 100, 200, env)
    _no_lock_errors(procs)
    state = read_state(raw_engine)
    counts = assert_exactly_once(state, EXPECTED)
    assert counts["rows"] == counts["outputs"] == 10_000
    expected_ids = {f"w{k}-{i}" for k in range(4) for i in range(2500)}
    assert set(state["outputs"]) == expected_ids
    predicted, per_worker = _prediction_counts(log_dir, workers)
    assert set(predicted) == {text_of(i) for i in expected_ids}
    twice = sum(1 for c in predicted.values() if c > 1)
    if backend_kind != "sqlite":  # locking claims: never computed twice
        assert twice == 0
    report(backend=backend_kind, writers=4, workers=2, predicted_per_worker=sorted(per_worker.values()),
           computed_twice=twice, seconds=round(seconds, 1), **counts)


@pytest.mark.parametrize(
    "backend_kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
        # Each worker loads torch and the model: on a small CI machine one backend is enough by default.
        pytest.param("sqlite", marks=[pytest.mark.sqlite, pytest.mark.slow], id="sqlite"),
        pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.slow], id="mariadb"),
    ],
    indirect=True,
)
def test_four_writers_two_workers_real_model(backend_kind, backend_uri, connect, raw_engine, minilm, model_path,
                                             st_native, procs, tmp_path, report):
    """The same with the real model (4 x 100 rows): every output equals a direct encode."""
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": text_of("seed")}])
    model = CountingSentenceTransformer(identifier="minilm", model=model_path)
    db.apply(pinnacle.Listener("emb", model=model, key="text", select="docs"))
    log_dir = tmp_path / "predicted"
    log_dir.mkdir()
    env = child_env(PINNACLE_TEST_PREDICT_LOG=log_dir, OMP_NUM_THREADS=1)
    workers, results, seconds = _four_writers_two_workers(procs, backend_uri, tmp_path, 100, 25, 32, env)
    _no_lock_errors(procs)
    rows = {r["_id"]: r["text"] for r in db["docs"].select()}
    outputs = db.outputs("emb")
    assert len(rows) == 401 and set(outputs) == set(rows)
    ids = sorted(rows)
    reference = st_native.encode([rows[i] for i in ids], batch_size=64, convert_to_numpy=True)
    got = np.stack([outputs[i] for i in ids])
    assert got.shape == (401, 384)
    np.testing.assert_allclose(got, reference, atol=2e-5)
    state = read_state(raw_engine)
    assert state["duplicates"] == 0 and not state["queue"] and not state["failed"]
    predicted, per_worker = _prediction_counts(log_dir, workers)
    assert set(predicted) == {rows[i] for i in ids if i != "seed"}
    twice = sum(1 for c in predicted.values() if c > 1)
    if backend_kind != "sqlite":
        assert twice == 0
    report(backend=backend_kind, model="all-MiniLM-L6-v2", writers=4, workers=2, rows=len(rows), outputs=len(outputs),
           duplicates=0, lost=len(set(rows) - set(outputs)), computed_twice=twice,
           predicted_per_worker=sorted(per_worker.values()), seconds=round(seconds, 1))
