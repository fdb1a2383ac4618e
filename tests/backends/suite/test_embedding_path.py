"""The embedding path: every row has exactly one current vector, equal to the model's."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle

ATOL = 1e-5


def test_apply_backfills_existing_rows(db, rows, add_index, encode):
    db["docs"].insert(rows)
    index = add_index(db)
    assert index.version == 0 and index.indexing_listener.version == 0
    outputs = db.outputs("docs-emb")
    assert set(outputs) == {r["_id"] for r in rows}
    for row in rows:
        vector = outputs[row["_id"]]
        assert vector.shape == (384,) and vector.dtype == np.float32
        np.testing.assert_allclose(vector, encode(row["text"]), atol=ATOL)
    status = db.status()["docs-emb"]
    assert (status["pending"], status["retrying"], status["failed"], status["outputs"]) == (0, 0, 0, len(rows))


def test_apply_on_empty_table_then_live_insert(db, add_index, encode):
    db["docs"].insert([{"_id": "seed", "text": "only row"}])
    db["docs"].delete({"_id": "seed"})
    add_index(db)
    assert db.outputs("docs-emb") == {}
    ids = db["docs"].insert([{"text": "a brand new row"}, {"text": "and another one"}])
    outputs = db.outputs("docs-emb")  # no drain: insert() returned with the vectors stored
    assert set(outputs) == set(ids)
    np.testing.assert_allclose(outputs[ids[0]], encode("a brand new row"), atol=ATOL)
    np.testing.assert_allclose(outputs[ids[1]], encode("and another one"), atol=ATOL)


def test_live_insert_is_committed_before_insert_returns(indexed, raw_docs, encode, rows):
    ids = indexed["docs"].insert([{"_id": "live", "text": "Penguins huddle together to survive the winter."}])
    assert ids == ["live"]
    # another connection sees the output at once: it was committed inside insert()
    assert raw_docs.count("_outputs__docs-emb") == len(rows) + 1
    assert indexed.status()["docs-emb"]["pending"] == 0
    np.testing.assert_allclose(
        indexed.outputs("docs-emb")["live"], encode("Penguins huddle together to survive the winter."), atol=ATOL
    )


def test_insert_without_wait_leaves_work_queued(indexed, rows, encode):
    indexed["docs"].insert([{"_id": "q1", "text": "queued one"}, {"_id": "q2", "text": "queued two"}], wait=False)
    status = indexed.status()["docs-emb"]
    assert status["pending"] == 2 and status["outputs"] == len(rows)
    assert "q1" not in indexed.outputs("docs-emb")
    stats = indexed.drain()
    assert stats.outputs == 2
    outputs = indexed.outputs("docs-emb")
    np.testing.assert_allclose(outputs["q2"], encode("queued two"), atol=ATOL)
    assert indexed.status()["docs-emb"]["pending"] == 0
    assert indexed.drain().outputs == 0  # nothing left: draining again does nothing


def test_update_of_key_column_re_embeds(indexed, output_rows, encode):
    before = output_rows(indexed)["d03"]
    count = indexed["docs"].update({"_id": "d03"}, {"text": "Quantum computers use qubits instead of bits."})
    assert count == 1
    after = output_rows(indexed)["d03"]
    assert after["_updated_at"] > before["_updated_at"]
    vector = indexed.outputs("docs-emb")["d03"]
    np.testing.assert_allclose(vector, encode("Quantum computers use qubits instead of bits."), atol=ATOL)
    assert not np.allclose(vector, encode("The night train crosses the snowy mountains before dawn."), atol=1e-3)
    assert indexed.status()["docs-emb"]["pending"] == 0


def test_update_of_other_column_does_not_re_embed(indexed, output_rows, rows):
    before = output_rows(indexed)
    assert indexed["docs"].update({"_id": ["d01", "d02"]}, {"topic": "misc"}) == 2
    assert indexed.status()["docs-emb"]["pending"] == 0  # nothing was even queued
    after = output_rows(indexed)
    assert set(after) == set(before)
    for source, row in after.items():
        assert row["_updated_at"] == before[source]["_updated_at"], source
        assert bytes(row["_output"]) == bytes(before[source]["_output"]), source


def test_delete_removes_output(indexed, rows):
    assert indexed["docs"].delete({"_id": ["d00", "d05"]}) == 2
    outputs = indexed.outputs("docs-emb")
    assert "d00" not in outputs and "d05" not in outputs
    assert len(outputs) == len(rows) - 2
    status = indexed.status()["docs-emb"]
    assert status["outputs"] == len(rows) - 2 and status["pending"] == 0


def test_primary_key_change_moves_output(indexed, rows, encode):
    indexed["docs"].update({"_id": "d07"}, {"_id": "d07-new"})
    indexed.drain()
    outputs = indexed.outputs("docs-emb")
    assert "d07" not in outputs
    np.testing.assert_allclose(outputs["d07-new"], encode(rows[7]["text"]), atol=ATOL)
    assert len(outputs) == len(rows)


def test_stored_vectors_are_compact(indexed, output_rows):
    for row in output_rows(indexed).values():
        assert len(bytes(row["_output"])) == 384 * 4  # raw float32, not text
        assert row["_model_uuid"] == indexed.load("Model", "minilm").uuid


@pytest.mark.parametrize("bad", ["", "   "])
def test_bad_rows_are_recorded_not_fatal(indexed, rows, bad, encode):
    ids = indexed["docs"].insert([{"_id": "bad", "text": bad}, {"_id": "good", "text": "A perfectly fine sentence."}])
    assert ids == ["bad", "good"]
    outputs = indexed.outputs("docs-emb")
    assert "good" in outputs and "bad" not in outputs
    status = indexed.status()["docs-emb"]
    assert status["failed"] == 1 and status["pending"] == 0 and status["outputs"] == len(rows) + 1
    failures = indexed.failures("docs-emb")
    assert len(failures) == 1 and failures[0]["_source"] == "bad"
    message = failures[0]["message"]
    assert "docs-emb" in message and "'bad'" in message and "empty" in message
    # fixing the row clears the failure and embeds it
    indexed["docs"].update({"_id": "bad"}, {"text": "Now it has words."})
    assert indexed.status()["docs-emb"]["failed"] == 0
    np.testing.assert_allclose(indexed.outputs("docs-emb")["bad"], encode("Now it has words."), atol=ATOL)


def test_status_counts(db, rows, add_index):
    db["docs"].insert(rows[:5])
    add_index(db)
    assert db.status() == {"docs-emb": {**db.status()["docs-emb"], "pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 5}}
    db["docs"].insert(rows[5:8], wait=False)
    db["docs"].insert([{"_id": "e1", "text": ""}])
    status = db.status()["docs-emb"]
    assert (status["pending"], status["failed"], status["outputs"]) == (3, 1, 5)
    db.drain()
    status = db.status()["docs-emb"]
    assert (status["pending"], status["failed"], status["outputs"]) == (0, 1, 8)
    assert db.listeners() == ["docs-emb"]


def test_model_runs_on_cpu_here(indexed):
    torch = pytest.importorskip("torch")
    model = indexed.load("Model", "minilm")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the default device is cuda")
    model.predict("load the model")
    assert model.native.device.type == "cpu"


def test_two_listeners_on_one_table(db, rows, minilm, encode):
    db["docs"].insert(rows[:4])
    model = minilm()
    db.apply(pinnacle.Listener("by-text", model=model, key="text", select=db["docs"]))
    db.apply(pinnacle.Listener("by-topic", model=model, key="topic", select=db["docs"]))
    db["docs"].insert([{"_id": "n1", "text": "Cheese and crackers.", "topic": "snacks"}])
    np.testing.assert_allclose(db.outputs("by-text")["n1"], encode("Cheese and crackers."), atol=ATOL)
    np.testing.assert_allclose(db.outputs("by-topic")["n1"], encode("snacks"), atol=ATOL)
    before = db.outputs("by-text")["d00"]
    db["docs"].update({"_id": "d00"}, {"topic": "pets"})  # only by-topic re-embeds
    np.testing.assert_allclose(db.outputs("by-topic")["d00"], encode("pets"), atol=ATOL)
    np.testing.assert_array_equal(db.outputs("by-text")["d00"], before)
    assert len(db.outputs("by-text")) == 5 and len(db.outputs("by-topic")) == 5
