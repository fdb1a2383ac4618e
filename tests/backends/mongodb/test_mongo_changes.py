"""Change streams: events queue the right documents, the resume token is kept and used.

mongomock has no change streams, so a fake stream replays events the way pymongo's
``ChangeStream`` hands them out (``try_next()``, ``resume_token``).
"""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from pinnacle.backends.base import WorkResult
from pinnacle.plugins.mongodb.changes import TOKEN_KEY, ChangeCapture


class FakeStream:
    def __init__(self, events, start=0):
        self.events = events  # the server's oplog: later events show up
        self.position = start
        self.closed = False
        self.resume_token = {"_data": f"t{start}"} if start else None

    def try_next(self):
        if self.position >= len(self.events):
            return None
        event = self.events[self.position]
        self.position += 1
        self.resume_token = {"_data": f"t{self.position}"}
        return event

    def close(self):
        self.closed = True


class FakeServer:
    """``open_stream`` of a server whose oplog holds ``events``; records each opening."""

    def __init__(self, events=()):
        self.events = list(events)
        self.opened: list[tuple[list, object]] = []
        self.fail_with = None

    def __call__(self, pipeline, resume_after):
        self.opened.append((pipeline, resume_after))
        if self.fail_with is not None:
            raise self.fail_with
        start = int(resume_after["_data"][1:]) if resume_after else len(self.events)
        self.stream = FakeStream(self.events, start)
        return self.stream


def ev(op, _id, coll="docs", **extra):
    return {"operationType": op, "ns": {"db": "x", "coll": coll}, "documentKey": {"_id": _id}, **extra}


def settle(backend, spec):
    with backend.claim_work(spec, 100) as claim:
        claim.commit(WorkResult(outputs=[(i.source, b"\0\0\0\0") for i in claim.items if i.row is not None],
                                gone=[i.source for i in claim.items if i.row is None]))


def test_events_queue_inserts_key_updates_replaces_and_deletes(listening, spec, raw):
    settle(listening, spec)
    server = FakeServer()
    capture = ChangeCapture(listening, open_stream=server)
    assert capture.poll([spec]) == 0 and len(server.opened) == 1  # opened at the end of the oplog
    # other clients write; their events arrive
    raw["docs"].insert_one({"_id": "n1", "text": "new"})
    raw["docs"].update_one({"_id": "a"}, {"$set": {"text": "a changed"}})
    raw["docs"].update_one({"_id": "b"}, {"$set": {"topic": "x"}})
    raw["docs"].replace_one({"_id": "c"}, {"_id": "c", "text": "c replaced"})
    raw["other"].insert_one({"_id": "o1", "text": "not watched"})
    server.events += [
        ev("insert", "n1"),
        ev("update", "a", updateDescription={"updatedFields": {"text": "a changed"}, "removedFields": []}),
        ev("update", "b", updateDescription={"updatedFields": {"topic": "x"}, "removedFields": []}),
        ev("replace", "c"),
        ev("insert", "o1", coll="other"),
    ]
    assert capture.poll([spec]) == 3
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["a", "c", "n1"]
    assert listening.get_state(TOKEN_KEY) == '{"_data": "t5"}'  # saved after the queue writes
    raw["docs"].delete_one({"_id": "n1"})
    server.events.append(ev("delete", "n1"))
    assert capture.poll([spec]) == 0  # n1 still has a free entry: its claim will see the delete
    settle(listening, spec)
    assert "n1" not in dict(listening.read_outputs(spec))


def test_pinnacle_s_own_writes_are_not_queued_twice(listening, spec, raw):
    settle(listening, spec)
    server = FakeServer()
    capture = ChangeCapture(listening, open_stream=server)
    capture.poll([spec])
    listening.insert("docs", [{"_id": "p1", "text": "through pinnacle"}])  # queued by the write path
    server.events.append(ev("insert", "p1"))
    assert capture.poll([spec]) == 0  # a free entry exists
    settle(listening, spec)
    server.events.append(ev("insert", "p1"))  # a late event for a row already computed
    assert capture.poll([spec]) == 0  # its output matches the document
    assert raw[spec.queue_table].count_documents({}) == 0


def test_a_restarted_worker_resumes_after_the_saved_token(listening, spec, raw):
    settle(listening, spec)
    server = FakeServer([ev("insert", "x0")])
    first = ChangeCapture(listening, open_stream=server)
    first.poll([spec])
    first.close()  # the worker stops; two writes happen while it is down
    raw["docs"].insert_many([{"_id": "x1", "text": "one"}, {"_id": "x2", "text": "two"}])
    server.events += [ev("insert", "x1"), ev("insert", "x2")]
    second = ChangeCapture(listening, open_stream=server)
    assert second.poll([spec]) == 2
    assert server.opened[-1][1] == {"_data": "t1"}  # resumed where the first one stopped
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["x1", "x2"]


def test_lost_history_restarts_from_now_and_asks_for_a_reconcile(listening, spec):
    listening.set_state(TOKEN_KEY, '{"_data": "t42"}')
    server = FakeServer()
    server.fail_with = OperationFailure("Resume of change stream was not possible", code=286)
    capture = ChangeCapture(listening, open_stream=server)
    capture.needs_reconcile = False
    assert capture.poll([spec]) == 0
    assert capture.needs_reconcile and listening.get_state(TOKEN_KEY) is None
    server.fail_with = None
    capture.poll([spec])
    assert server.opened[-1][1] is None  # from now on


def test_invalidate_and_drop_events_ask_for_a_reconcile(listening, spec):
    server = FakeServer()
    capture = ChangeCapture(listening, open_stream=server)
    capture.poll([spec])
    capture.needs_reconcile = False
    server.events.append({"operationType": "drop", "ns": {"db": "x", "coll": "docs"}})
    capture.poll([spec])
    assert capture.needs_reconcile
    capture.needs_reconcile = False
    server.events.append({"operationType": "invalidate"})
    capture.poll([spec])
    assert capture.needs_reconcile and server.stream.closed and listening.get_state(TOKEN_KEY) is None


def test_the_stream_follows_the_watched_collections(listening, spec):
    from pinnacle.backends.base import ListenerSpec

    server = FakeServer()
    capture = ChangeCapture(listening, open_stream=server)
    capture.poll([spec])
    capture.poll([spec])
    assert len(server.opened) == 1  # kept open between polls
    other = ListenerSpec("emb2", "notes", ("body",))
    capture.poll([spec, other])
    assert len(server.opened) == 2
    match = server.opened[-1][0][0]["$match"]["$or"][0]
    assert match["ns.coll"] == {"$in": ["docs", "notes"]}


def test_worker_polls_the_stream_and_reconciles_at_start_then_every_interval(listening, spec, monkeypatch):
    from pinnacle.plugins.mongodb import listeners

    server = FakeServer()
    passes = []
    monkeypatch.setattr(listeners, "reconcile", lambda backend, s: passes.append(s.storage_name) or 0)
    listening.change_streams = True  # as on a replica set
    listening._changes = ChangeCapture(listening, open_stream=server)
    listening._reconciled.clear()
    listening.capture_outside_writes([spec])
    listening.capture_outside_writes([spec])
    assert passes == ["emb"] and len(server.opened) == 1  # once at start; then the stream does it
    listening._changes.needs_reconcile = True  # e.g. history lost
    listening.capture_outside_writes([spec])
    assert passes == ["emb", "emb"]


@pytest.mark.parametrize("every, expected", [(None, 3), (3600.0, 1)])
def test_without_a_stream_every_drain_reconciles(mongo_uri, spec, monkeypatch, every, expected):
    from pinnacle.plugins.mongodb import connect, listeners

    backend = connect(mongo_uri, reconcile_every=every, change_stream="off")  # as on a standalone server
    backend.insert("docs", [{"_id": "a", "text": "x"}])
    backend.create_listener(spec)
    backend._reconciled.clear()
    passes = []
    monkeypatch.setattr(listeners, "reconcile", lambda b, s: passes.append(s) or 0)
    for _ in range(3):
        backend.capture_outside_writes([spec])
    assert len(passes) == expected
    backend.close()
