"""Server features and options: when transactions and change streams are used, and how."""

from __future__ import annotations

import numpy as np
import pytest
from bson.binary import Binary

from pinnacle import BackendError, ConfigError
from pinnacle.plugins.mongodb import connect
from pinnacle.plugins.mongodb.client import Options, decide, mask_password, server_features
from pinnacle.plugins.mongodb.vectors import from_bson, to_bson


@pytest.mark.parametrize(
    "hello, expected",
    [
        (None, ("standalone", False, False)),
        ({"isWritablePrimary": True, "maxWireVersion": 21}, ("standalone", False, False)),
        ({"setName": "rs0", "maxWireVersion": 21}, ("replica set", True, True)),
        ({"setName": "rs0", "maxWireVersion": 6}, ("replica set", False, True)),  # MongoDB 3.6
        ({"msg": "isdbgrid", "maxWireVersion": 21}, ("sharded", True, True)),
        ({"msg": "isdbgrid", "maxWireVersion": 7}, ("sharded", False, True)),  # 4.0 mongos
    ],
)
def test_server_features(hello, expected):
    found = server_features(hello)
    assert (found.kind, found.transactions, found.change_streams) == expected


def test_decide():
    assert decide("auto", True, "transactions", "u", "replica set") is True
    assert decide("auto", False, "transactions", "u", "standalone") is False
    assert decide("off", True, "transactions", "u", "replica set") is False
    with pytest.raises(ConfigError, match="replica set"):
        decide("on", False, "transactions", "mongodb://h/db", "standalone")


def test_options_from_uri_and_keywords():
    uri, opts, rest = Options.split(
        "mongodb://u:pw@h1,h2/db?replicaSet=rs0&lease_s=30&transactions=off", {"reconcile_every": 5, "appname": "x"}
    )
    assert uri == "mongodb://u:pw@h1,h2/db?replicaSet=rs0"
    assert (opts.lease_s, opts.transactions, opts.reconcile_every) == (30.0, "off", 5)
    assert rest == {"appname": "x"}
    with pytest.raises(ConfigError, match="valid ones"):
        Options(transactions="maybe")
    with pytest.raises(ConfigError, match="seconds"):
        Options.split("mongodb://h/db?lease_s=soon", {})
    assert mask_password("mongodb+srv://app:s3cr@t@cluster0.example.net/db") == "mongodb+srv://app:***@cluster0.example.net/db"


@pytest.mark.mongomock_only("checks what mongomock lacks")
def test_mongomock_has_no_transactions_or_change_streams(mongo_uri):
    backend = connect(mongo_uri)
    assert (backend.features.kind, backend.transactions, backend.change_streams) == ("mongomock", False, False)
    assert "mongomock" in repr(backend) and backend.capture_outside_writes([]) == 0
    with pytest.raises(ConfigError, match="transactions='on'"):
        connect(mongo_uri, transactions="on")
    with pytest.raises(ConfigError, match="change_stream='on'"):
        connect(mongo_uri + "?change_stream=on")
    with pytest.raises(NotImplementedError, match="this process"):
        backend.worker_uri()


class FakeSession:
    """A session whose transactions are recorded. Falsy, so mongomock takes ``session=`` as no session."""

    def __init__(self, log):
        self.log = log

    def __bool__(self):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def with_transaction(self, callback):
        self.log.append("begin")
        try:
            value = callback(self)
        except BaseException:
            self.log.append("abort")
            raise
        self.log.append("commit")
        return value


@pytest.mark.mongomock_only("a falsy fake session stands in for a transaction: mongomock ignores it, pymongo refuses it")
def test_writes_and_their_queue_entries_share_one_transaction(listening, spec, raw, monkeypatch):
    log: list[str] = []
    listening.transactions = True  # as on a replica set
    monkeypatch.setattr(listening.client, "start_session", lambda: FakeSession(log), raising=False)
    seen_sessions = []
    real_enqueue = listening._enqueue

    def enqueue(specs, ids, session):
        seen_sessions.append(session)
        log.append(f"enqueue {sorted(map(str, ids))}")
        return real_enqueue(specs, ids, session)

    monkeypatch.setattr(listening, "_enqueue", enqueue)
    raw[spec.queue_table].delete_many({})
    listening.insert("docs", [{"_id": "t1", "text": "in a transaction"}])
    listening.update("docs", {"_id": "t1"}, {"text": "changed"})
    listening.delete("docs", {"_id": "t1"})
    assert log == ["begin", "enqueue ['t1']", "commit"] * 3
    assert all(isinstance(s, FakeSession) for s in seen_sessions)  # the queue write is in the write's session
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["t1", "t1", "t1"]

    def fail(specs, ids, session):
        raise RuntimeError("enqueue failed")

    monkeypatch.setattr(listening, "_enqueue", fail)
    log.clear()
    with pytest.raises(RuntimeError):
        listening.insert("docs", [{"_id": "t2", "text": "x"}])
    assert log == ["begin", "abort"]  # a real server rolls the insert back with the transaction


def test_without_transactions_the_queue_follows_the_write(listening, spec, raw, monkeypatch):
    def no_sessions():
        raise AssertionError("no session without transactions")

    monkeypatch.setattr(listening.client, "start_session", no_sessions, raising=False)
    listening.transactions = False  # as on a standalone server (a replica set would have them)
    raw[spec.queue_table].delete_many({})
    listening.insert("docs", [{"_id": "s1", "text": "x"}])
    assert [e["_source"] for e in raw[spec.queue_table].find()] == ["s1"]
    with pytest.raises(BackendError, match="duplicate _id"):
        listening.insert("docs", [{"_id": "s2", "text": "y"}, {"_id": "s1", "text": "duplicate"}])
    # s2 got in before the duplicate stopped the insert: it is queued all the same
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["s1", "s2"]


def test_bson_vectors_round_trip():
    data = np.arange(384, dtype="<f4").tobytes()
    stored = to_bson(data)
    assert isinstance(stored, Binary) and stored.subtype == 0 and len(stored) == 384 * 4
    assert from_bson(stored) == data
    as_vector = Binary(bytes([0x27, 0]) + data, 9)  # BSON vector subtype, float32, as Atlas writes it
    np.testing.assert_array_equal(np.frombuffer(from_bson(as_vector), "<f4"), np.arange(384, dtype="<f4"))
    assert from_bson(None) is None
