"""Failing rows and bad input (issue 3, parts 1 and 2).

* A model error on some rows never sinks their batch: the other rows are stored, the
  failing ones are retried with backoff and then parked in the failed table with their
  error; ``status`` counts are exact; ``retry`` puts them back.
* Input a model cannot use (None, '', a 1 MB string, a missing key column) is stored
  and parked with a clear message; the good rows of the same insert are embedded.
* A value a column cannot store (a number, a dict, invalid UTF-8, bytes in a text column)
  refuses the whole insert with a ConfigError naming the row and column: nothing written.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import sqlalchemy as sa

import pinnacle
from reliability import flaky_models
from reliability.flaky_models import Flaky, HashEmbed, hash_vector
from reliability.helpers import child_env

RETRY = pinnacle.RetryPolicy(max_attempts=3, backoff_s=0.05)
BAD = {"d05", "d13"}


@pytest.fixture
def flaky():
    """A fresh ``Flaky`` model (fails on "BOOM" inputs) and its call record."""
    flaky_models.FIXED = False
    flaky_models.CALLS.clear()
    yield Flaky(identifier="flaky", dim=8)
    flaky_models.FIXED = False
    flaky_models.CALLS.clear()


def _text(i: int) -> str:
    rid = f"d{i:02d}"
    return f"BOOM row {rid}" if rid in BAD else f"good row {rid}"


def _drain_until_settled(db, listener: str, timeout: float = 20.0) -> None:
    """Drain until nothing is pending (rows waiting for their retry time included)."""
    deadline = time.monotonic() + timeout
    while db.status()[listener]["pending"]:
        assert time.monotonic() < deadline, db.status()
        db.drain(listener)
        time.sleep(0.02)


def test_bad_rows_are_isolated_retried_then_parked(backend_kind, backend_uri, connect, flaky, procs):
    db = connect(retry=RETRY)
    rows = [{"_id": f"d{i:02d}", "text": _text(i)} for i in range(20)]
    db["docs"].insert(rows)
    db.apply(pinnacle.Listener("emb", model=flaky, key="text", select="docs"))  # one batch of 20

    # The batch was split around the 2 bad rows; the 18 others are stored.
    status = db.status()["emb"]
    assert (status["outputs"], status["pending"], status["failed"]) == (18, 2, 0), status
    outputs = db.outputs("emb")
    assert set(outputs) == {r["_id"] for r in rows} - BAD
    for rid, vector in outputs.items():
        np.testing.assert_array_equal(vector, hash_vector(f"good row {rid}", 8))

    _drain_until_settled(db, "emb")
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 2, "outputs": 18, "version": 0}

    failures = {f["_source"]: f for f in db.failures("emb")}
    assert set(failures) == BAD
    for rid, failure in failures.items():
        assert failure["error_type"] == "Boom"
        assert failure["attempts"] == 3
        assert abs(failure["failed_at"] - time.time()) < 60
        message = failure["message"]
        assert "'emb'" in message and repr(rid) in message and "'docs'" in message, message
        assert "Boom" in message and f"BOOM row {rid}" in message, message
        # One isolated call per attempt, spaced by the backoff (0.05 s, then 0.1 s).
        alone = [when for when, size in flaky_models.CALLS[f"BOOM row {rid}"] if size == 1]
        assert len(alone) == 3, flaky_models.CALLS[f"BOOM row {rid}"]
        gaps = np.diff(alone)
        assert gaps[0] >= 0.045 and gaps[1] >= 0.095, gaps

    # The CLI shows the same exact counts.
    shown = procs.cli("--db", backend_uri, "-q", "status", "--json")
    shown.finish(timeout=120)
    counts = json.loads(shown.stdout())["emb"]
    assert (counts["rows"], counts["outputs"], counts["pending"], counts["failed"]) == (20, 18, 0, 2), counts

    # retry with the model still broken: back in the queue, retried, parked again.
    assert db.retry("emb") == 2
    _drain_until_settled(db, "emb")
    assert db.status()["emb"]["failed"] == 2 and db.status()["emb"]["outputs"] == 18

    # `pinnacle retry emb` in another process, with the model fixed: the rows get outputs.
    fixed = procs.cli("--db", backend_uri, "-q", "retry", "emb", env=child_env(PINNACLE_TEST_FLAKY_FIXED=1))
    fixed.finish(timeout=120)
    assert "2 failed row(s)" in fixed.stdout(), fixed.stdout()
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 20, "version": 0}
    assert db.failures("emb") == []
    np.testing.assert_array_equal(db.outputs("emb")["d05"], hash_vector("BOOM row d05", 8))


def test_retry_in_process_after_the_model_is_fixed(backend_kind, connect, flaky):
    db = connect(retry=pinnacle.RetryPolicy(max_attempts=1, backoff_s=0.01))
    db["docs"].insert([{"_id": "a", "text": "good"}])
    db.apply(pinnacle.Listener("emb", model=flaky, key="text", select="docs"))
    db["docs"].insert([{"_id": "b", "text": "BOOM b"}, {"_id": "c", "text": "also good"}])
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 1, "outputs": 2, "version": 0}
    flaky_models.FIXED = True
    assert db.retry("emb") == 1
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 3, "version": 0}
    assert db.retry("emb") == 0


def test_status_counts_are_exact(backend_kind, connect):
    """No cap on the counts: 2,500 queued rows show as 2,500."""
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": "seed"}])
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=8), key="text", select="docs"))
    db["docs"].insert([{"_id": f"r{i}", "text": f"text {i}"} for i in range(2500)], wait=False)
    assert db.status()["emb"] == {"pending": 2500, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 1, "version": 0}
    db.drain()
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 2501, "version": 0}


# -- part 2: bad input --------------------------------------------------------------------------
def test_bad_input_is_parked_and_good_rows_embedded(backend_kind, connect, minilm, st_native):
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": "The first row."}])
    db.apply(pinnacle.Listener("emb", model=minilm(), key="text", select="docs"))
    big = "word " * 200_000  # 1 MB
    rows = [
        {"_id": "good1", "text": "A cat sleeps on the windowsill."},
        {"_id": "none", "text": None},
        {"_id": "empty", "text": ""},
        {"_id": "good2", "text": "Fresh bread has a crisp crust."},
        {"_id": "huge", "text": big},
        {"_id": "nokey"},  # the key column is missing from the row
        {"_id": "blank", "text": "   "},
        {"_id": "good3", "text": "The night train crosses the mountains."},
    ]
    assert db["docs"].insert(rows) == [r["_id"] for r in rows]

    assert db["docs"].count() == 9  # every row is stored
    assert len(db["docs"].get("huge")["text"]) == len(big)
    assert db["docs"].get("nokey")["text"] is None
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 5, "outputs": 4, "version": 0}

    outputs = db.outputs("emb")
    assert set(outputs) == {"seed", "good1", "good2", "good3"}
    good = [r for r in rows if r["_id"].startswith("good")]
    reference = st_native.encode([r["text"] for r in good])
    for r, expected in zip(good, reference):
        np.testing.assert_allclose(outputs[r["_id"]], expected, atol=2e-5)

    failures = {f["_source"]: f for f in db.failures("emb")}
    expected = {
        "none": "the text is missing (None)",
        "nokey": "the text is missing (None)",
        "empty": "the text is empty",
        "blank": "the text is empty",
        "huge": "the text has 1,000,000 characters, more than the 100,000 allowed",
    }
    assert set(failures) == set(expected)
    for rid, cause in expected.items():
        failure = failures[rid]
        assert failure["error_type"] == "InvalidInput"
        assert failure["attempts"] == 1  # input no retry can fix is parked at once
        assert failure["message"] == f"Listener 'emb', row {rid!r} of 'docs': {cause}"

    # Fixing the row's value re-embeds it (the failure is cleared).
    db["docs"].update({"_id": "empty"}, {"text": "Now it has text."})
    assert "empty" in db.outputs("emb")
    assert db.status()["emb"]["failed"] == 4


def test_listener_on_a_missing_key_column_is_refused_whole(backend_kind, connect, raw_engine):
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "hello"}])
    with pytest.raises(pinnacle.ConfigError, match=r"no column\(s\) \['body'\]"):
        db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash"), key="body", select="docs"))
    assert db.show("Listener") == []
    names = sa.inspect(raw_engine).get_table_names()
    assert not [n for n in names if n.startswith(("_outputs__", "_queue__", "_failed__"))], names
    db["docs"].insert([{"_id": "b", "text": "no trigger left behind"}])
    assert db["docs"].count() == 2


#: Values a text column cannot hold, and the cause the error names.
UNSTORABLE = [
    (5, "expected text, got int"),
    (2.5, "expected text, got float"),
    ({"a": 1}, "expected text, got dict"),
    ("lone surrogate \ud800 here", "not valid UTF-8 text"),
    (b"raw bytes", "expected text, got bytes"),
    (b"\xff\xfe invalid utf-8", "expected text, got bytes"),
]


def test_values_a_text_column_cannot_hold_refuse_the_insert(backend_kind, connect, raw_engine):
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "hello"}])
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash"), key="text", select="docs"))
    before = db.status()["emb"]
    for value, cause in UNSTORABLE:
        batch = [{"_id": "g1", "text": "good"}, {"_id": "bad", "text": value}, {"_id": "g2", "text": "good too"}]
        with pytest.raises(pinnacle.ConfigError) as info:
            db["docs"].insert(batch)
        message = str(info.value)
        assert "nothing was written" in message and "row 1, column 'text'" in message and cause in message, message
        with raw_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM docs")).scalar_one() == 1, value
            assert conn.execute(sa.text("SELECT count(*) FROM _queue__emb")).scalar_one() == 0, value
        assert db.status()["emb"] == before
        # The same value in an update is refused too, and the row keeps its text.
        with pytest.raises(pinnacle.ConfigError, match="column 'text'"):
            db["docs"].update({"_id": "a"}, {"text": value})
        assert db["docs"].get("a")["text"] == "hello"
    # Several bad values: each is named.
    with pytest.raises(pinnacle.ConfigError, match=r"2 value\(s\).*row 0, column 'text'.*row 2, column 'text'"):
        db["docs"].insert([{"_id": "x", "text": 1}, {"_id": "y", "text": "ok"}, {"_id": "z", "text": [1]}])
    assert db["docs"].count() == 1
