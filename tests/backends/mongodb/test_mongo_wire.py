"""What a real server sends back that mongomock hides (issue 17).

No server runs here, so each difference is reproduced without one: a ``bson`` round trip
shows what pymongo decodes, a server whose replies are not split stands in for one that
ignores the 16 MiB batch bound, a probe forced to fail stands in for a server without
``$lookup`` or ``$max``, and recorded replies stand in for a server's bulk replies. With
``PINNACLE_MONGODB_URI`` set, the tests that take ``mongo_uri`` run on that server too.
"""

from __future__ import annotations

import bson
import numpy as np
import pytest
from bson import Int64
from bson.binary import Binary
from pymongo.errors import BulkWriteError, ProtocolError

import pinnacle
from pinnacle.backends.base import WorkResult
from pinnacle.plugins.mongodb import claims, metadata
from pinnacle.plugins.mongodb.values import public_row
from pinnacle.plugins.mongodb.vectors import from_bson

from mongo_servers import stored_bytes


def as_sent(doc: dict) -> dict:
    """``doc`` as pymongo hands it back from a server: encoded to BSON and decoded."""
    return bson.decode(bson.encode(doc))


# -- 1. integers above 2^31 are BSON int64: pymongo decodes them as Int64 -------------------
def test_large_integers_come_back_as_int():
    row = {"_id": 2**40, "n": 2**40, "small": 3, "meta": {"k": [2**40, {"deep": 2**33}]}}
    sent = as_sent(row)
    assert type(sent["n"]) is Int64  # what a server gives pymongo; mongomock keeps int
    shown = public_row(sent)
    assert shown == row
    assert type(shown["_id"]) is int and type(shown["n"]) is int and type(shown["small"]) is int
    assert type(shown["meta"]["k"][0]) is int and type(shown["meta"]["k"][1]["deep"]) is int


def test_large_integers_through_the_backend(backend):
    ids = backend.insert("things", [{"_id": 2**40, "n": 2**40, "meta": {"a": [2**35]}}])
    assert ids == [2**40] and type(ids[0]) is int
    [got] = backend.select("things")
    assert got == {"_id": 2**40, "n": 2**40, "meta": {"a": [2**35]}}
    assert type(got["_id"]) is int and type(got["n"]) is int and type(got["meta"]["a"][0]) is int


# -- 2. binary subtype 0 decodes to bytes in pymongo, Binary in mongomock -------------------
def test_binary_subtype_0_comes_back_as_bytes(listening, spec, raw):
    with listening.claim_work(spec, 10, sources=["a"]) as claim:
        claim.commit(WorkResult(outputs=[("a", np.float32([1, 2]).tobytes())]))
    stored = raw[spec.outputs_table].find_one({"_source": "a"})
    sent = as_sent(stored)
    # the former expectation of test_mongo_claims, isinstance(..., Binary), is false on a server:
    assert type(sent["_output"]) is bytes and not isinstance(sent["_output"], Binary)
    for value in (stored["_output"], sent["_output"]):  # what the tests accept now: both
        assert stored_bytes(value) == np.float32([1, 2]).tobytes()
    assert from_bson(sent["_output"]) == from_bson(stored["_output"]) == np.float32([1, 2]).tobytes()
    assert public_row(sent, internal=True)["_output"] == np.float32([1, 2]).tobytes()
    assert from_bson(as_sent({"v": Binary(b"\x27\x00" + np.float32([3]).tobytes(), 9)})["v"]) == np.float32([3]).tobytes()


def test_binary_fields_of_documents_are_bytes_on_every_server(backend, raw):
    raw["files"].insert_one({"_id": "f", "blob": Binary(b"\x00\x01", 0), "tagged": Binary(b"\x02", 5)})  # another app
    [got] = backend.select("files")
    # pymongo gives bytes for subtype 0; mongomock gave Binary(b'\x00\x01', 0), which is != b'\x00\x01'
    assert got["blob"] == b"\x00\x01" and type(got["blob"]) is bytes
    assert got["tagged"] == Binary(b"\x02", 5)  # other subtypes stay Binary, as pymongo gives them
    assert public_row(as_sent({"blob": Binary(b"\x00\x01", 0)})) == {"blob": b"\x00\x01"}


# -- 3. artifact reads: one part per reply ---------------------------------------------------
class _UnsplitCursor:
    """A cursor of a server that does not split batches at 16 MiB: each reply holds the whole
    batch asked for (the first 101 documents, then all the rest) unless ``batch_size`` bounds it."""

    FIRST_BATCH = 101

    def __init__(self, cursor, server):
        self.cursor, self.server, self.size = cursor, server, 0

    def sort(self, *args, **kwargs):
        self.cursor = self.cursor.sort(*args, **kwargs)
        return self

    def limit(self, n):
        self.cursor = self.cursor.limit(n)
        return self

    def batch_size(self, n):
        self.size = n
        return self

    def close(self):
        self.cursor.close()

    def __iter__(self):
        docs = list(self.cursor)
        if self.size:
            replies = [docs[i : i + self.size] for i in range(0, len(docs), self.size)]
        else:
            replies = [r for r in (docs[: self.FIRST_BATCH], docs[self.FIRST_BATCH :]) if r]
        for reply in replies:
            size = len(bson.encode({"cursor": {"nextBatch": reply}, "ok": 1.0}))
            self.server.replies.append(size)
            if size > self.server.max_message:  # what pymongo raises for a reply over maxMessageSizeBytes
                raise ProtocolError(f"Message length ({size}) is larger than server max message size ({self.server.max_message})")
            yield from reply


class _UnsplitServer:
    """``backend.db`` seen through a server whose replies are as large as the batch asked for."""

    def __init__(self, db, max_message):
        self.db, self.max_message, self.replies = db, max_message, []

    def __getitem__(self, name):
        return _UnsplitCollection(self.db[name], self)

    def __getattr__(self, name):
        return getattr(self.db, name)


class _UnsplitCollection:
    def __init__(self, coll, server):
        self.coll, self.server = coll, server

    def find(self, *args, **kwargs):
        return _UnsplitCursor(self.coll.find(*args, **kwargs), self.server)

    def __getattr__(self, name):
        return getattr(self.coll, name)


def test_artifact_reads_hold_one_part_per_reply(backend, monkeypatch):
    # scaled down: parts of 1,000 bytes, a 12-part artifact, replies refused above 3,000 bytes
    # (as 8 MB parts, a 90 MB model and pymongo's 48 MB message limit)
    monkeypatch.setattr(metadata, "ARTIFACT_PART", 1000)
    data = bytes(range(256)) * 45  # 11,520 bytes: 12 parts
    backend.put_artifact("e" * 64, data)
    server = _UnsplitServer(backend.db, max_message=3000)
    monkeypatch.setattr(backend, "db", server)
    assert backend.get_artifact("e" * 64) == data
    assert len(server.replies) == 12 and max(server.replies) < 1200  # one part per reply
    assert backend.has_artifact("e" * 64)


def test_artifacts_written_by_the_current_layout_stay_readable(backend, raw):
    """Documents as put_artifact has written them so far: ``sha256``, ``part``, ``parts``, ``data``."""
    data = b"0123456789" * 300
    for i in range(3):
        raw["_pinnacle_artifacts"].insert_one({"sha256": "d" * 64, "part": i, "parts": 3, "data": Binary(data[i * 1000 : (i + 1) * 1000])})
    assert backend.has_artifact("d" * 64) and backend.get_artifact("d" * 64) == data
    raw["_pinnacle_artifacts"].delete_one({"sha256": "d" * 64, "part": 1})
    with pytest.raises(pinnacle.NotFoundError, match="missing"):
        backend.get_artifact("d" * 64)


# -- 5. bulk update replies: read by pinnacle, nModified not needed --------------------------
class _RecordedServer:
    """A collection whose ``update`` commands get the recorded replies, in order."""

    name = "_outputs__emb"

    def __init__(self, *replies):
        self.replies = list(replies)
        self.commands: list[dict] = []
        self.database = self

    def command(self, cmd):
        self.commands.append(dict(cmd))
        return self.replies.pop(0)


def _ops(n):
    return [({"_source": f"s{i}", "_seq": {"$lt": 5}}, {"$set": {"_seq": 5}}) for i in range(n)]


#: Replies of a MongoDB-compatible server to an unordered update command of 2 upserts.
ALL_ERRORED = {  # no nModified: every write hit the unique index (pymongo's bulk_write: KeyError)
    "n": 0, "ok": 1.0,
    "writeErrors": [
        {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error collection: db._outputs__emb index: _source_1 dup key: { _source: \"s0\" }"},
        {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key error collection: db._outputs__emb index: _source_1 dup key: { _source: \"s1\" }"},
    ],
}
ONE_LOST = {
    "n": 1, "nModified": 0, "ok": 1.0, "upserted": [{"index": 1, "_id": bson.ObjectId()}],
    "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error"}],
}
ALL_LANDED = {"n": 2, "nModified": 1, "ok": 1.0, "upserted": [{"index": 0, "_id": bson.ObjectId()}]}


def test_a_reply_without_nModified_is_read():
    server = _RecordedServer(ALL_ERRORED)
    assert claims.conditional_upserts(server, _ops(2), bulk=True) == [False, False]
    [cmd] = server.commands
    assert cmd["update"] == "_outputs__emb" and cmd["ordered"] is False
    assert [u["upsert"] for u in cmd["updates"]] == [True, True] and cmd["updates"][0]["q"]["_source"] == "s0"


def test_replies_say_which_upserts_landed():
    assert claims.conditional_upserts(_RecordedServer(ONE_LOST), _ops(2), bulk=True) == [False, True]
    assert claims.conditional_upserts(_RecordedServer(ALL_LANDED), _ops(2), bulk=True) == [True, True]
    assert claims.upsert_outcome({"ok": 1.0, "n": 2}, [{}, {}]) == [True, True]  # no nModified, no errors


def test_other_write_errors_and_write_concern_errors_raise():
    other = {"n": 0, "ok": 1.0, "writeErrors": [{"index": 1, "code": 121, "errmsg": "Document failed validation"}]}
    with pytest.raises(BulkWriteError) as caught:
        claims.conditional_upserts(_RecordedServer(other), _ops(2), bulk=True)
    assert caught.value.details["writeErrors"][0]["code"] == 121 and caught.value.details["nModified"] == 0
    concern = {"n": 2, "nModified": 2, "ok": 1.0, "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}}
    with pytest.raises(BulkWriteError):
        claims.conditional_upserts(_RecordedServer(concern), _ops(2), bulk=True)


def test_bulk_commands_are_bounded_by_count_and_bytes(monkeypatch):
    monkeypatch.setattr(claims, "BULK_OPS", 3)
    server = _RecordedServer(*[{"n": 3, "nModified": 3, "ok": 1.0}] * 3)
    server.replies[-1] = {"n": 1, "nModified": 1, "ok": 1.0}
    assert claims.conditional_upserts(server, _ops(7), bulk=True) == [True] * 7
    assert [len(c["updates"]) for c in server.commands] == [3, 3, 1]
    monkeypatch.setattr(claims, "BULK_OPS", 1000)
    monkeypatch.setattr(claims, "BULK_BYTES", 2000)
    big = [({"_source": i}, {"$set": {"_output": Binary(b"x" * 900)}}) for i in range(5)]
    server = _RecordedServer(*[{"n": 2, "nModified": 2, "ok": 1.0}] * 2 + [{"n": 1, "nModified": 1, "ok": 1.0}])
    assert claims.conditional_upserts(server, big, bulk=True) == [True] * 5
    assert [len(c["updates"]) for c in server.commands] == [2, 2, 1]


class _CommandsOnMongomock:
    """``backend.db`` whose ``update`` commands run on mongomock, answered as the server of
    ``ALL_ERRORED`` does: ``nModified`` only when some write landed."""

    def __init__(self, db):
        self.db = db

    def __getitem__(self, name):
        coll = self.db[name]
        return type("Coll", (), {"name": name, "database": self, "__getattr__": lambda _, a: getattr(coll, a)})()

    def __getattr__(self, name):
        return getattr(self.db, name)

    def command(self, cmd, *args, **kwargs):
        from pymongo.errors import DuplicateKeyError

        coll = self.db[cmd["update"]]
        errors, landed = [], 0
        for i, statement in enumerate(cmd["updates"]):
            try:
                coll.update_one(statement["q"], statement["u"], upsert=statement["upsert"])
                landed += 1
            except DuplicateKeyError as exc:
                errors.append({"index": i, "code": 11000, "errmsg": str(exc)})
        reply = {"n": landed, "ok": 1.0}
        if landed:
            reply["nModified"] = landed
        if errors:
            reply["writeErrors"] = errors
        return reply


def test_a_stale_bulk_commit_whose_every_write_errored(listening, spec, raw, monkeypatch):
    old = listening.claim_work(spec, 10, sources=["a", "b"])
    for s in "ab":  # newer results for both: the old claim's two upserts both hit the unique index
        raw[spec.outputs_table].insert_one({"_source": s, "_output": Binary(b"new!"), "_seq": 99, "_updated_at": 1.0})
    monkeypatch.setattr(listening, "is_mock", False)  # the bulk path, as on a server
    monkeypatch.setattr(listening, "db", _CommandsOnMongomock(listening.db))
    committed, _ = old.commit(WorkResult(outputs=[("a", b"old!"), ("b", b"old!")]))
    assert committed == set()
    monkeypatch.undo()
    assert {s: bytes(v) for s, v in listening.read_outputs(spec)} == {"a": b"new!", "b": b"new!"}
    assert raw[spec.queue_table].count_documents({"_source": {"$in": ["a", "b"]}}) == 0
    with listening.claim_work(spec, 10, sources=["c"]) as claim:  # and a bulk commit that lands
        monkeypatch.setattr(listening, "is_mock", False)
        monkeypatch.setattr(listening, "db", _CommandsOnMongomock(listening.db))
        assert claim.commit(WorkResult(outputs=[("c", b"cccc")]))[0] == {"c"}
    monkeypatch.undo()
    assert dict(listening.read_outputs(spec))["c"] == b"cccc"


# -- the same, through pymongo's network path: a MongoDB-compatible server that behaves so ----
@pytest.fixture
def odd_server():
    """``odd_server(**flags)``: the URI of a fresh database on a wire server (``wire_server.py``:
    mongomock behind the wire protocol) with ``flags`` (``split``, ``without``,
    ``omit_nmodified``, ``max_message``), stopped after the test."""
    from wire_server import Backend, serve

    servers = []

    def start(**flags):
        server = serve(0, Backend(**flags))
        servers.append(server)
        return server.uri("pn_odd")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_over_the_wire_a_server_that_does_not_split_replies(odd_server, monkeypatch):
    from pinnacle.plugins.mongodb import connect

    monkeypatch.setattr(metadata, "ARTIFACT_PART", 1024 * 1024)
    uri = odd_server(split=False, max_message=4_000_000)  # scaled: 1 MB parts, a 4 MB message limit
    backend = connect(uri)
    data = np.random.default_rng(0).bytes(6 * 1024 * 1024)
    backend.put_artifact("c" * 64, data)
    assert backend.get_artifact("c" * 64) == data
    with pytest.raises(ProtocolError, match="larger than server max message size"):  # the former read
        list(backend.db["_pinnacle_artifacts"].find({"sha256": "c" * 64}).sort("part", 1))
    backend.close()


def test_over_the_wire_a_reply_without_nModified(odd_server):
    from pymongo import UpdateOne

    from pinnacle.plugins.mongodb import connect

    backend = connect(odd_server(omit_nmodified=True))
    coll = backend.db["_outputs__x"]
    coll.create_index("_source", unique=True)
    coll.insert_one({"_source": "s", "_seq": 9})
    stale = [UpdateOne({"_source": "s", "_seq": {"$lt": 5}}, {"$set": {"_seq": 5}}, upsert=True)]
    with pytest.raises(KeyError, match="nModified"):  # pymongo's own bulk_write on such a server
        coll.bulk_write(stale, ordered=False)
    ops = [({"_source": "s", "_seq": {"$lt": 5}}, {"$set": {"_seq": 5}}), ({"_source": "t", "_seq": {"$lt": 5}}, {"$set": {"_seq": 5}})]
    assert claims.conditional_upserts(coll, ops[:1], bulk=True) == [False]  # every write errored
    assert claims.conditional_upserts(coll, ops, bulk=True) == [False, True]
    assert coll.find_one({"_source": "s"})["_seq"] == 9 and coll.find_one({"_source": "t"})["_seq"] == 5
    backend.close()


def test_over_the_wire_a_server_without_lookup_and_max(odd_server):
    from pinnacle.plugins.mongodb import connect
    from pinnacle.plugins.mongodb.client import open_raw

    uri = odd_server(without=["lookup", "max"])
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": "d1", "text": "alpha"}, {"_id": 2**40, "text": "beta"}])
    from mongo_models import Letters

    db.apply(pinnacle.Listener("emb", model=Letters(identifier="letters"), key="text", select=db["docs"]))
    assert db.backend.aggregations.known["lookup"] is False  # the backfill ran the batched pass
    _, raw = open_raw(uri)
    raw["docs"].insert_one({"_id": "d3", "text": "gamma"})  # another application
    raw["docs"].delete_one({"_id": "d1"})
    stats = db.drain()
    assert (stats.outputs, stats.removed) == (1, 1)
    outputs = db.outputs("emb")
    assert set(outputs) == {2**40, "d3"} and all(type(k) in (int, str) for k in outputs)
    spec = next(iter(db.backend.listeners_on("docs")))
    assert db.backend.outputs_version(spec)[0] == 2
    assert db.backend.aggregations.known == {"lookup": False, "max": False}
    db.close()
    assert connect(uri).aggregations.has("lookup") is False


def test_over_the_wire_a_stale_commit_whose_every_write_errored(odd_server):
    from pinnacle.backends.base import ListenerSpec
    from pinnacle.plugins.mongodb import connect

    backend = connect(odd_server(omit_nmodified=True))
    spec = ListenerSpec("emb", "docs", ("text",), "uuid-1")
    backend.insert("docs", [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}])
    backend.create_listener(spec)
    old = backend.claim_work(spec, 10)
    for s in "ab":  # newer results meanwhile: every upsert of the old claim hits the unique index
        backend.db[spec.outputs_table].insert_one({"_source": s, "_output": b"new!", "_seq": 99, "_updated_at": 1.0})
    assert old.commit(WorkResult(outputs=[("a", b"old!"), ("b", b"old!")]))[0] == set()
    assert dict(backend.read_outputs(spec)) == {"a": b"new!", "b": b"new!"}
    assert backend.queue_status(spec)["pending"] == 0
    backend.close()
