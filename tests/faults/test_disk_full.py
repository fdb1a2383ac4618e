"""Part 3 of issue 16: the disk under a SQLite database fills up.

The database lives on a small tmpfs of its own (``mount -t tmpfs -o size=8m``; the test
skips, saying why, where mounting is refused). With rows queued, a file fills the rest of
the disk: an ``insert()`` raises a :class:`BackendError` that says the disk is full and
writes nothing, a ``pinnacle worker`` logs one outage line and keeps running, and the
queue stays as it was. Once the file is removed the worker computes everything and the
next insert works: every row has exactly one output.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time

import pytest

import pinnacle
from faults.common import outage_lines, raw_engine_for, wait_drained
from pinnacle.errors import BackendError
from reliability.flaky_models import HashEmbed
from reliability.helpers import assert_exactly_once, child_env, hash_bytes, read_state
from reliability.worker import text_of

DIM = 4096  # 16 KiB per output: the queued rows' outputs do not fit what is left
EXPECTED = hash_bytes(DIM)


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(path) -> int:
    """Write ``path`` until the disk refuses; the bytes written."""
    written = 0
    chunk = os.urandom(64 * 1024)
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        for size in (4096, 512, 1):  # the last bytes too
            try:
                while True:
                    written += fh.write(chunk[:size])
            except OSError:
                pass
    return written


def _queue_sources(raw) -> int:
    with raw.connect() as conn:
        return conn.exec_driver_sql("SELECT count(DISTINCT _source) FROM _queue__emb").scalar_one()


@pytest.mark.sqlite
def test_full_disk_refuses_writes_keeps_the_queue_and_resumes(small_disk, procs, faults_report):
    uri = f"sqlite:///{small_disk / 'docs.db'}"
    raw = raw_engine_for(uri)
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": f"r{i:04d}", "text": text_of(f"r{i:04d}")} for i in range(20)])
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=DIM), key="text", select="docs"))
    db["docs"].insert([{"_id": f"q{i:04d}", "text": text_of(f"q{i:04d}")} for i in range(150)], wait=False)
    filler = small_disk / "filler"
    filled = _fill(filler)

    big = [{"_id": f"b{i:04d}", "text": text_of(f"b{i:04d}") + " " + "x" * 20_000} for i in range(50)]
    with pytest.raises(BackendError) as raised:
        db["docs"].insert(big, wait=False)
    message = str(raised.value)
    assert "disk is full" in message and "insert" in message and "nothing of this call was written" in message, message
    assert db["docs"].count() == 170  # nothing half-written

    worker = procs.cli("--db", uri, "worker", "--poll", "0.2", env=child_env(), name="worker")
    deadline = time.monotonic() + 60
    while not outage_lines(worker.stderr()):
        assert worker.alive(), worker.stderr()
        assert time.monotonic() < deadline, f"the worker did not report the full disk:\n{worker.stderr()}"
        time.sleep(0.2)
    time.sleep(1.0)  # a few more tries against the full disk
    assert worker.alive(), worker.stderr()
    assert _queue_sources(raw) == 150  # the queue is intact
    with raw.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM _outputs__emb").scalar_one() == 20

    filler.unlink()  # space again: everything resumes
    wait_drained(raw, 170, worker=worker)
    assert db["docs"].insert(big, wait=False) == [r["_id"] for r in big]  # the same call works now
    wait_drained(raw, 220, worker=worker)
    worker.popen.send_signal(signal.SIGTERM)
    worker.finish(timeout=60)

    lines = outage_lines(worker.stderr())
    assert len(lines) == 1 and "disk is full" in lines[0], lines
    state = read_state(raw)
    expected = {r["_id"]: r["text"] for r in big}
    counts = assert_exactly_once(state, lambda text: EXPECTED(text))
    assert all(state["rows"][k] == v for k, v in expected.items())
    faults_report(kind="sqlite", outages=1, filled_bytes=filled, refused_inserts=1, worker_outage_lines=len(lines),
                  rows=counts["rows"], outputs=counts["outputs"], lost=counts["lost"], duplicated=counts["duplicates"])
    db.close()
    raw.dispose()
