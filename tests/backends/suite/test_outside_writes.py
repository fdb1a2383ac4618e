"""Rows written outside pinnacle (raw SQL, another process) get their vectors too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

ATOL = 1e-5

NEW = [
    {"_id": "raw1", "text": "Volcanic ash grounded flights across the region.", "topic": "travel"},
    {"_id": "raw2", "text": "The spreadsheet formula returns a division by zero error.", "topic": "tech"},
]


def test_raw_sql_writes_are_queued_by_triggers_and_drained(indexed, raw_docs, rows, encode, schemaless):
    raw_docs.insert(*NEW)
    assert raw_docs.update("d01", text="Grilled halloumi with mint and lemon.") == 1
    assert raw_docs.update("d02", topic="misc") == 1  # not the key: nothing to recompute
    assert raw_docs.delete("d04") == 1
    status = indexed.status()["docs-emb"]
    # raw1, raw2, d01 (update of text), d04 (delete); MongoDB has no triggers: drain() finds
    # them (change stream, reconcile pass)
    assert status["pending"] == (0 if schemaless else 4)
    outputs = indexed.outputs("docs-emb")
    assert "raw1" not in outputs and "d04" in outputs  # nothing happens until a drain

    stats = indexed.drain()
    assert (stats.outputs, stats.removed) == (3, 1)
    outputs = indexed.outputs("docs-emb")
    assert set(outputs) == ({r["_id"] for r in rows} - {"d04"}) | {"raw1", "raw2"}
    for row in NEW:
        np.testing.assert_allclose(outputs[row["_id"]], encode(row["text"]), atol=ATOL)
    np.testing.assert_allclose(outputs["d01"], encode("Grilled halloumi with mint and lemon."), atol=ATOL)
    assert indexed.status()["docs-emb"]["pending"] == 0
    hit = indexed["docs"].like({"text": NEW[0]["text"]}, vector_index="docs-idx", n=1)[0]
    assert hit["_id"] == "raw1"


def test_raw_insert_without_id_gets_server_side_id(indexed, raw_engine, encode, rows):
    import sqlalchemy as sa

    table = sa.table("docs", sa.column("text"), sa.column("topic"))
    with raw_engine.begin() as conn:
        conn.execute(table.insert(), [{"text": "A row written by psql without an id.", "topic": "tech"}])
    indexed.drain()
    found = indexed["docs"].select({"text": "A row written by psql without an id."})
    assert len(found) == 1 and found[0]["_id"]
    np.testing.assert_allclose(
        indexed.outputs("docs-emb")[found[0]["_id"]], encode("A row written by psql without an id."), atol=ATOL
    )
    assert indexed.status()["docs-emb"]["outputs"] == len(rows) + 1


FRESH_PROCESS = """
import json, sys
import pinnacle
from pinnacle.cli import main

uri = sys.argv[1]
db = pinnacle.connect(uri)
listener = db.load("Listener", "docs-emb")
before = db.status()["docs-emb"]["pending"]
stats = db.drain()
print(json.dumps({"uuid": listener.uuid, "version": listener.version, "before": before,
                  "outputs": stats.outputs, "after": db.status()["docs-emb"]}), flush=True)
db.close()
# then, in the same process (one model load for both checks): the worker command
sys.exit(main(["--db", uri, "worker", "--poll", "0.2"]))
"""


def _stop(proc: subprocess.Popen) -> tuple[object, str]:
    """SIGTERM ``proc``; its exit code and the rest of its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return "killed", out


def test_fresh_process_continues_and_worker_embeds_outside_writes(
    connect, backend_uri, rows, add_index, encode, raw_docs, tmp_path, other_processes
):
    """A new process picks up what the last one left queued (db.load + db.drain), then its
    ``pinnacle worker`` loop embeds rows that another client writes meanwhile."""
    db = connect()
    db["docs"].insert(rows[:10])
    index = add_index(db)
    listener_uuid = index.indexing_listener.uuid
    components = raw_docs.count("_pinnacle_components")
    db["docs"].insert(rows[10:], wait=False)  # this process stops before computing them
    db.close()

    proc = subprocess.Popen(
        [sys.executable, "-c", FRESH_PROCESS, backend_uri], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen = []
        for line in proc.stdout:  # up to the JSON line of the first phase
            seen.append(line)
            if line.startswith("{"):
                break
        assert seen and seen[-1].startswith("{"), "the fresh process failed:\n" + "".join(seen) + _stop(proc)[1]
        result = json.loads(seen[-1])
        assert result["uuid"] == listener_uuid and result["version"] == 0
        assert result["before"] == len(rows) - 10
        assert result["outputs"] == len(rows) - 10
        assert result["after"]["pending"] == 0 and result["after"]["outputs"] == len(rows)

        again = connect()
        outputs = again.outputs("docs-emb")
        assert set(outputs) == {r["_id"] for r in rows}
        for row in rows[10:]:
            np.testing.assert_allclose(outputs[row["_id"]], encode(row["text"]), atol=ATOL)
        assert raw_docs.count("_pinnacle_components") == components  # loading applied nothing new
        assert again["docs"].like({"text": rows[15]["text"]}, vector_index="docs-idx", n=1)[0]["_id"] == rows[15]["_id"]

        # the worker is running in that process now: write as another client would
        raw_docs.insert(*NEW)
        raw_docs.update("d01", text="Grilled halloumi with mint and lemon.")
        raw_docs.delete("d04")
        want_d01 = encode("Grilled halloumi with mint and lemon.")
        deadline = time.monotonic() + 180
        while True:
            outputs = again.outputs("docs-emb")
            done = (
                {"raw1", "raw2"} <= set(outputs) and "d04" not in outputs
                and np.allclose(outputs["d01"], want_d01, atol=ATOL)
            )
            if done:
                break
            assert proc.poll() is None, "the worker exited early:\n" + _stop(proc)[1]
            assert time.monotonic() < deadline, "the worker did not embed the outside writes:\n" + _stop(proc)[1]
            time.sleep(0.3)
    finally:
        code, tail = _stop(proc)
    assert code == 0, tail
    assert "stopped" in tail.lower()
    np.testing.assert_allclose(outputs["raw2"], encode(NEW[1]["text"]), atol=ATOL)
    assert len(outputs) == len(rows) + 1
    assert again.status()["docs-emb"]["pending"] == 0
