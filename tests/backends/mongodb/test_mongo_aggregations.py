"""$lookup and $max: probed once per backend; servers without them get batched queries (issue 17)."""

from __future__ import annotations

import logging
import time

import pytest
from pymongo.errors import AutoReconnect

from pinnacle.backends.base import WorkResult
from pinnacle.plugins.mongodb import aggregations
from pinnacle.plugins.mongodb.reconcile import reconcile

from refusing import refuse


def _settle(backend, spec):
    with backend.claim_work(spec, 100) as claim:
        claim.commit(WorkResult(outputs=[(i.source, b"\0\0\0\0") for i in claim.items if i.row is not None],
                                gone=[i.source for i in claim.items if i.row is None]))


def _outside_writes(raw, spec):
    """Another application inserts, changes a key, deletes; pinnacle leaves an orphaned failure."""
    raw["docs"].insert_one({"_id": "new", "text": "written elsewhere"})
    raw["docs"].update_one({"_id": "a"}, {"$set": {"text": "a changed"}})
    raw["docs"].delete_one({"_id": "c"})
    raw[spec.failed_table].insert_one({"_source": "ghost", "error_type": "X", "message": "m", "attempts": 1,
                                       "failed_at": time.time(), "_seq": 1, "_key_hash": "h"})


def test_the_probe_runs_once_and_finds_both_on_mongodb_mongomock_and_the_wire(backend, monkeypatch):
    seen: list = []
    refuse(monkeypatch, seen=seen, classes=[type(backend.db["_pinnacle_state"])])  # refuses nothing: records the client's pipelines
    assert backend.aggregations.has("lookup") and backend.aggregations.has("lookup") and backend.aggregations.has("max")
    probes = [p for p in seen if p[0] == {"$match": {"_id": aggregations.PROBE_KEY}}]
    assert len(probes) == 2  # one per feature, then remembered
    assert backend.aggregations.known == {"lookup": True, "max": True}


def test_a_server_without_lookup_and_max_gets_batched_queries(listening, spec, raw, mongo_uri, monkeypatch, caplog):
    from pinnacle.plugins.mongodb import connect

    _settle(listening, spec)
    _outside_writes(raw, spec)
    seen: list = []
    refuse(monkeypatch, "lookup", "max", seen=seen)
    backend = connect(mongo_uri)  # connected to a server that lacks both
    with caplog.at_level(logging.WARNING, logger="pinnacle.plugins.mongodb.aggregations"):
        assert reconcile(backend, spec) == 4  # new, a (key changed), c (deleted), ghost (failure without document)
        assert backend.outputs_version(spec)[0] == 3
    assert backend.aggregations.known == {"lookup": False, "max": False}
    assert "does not run $lookup (Unrecognized pipeline stage name: '$lookup')" in caplog.text
    assert "does not run the $max accumulator" in caplog.text
    assert sorted(str(e["_source"]) for e in raw[spec.queue_table].find()) == ["a", "c", "ghost", "new"]
    seen.clear()
    raw[spec.queue_table].delete_many({})
    assert reconcile(backend, spec) == 4 and backend.outputs_version(spec)[0] == 3
    assert [p for p in seen if "$lookup" in str(p) or "$max" in str(p)] == []  # the probe is not tried again
    backend.close()


def test_both_ways_find_the_same_documents(listening, spec, raw, monkeypatch):
    _settle(listening, spec)
    _outside_writes(raw, spec)
    assert reconcile(listening, spec) == 4
    native = sorted(str(e["_source"]) for e in raw[spec.queue_table].find())
    version = listening.outputs_version(spec)
    raw[spec.queue_table].delete_many({})
    listening.aggregations.known.update(lookup=False, max=False)  # forced: the probe reports "unsupported"
    assert reconcile(listening, spec) == 4
    assert sorted(str(e["_source"]) for e in raw[spec.queue_table].find()) == native
    assert listening.outputs_version(spec) == version


def test_the_batched_pass_reads_in_batches(listening, spec, raw, monkeypatch):
    from pinnacle.plugins.mongodb import reconcile as module

    monkeypatch.setattr(module, "BATCH", 2)
    raw["docs"].insert_many([{"_id": f"x{i}", "text": f"t{i}"} for i in range(5)])
    listening.aggregations.known["lookup"] = False
    raw[spec.queue_table].delete_many({})
    assert reconcile(listening, spec) == 8  # a, b, c and x0..x4 have no output yet


def test_a_wrong_answer_counts_as_unsupported(backend, monkeypatch):
    state = type(backend.db["_pinnacle_state"])  # mongomock's Collection, or pymongo's
    monkeypatch.setattr(state, "aggregate", lambda self, pipeline, **kw: iter([{"found": 0}]))
    found = aggregations.Aggregations(backend.db, backend.safe_uri)
    assert found.has("lookup") is False


def test_a_lost_connection_is_not_an_answer(backend, monkeypatch):
    found = aggregations.Aggregations(backend.db, backend.safe_uri)
    calls = []
    state = type(backend.db["_pinnacle_state"])
    real = state.aggregate

    def flaky(self, pipeline, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise AutoReconnect("connection closed")
        return real(self, pipeline, *args, **kwargs)

    monkeypatch.setattr(state, "aggregate", flaky)
    with pytest.raises(AutoReconnect):
        found.has("max")
    assert found.known == {}  # not remembered: asked again next time
    assert found.has("max") is True
