"""Every pymongo error leaves the backend as BackendError (issue 13), connection failures included."""

from __future__ import annotations

import inspect

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from pinnacle import BackendError
from pinnacle.backends.base import ListenerSpec, WorkResult
from pinnacle.plugins.mongodb import connect
from pinnacle.plugins.mongodb.backend import MongoBackend


def test_a_server_that_cannot_be_reached_is_a_backend_error():
    with pytest.raises(BackendError, match=r"Cannot connect to mongodb://app:\*\*\*@127\.0\.0\.1:1/x") as caught:
        connect("mongodb://app:secret@127.0.0.1:1/x", serverSelectionTimeoutMS=200)
    assert isinstance(caught.value.orig, ServerSelectionTimeoutError)
    assert "secret" not in str(caught.value)


class Down:
    """A server that went away: every call raises AutoReconnect, as pymongo does when the connection drops."""

    def __getitem__(self, name: str) -> "Down":
        return Down()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def fail(*args, **kwargs):
            raise AutoReconnect("connection closed: db1:27017")

        return fail


#: A call of each public store method; all of them touch the database.
CALLS = {
    "insert": lambda b, s: b.insert("docs", [{"_id": "z", "text": "x"}]),
    "select": lambda b, s: b.select("docs"),
    "update": lambda b, s: b.update("docs", {"_id": "a"}, {"text": "y"}),
    "delete": lambda b, s: b.delete("docs", {"_id": "a"}),
    "count": lambda b, s: b.count("docs"),
    "ids": lambda b, s: b.ids("docs"),
    "has_table": lambda b, s: b.has_table("nowhere"),
    "columns": lambda b, s: b.columns("docs"),
    "list_tables": lambda b, s: b.list_tables(),
    "put_component": lambda b, s: b.put_component("Model", "m", 0, "u0", {}),
    "get_component": lambda b, s: b.get_component("Model", "m"),
    "list_components": lambda b, s: b.list_components(),
    "delete_component": lambda b, s: b.delete_component("Model", "m"),
    "get_state": lambda b, s: b.get_state("k"),
    "set_state": lambda b, s: b.set_state("k", "v"),
    "put_artifact": lambda b, s: b.put_artifact("f" * 64, b"data"),
    "get_artifact": lambda b, s: b.get_artifact("f" * 64),
    "has_artifact": lambda b, s: b.has_artifact("f" * 64),
    "create_listener": lambda b, s: b.create_listener(ListenerSpec("emb2", "docs", ("text",))),
    "drop_listener": lambda b, s: b.drop_listener(s),
    "claim_work": lambda b, s: b.claim_work(s, 10),
    "read_outputs": lambda b, s: list(b.read_outputs(s)),
    "output_stamps": lambda b, s: list(b.output_stamps(s)),
    "outputs_version": lambda b, s: b.outputs_version(s),
    "queue_status": lambda b, s: b.queue_status(s),
    "failures": lambda b, s: b.failures(s),
    "requeue_failed": lambda b, s: b.requeue_failed(s),
    "capture_outside_writes": lambda b, s: b.capture_outside_writes([s]),
    "pending_sources": lambda b, s: b.pending_sources(s),
    "close": lambda b, s: b.close(),
}
#: Public store methods that do not talk to the server.
NO_IO = {"primary_key", "worker_uri", "supports", "require", "full_text", "full_text_missing"}  # full_text: a handle; its calls do the I/O


def _store_methods() -> set[str]:
    return {
        name
        for base in MongoBackend.__mro__ if base.__module__.startswith("pinnacle.backends")
        for name, value in vars(base).items() if not name.startswith("_") and inspect.isfunction(value)
    }


def test_every_store_method_is_covered_here():
    assert set(CALLS) | NO_IO == _store_methods()


@pytest.fixture
def outage(listening, monkeypatch):
    """``listening`` whose server is gone (the client's connections drop on every call)."""
    monkeypatch.setattr(listening, "db", Down())
    monkeypatch.setattr(listening, "client", Down())
    monkeypatch.setattr(listening.aggregations, "db", listening.db)
    listening._collections.discard("nowhere")
    return listening


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_lost_connection_is_a_backend_error_from_every_method(outage, spec, name):
    with pytest.raises(BackendError) as caught:
        CALLS[name](outage, spec)
    assert isinstance(caught.value.orig, AutoReconnect)
    message = str(caught.value)
    assert f"failed on {outage.safe_uri}: " in message  # what was being done, and where
    assert "connection to the MongoDB server was lost (connection closed: db1:27017)" in message


def test_commit_and_release_of_a_claim_raise_backend_errors(listening, spec, monkeypatch):
    claim = listening.claim_work(spec, 10)
    monkeypatch.setattr(listening, "db", Down())
    with pytest.raises(BackendError, match="commit outputs of 'emb'") as caught:
        claim.commit(WorkResult(outputs=[(i.source, b"\0\0\0\0") for i in claim.items]))
    assert isinstance(caught.value.orig, AutoReconnect)
    with pytest.raises(BackendError, match="release claimed work of 'emb'"):
        claim.release()  # the failed commit left the claim open
    monkeypatch.undo()


def test_driver_errors_of_other_kinds_are_backend_errors_too(backend, monkeypatch):
    from pymongo.errors import OperationFailure

    def refuse(*args, **kwargs):
        raise OperationFailure("not authorized on app to execute command { find: ... }", code=13)

    monkeypatch.setattr(type(backend.db["_pinnacle_state"]), "find_one", refuse)
    with pytest.raises(BackendError, match="get_state \\('k'\\) failed on .*not authorized") as caught:
        backend.get_state("k")
    assert caught.value.orig.code == 13
