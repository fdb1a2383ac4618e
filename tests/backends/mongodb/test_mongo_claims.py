"""Claims and commits without locks: leases, sequence numbers, tombstones, failures."""

from __future__ import annotations

import time

import numpy as np
from bson.binary import Binary

from pinnacle.backends.base import Failure, WorkResult

from mongo_servers import stored_bytes


def vec(x: float) -> bytes:
    return np.full(4, x, dtype="<f4").tobytes()


def outputs(backend, spec) -> dict:
    return dict(backend.read_outputs(spec))


def test_claim_commit_and_exactly_one_output(listening, spec, raw):
    with listening.claim_work(spec, 10) as claim:
        assert sorted(i.source for i in claim.items) == ["a", "b", "c"]
        assert claim.items[0].row == {"_id": "a", "text": "text of a"}
        committed, stamp = claim.commit(WorkResult(outputs=[(i.source, vec(1)) for i in claim.items]))
    assert committed == {"a", "b", "c"}
    assert raw[spec.queue_table].count_documents({}) == 0
    stored = raw[spec.outputs_table].find_one({"_source": "a"})
    assert stored_bytes(stored["_output"]) == vec(1)  # float32 bytes, compact (bytes on a server, Binary on mongomock)
    assert stored["_model_uuid"] == "uuid-1" and stored["_updated_at"] == stamp and stored["_key_hash"]
    assert outputs(listening, spec) == {s: vec(1) for s in "abc"}
    assert listening.queue_status(spec) == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 3}
    assert listening.outputs_version(spec) == (3, stamp)
    assert dict(listening.output_stamps(spec)) == {s: stamp for s in "abc"}


def test_two_claims_take_disjoint_entries(listening, spec):
    first = listening.claim_work(spec, 2)
    second = listening.claim_work(spec, 10)
    assert len(first.items) == 2 and len(second.items) == 1
    assert not {i.source for i in first.items} & {i.source for i in second.items}
    assert listening.queue_status(spec)["in_flight"] == 3
    first.release()
    assert listening.queue_status(spec)["in_flight"] == 1
    again = listening.claim_work(spec, 10)
    assert len(again.items) == 2


def test_lease_of_a_crashed_worker_ends(listening, spec, raw):
    crashed = listening.claim_work(spec, 10)  # never committed nor released
    assert len(crashed.items) == 3 and len(listening.claim_work(spec, 10).items) == 0
    raw[spec.queue_table].update_many({}, {"$set": {"claimed_until": time.time() - 1}})  # the lease ends
    assert listening.queue_status(spec)["in_flight"] == 0
    with listening.claim_work(spec, 10) as claim:
        assert len(claim.items) == 3
        claim.commit(WorkResult(outputs=[(i.source, vec(2)) for i in claim.items]))
    # the crashed worker wakes up: it owns nothing any more and writes nothing
    assert crashed.commit(WorkResult(outputs=[(i.source, vec(9)) for i in crashed.items]))[0] == set()
    assert outputs(listening, spec) == {s: vec(2) for s in "abc"}


def test_stale_result_never_overwrites_a_newer_one(listening, spec, raw):
    old = listening.claim_work(spec, 10, sources=["a"])
    assert old.seq == 1
    # meanwhile a newer result for "a" was committed (e.g. by a worker that read a later state)
    raw[spec.outputs_table].insert_one({"_source": "a", "_output": Binary(vec(5)), "_seq": 7, "_updated_at": 1.0, "_key_hash": "h"})
    committed, _ = old.commit(WorkResult(outputs=[("a", vec(1))]))
    assert committed == set()  # upsert hit the unique index: a newer result is there
    assert outputs(listening, spec)["a"] == vec(5)
    assert raw[spec.queue_table].count_documents({"_source": "a"}) == 0  # the entry is done all the same
    # an equal-or-newer claim does write
    listening.update("docs", {"_id": "a"}, {"text": "changed"})
    with listening.claim_work(spec, 10, sources=["a"]) as newer:
        newer.seq = 8  # as if the counter had moved on
        assert newer.commit(WorkResult(outputs=[("a", vec(3))]))[0] == {"a"}
    assert outputs(listening, spec)["a"] == vec(3)


def test_deletes_leave_tombstones_that_block_older_results(listening, spec, raw):
    with listening.claim_work(spec, 10) as claim:
        claim.commit(WorkResult(outputs=[(i.source, vec(1)) for i in claim.items]))
    listening.update("docs", {"_id": "b"}, {"text": "b again"})
    slow = listening.claim_work(spec, 10, sources=["b"])  # reads "b again", then stalls
    assert slow.items[0].row["text"] == "b again"
    listening.delete("docs", {"_id": "b"})
    with listening.claim_work(spec, 10, sources=["b"]) as claim:  # the delete's entry
        assert claim.items[0].row is None and claim.seq > slow.seq
        assert claim.commit(WorkResult(gone=["b"]))[0] == {"b"}
    tomb = raw[spec.outputs_table].find_one({"_source": "b"})
    assert tomb["_deleted"] is True and "_output" not in tomb
    assert "b" not in outputs(listening, spec) and listening.queue_status(spec)["outputs"] == 2
    assert listening.outputs_version(spec)[0] == 2 and "b" not in dict(listening.output_stamps(spec))
    assert listening.select(spec.outputs_table, {}) and all(r["_source"] != "b" for r in listening.select(spec.outputs_table))
    # the stalled worker commits its older result: the tombstone wins
    assert slow.commit(WorkResult(outputs=[("b", vec(9))]))[0] == set()
    assert "b" not in outputs(listening, spec)
    # inserting "b" again brings a new output over the tombstone
    listening.insert("docs", [{"_id": "b", "text": "reborn"}])
    with listening.claim_work(spec, 10, sources=["b"]) as claim:
        assert claim.commit(WorkResult(outputs=[("b", vec(4))]))[0] == {"b"}
    assert outputs(listening, spec)["b"] == vec(4)


def test_old_tombstones_are_purged_by_reconcile(listening, spec, raw):
    from pinnacle.plugins.mongodb.reconcile import reconcile

    raw[spec.outputs_table].insert_one({"_source": "zz", "_deleted": True, "_seq": 1, "_updated_at": time.time() - 10 * 86400})
    raw[spec.outputs_table].insert_one({"_source": "zy", "_deleted": True, "_seq": 2, "_updated_at": time.time()})
    reconcile(listening, spec)
    assert [d["_source"] for d in raw[spec.outputs_table].find({"_deleted": True})] == ["zy"]


def test_retry_then_park_then_requeue(listening, spec, raw):
    later = time.time() + 60
    with listening.claim_work(spec, 10) as claim:
        result = WorkResult(
            outputs=[("a", vec(1))],
            retry=[("b", 1, later)],
            failed=[("c", Failure("InvalidInput", "Listener 'emb', row 'c': empty", 1))],
        )
        assert claim.commit(result)[0] == {"a", "b", "c"}
    entry = raw[spec.queue_table].find_one({"_source": "b"})
    assert (entry["attempts"], entry["not_before"], entry["owner"]) == (1, later, None)
    assert listening.queue_status(spec) == {"pending": 1, "in_flight": 0, "retrying": 1, "failed": 1, "outputs": 1}
    assert len(listening.claim_work(spec, 10).items) == 0  # "b" is not due yet
    [failure] = listening.failures(spec)
    assert failure["_source"] == "c" and failure["error_type"] == "InvalidInput" and failure["attempts"] == 1
    assert listening.requeue_failed(spec) == 1
    assert listening.queue_status(spec)["failed"] == 0
    with listening.claim_work(spec, 10) as claim:
        assert [i.source for i in claim.items] == ["c"]
        claim.commit(WorkResult(outputs=[("c", vec(3))]))
    assert sorted(outputs(listening, spec)) == ["a", "c"]


def test_a_failure_older_than_the_output_is_not_kept(listening, spec, raw):
    slow = listening.claim_work(spec, 10, sources=["a"])
    raw[spec.outputs_table].insert_one({"_source": "a", "_output": Binary(vec(5)), "_seq": 99, "_updated_at": 1.0})
    committed, _ = slow.commit(WorkResult(failed=[("a", Failure("Boom", "old failure", 3))]))
    assert committed == set() and raw[spec.failed_table].count_documents({}) == 0


def test_a_newer_output_clears_the_failure(listening, spec, raw):
    with listening.claim_work(spec, 10, sources=["a"]) as claim:
        claim.commit(WorkResult(failed=[("a", Failure("InvalidInput", "empty", 1))]))
    listening.update("docs", {"_id": "a"}, {"text": "fixed"})
    with listening.claim_work(spec, 10, sources=["a"]) as claim:
        claim.commit(WorkResult(outputs=[("a", vec(1))]))
    assert raw[spec.failed_table].count_documents({}) == 0
