"""The reconcile pass: writes by other clients (no change stream) are found and computed.

Every test runs twice: ``[lookup]`` with ``$lookup`` and ``$max`` as MongoDB has them,
``[batched]`` on a server that refuses both (the probe says so, the batched queries run).
"""

from __future__ import annotations

import numpy as np
import pytest
from bson import ObjectId

import pinnacle
from pinnacle.backends.base import Failure, WorkResult
from pinnacle.plugins.mongodb.reconcile import capture_sources, reconcile

from mongo_models import letters
from refusing import refuse


@pytest.fixture(params=["lookup", "batched"], autouse=True)
def aggregation(request, monkeypatch) -> str:
    if request.param == "batched":
        refuse(monkeypatch, "lookup", "max")
    return request.param


def _done(backend, spec):
    """Compute everything queued with a stand-in: the output is the text's length."""
    while True:
        with backend.claim_work(spec, 100) as claim:
            if not claim.items:
                return
            result = WorkResult()
            for item in claim.items:
                if item.row is None:
                    result.gone.append(item.source)
                elif "text" not in item.row:
                    result.failed.append((item.source, Failure("MissingColumn", "no text", 1)))
                else:
                    result.outputs.append((item.source, np.float32([len(item.row["text"])]).tobytes()))
            claim.commit(result)


def queued(raw, spec) -> list:
    return sorted(str(e["_source"]) for e in raw[spec.queue_table].find())


def test_reconcile_finds_outside_inserts_updates_and_deletes(listening, spec, raw):
    _done(listening, spec)
    assert reconcile(listening, spec) == 0  # all settled
    new_id = raw["docs"].insert_one({"text": "written by another app"}).inserted_id  # an ObjectId
    raw["docs"].update_one({"_id": "a"}, {"$set": {"text": "changed key"}})
    raw["docs"].update_one({"_id": "b"}, {"$set": {"topic": "not the key"}})
    raw["docs"].delete_one({"_id": "c"})
    assert reconcile(listening, spec) == 3
    assert queued(raw, spec) == sorted([str(new_id), "a", "c"])
    assert reconcile(listening, spec) == 0  # already queued (free entries): not queued twice
    _done(listening, spec)
    got = dict(listening.read_outputs(spec))
    assert set(got) == {"a", "b", str(new_id)}  # public ids: the ObjectId as hex
    assert np.frombuffer(got["a"], "<f4")[0] == len("changed key")
    assert reconcile(listening, spec) == 0


def test_rows_that_failed_are_settled_until_they_change(listening, spec, raw):
    raw["docs"].insert_one({"_id": "nokey", "body": "no text field"})
    assert reconcile(listening, spec) == 1
    _done(listening, spec)
    assert listening.queue_status(spec)["failed"] == 1
    assert reconcile(listening, spec) == 0  # its failure is recorded for these values
    raw["docs"].update_one({"_id": "nokey"}, {"$set": {"text": "now it has one"}})
    assert reconcile(listening, spec) == 1
    _done(listening, spec)
    assert listening.queue_status(spec)["failed"] == 0 and "nokey" in dict(listening.read_outputs(spec))
    raw["docs"].insert_one({"_id": "gone-bad", "body": "x"})
    reconcile(listening, spec)
    _done(listening, spec)
    raw["docs"].delete_one({"_id": "gone-bad"})  # the failure of a deleted row is cleared too
    assert reconcile(listening, spec) == 1
    _done(listening, spec)
    assert listening.queue_status(spec)["failed"] == 0


def test_capture_rules_free_held_and_settled(listening, spec, raw):
    _done(listening, spec)
    raw["docs"].update_one({"_id": "a"}, {"$set": {"text": "new a"}})
    raw["docs"].update_one({"_id": "b"}, {"$set": {"text": "new b"}})
    listening._enqueue([spec], ["a", "b"], None)  # a keeps a free entry: its claim will read the new text
    held = listening.claim_work(spec, 10, sources=["b"])  # b is read by a worker ... and changed after
    raw["docs"].update_one({"_id": "b"}, {"$set": {"text": "newer b"}})
    assert capture_sources(listening, spec, ["a", "b", "c"]) == 1  # only b: its worker may hold an old read
    assert queued(raw, spec) == ["a", "b", "b"]
    held.release()


def test_drain_catches_outside_writes_end_to_end(mdb, mongo_uri):
    from pinnacle.plugins.mongodb.client import open_raw

    _, raw = open_raw(mongo_uri)
    oid = raw["docs"].insert_one({"text": "gamma"}).inserted_id
    raw["docs"].update_one({"_id": "d1"}, {"$set": {"text": "delta"}})
    raw["docs"].delete_one({"_id": "d2"})
    assert mdb.status()["emb"]["pending"] == 0  # no triggers: nothing is known before a drain
    stats = mdb.drain()
    assert (stats.outputs, stats.removed) == (2, 1)
    outputs = mdb.outputs("emb")
    assert set(outputs) == {"d1", str(oid)}
    np.testing.assert_array_equal(outputs[str(oid)], letters("gamma"))
    np.testing.assert_array_equal(outputs["d1"], letters("delta"))
    assert mdb["docs"].like({"text": "gamma"}, vector_index="idx", n=1)[0]["_id"] == str(oid)
    assert mdb.drain().rows == 0


def test_worker_command_catches_outside_writes(mdb, mongo_uri):
    from pinnacle.cli import main
    from pinnacle.plugins.mongodb.client import open_raw

    _, raw = open_raw(mongo_uri)  # mongomock: the worker runs in this process to share the store
    raw["docs"].insert_one({"_id": "w1", "text": "epsilon"})
    assert main(["--db", mongo_uri, "worker", "--once"]) == 0
    np.testing.assert_array_equal(mdb.outputs("emb")["w1"], letters("epsilon"))


def test_a_crash_between_write_and_enqueue_is_repaired(mdb, mongo_uri, monkeypatch):
    backend = mdb.backend

    def crash(*args, **kwargs):
        raise RuntimeError("process died before enqueueing")

    monkeypatch.setattr(backend, "_enqueue", crash)
    try:
        mdb["docs"].insert([{"_id": "lost?", "text": "zeta"}])
    except RuntimeError:
        pass
    monkeypatch.undo()
    assert mdb["docs"].get("lost?") is not None and mdb.status()["emb"]["pending"] == 0
    mdb.drain()  # the reconcile pass finds it
    np.testing.assert_array_equal(mdb.outputs("emb")["lost?"], letters("zeta"))


def test_apply_backfills_object_id_documents(mongo_uri):
    from mongo_models import Letters

    db = pinnacle.connect(mongo_uri)
    ids = db["notes"].insert([{"text": "one"}, {"text": "two"}])
    db.apply(pinnacle.Listener("n-emb", model=Letters(identifier="l"), key="text", select=db["notes"]))
    assert set(db.outputs("n-emb")) == set(ids) and all(ObjectId.is_valid(i) for i in ids)
    db["notes"].update({"_id": ids[0]}, {"text": "uno"})
    np.testing.assert_array_equal(db.outputs("n-emb")[ids[0]], letters("uno"))
    db["notes"].delete({"_id": ids[1]})
    assert set(db.outputs("n-emb")) == {ids[0]}
    db.close()
