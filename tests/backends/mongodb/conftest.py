"""Fixtures of the MongoDB plugin tests: a fresh database, a raw client on it, a
backend-level listener, and a Datalayer with a fast model.

Every test that takes ``mongo_uri`` (through ``backend``, ``raw``, ``listening``, ``mdb``)
runs three times: ``[mongomock]`` (in memory), ``[wire]`` (mongomock behind the MongoDB
wire protocol, ``wire_server.py``, in this process: pymongo's real network path, encoding
and decoding), and ``[mongodb]`` on the server named by ``PINNACLE_MONGODB_URI`` (skipped
when it is not set; a server that cannot be reached skips too, or fails under ``CI=true``).
Each gets a database of its own, dropped afterwards. A test that can only run on mongomock
says why with ``@pytest.mark.mongomock_only("reason")``.
"""

from __future__ import annotations

import os
import uuid as _uuid

import pytest

pytest.importorskip("pymongo")
pytest.importorskip("mongomock")

import pinnacle  # noqa: E402
from pinnacle.backends.base import ListenerSpec  # noqa: E402
from pinnacle.plugins.mongodb.client import open_raw  # noqa: E402

from mongo_models import Letters  # noqa: E402
from mongo_servers import SERVER, UNSET, database_uri, unreachable  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "mongomock_only(reason): a MongoDB plugin test that runs on mongomock only, and why")


@pytest.fixture(scope="session")
def wire_server():
    """mongomock behind the MongoDB wire protocol on a free local port (``wire_server.py``)."""
    from wire_server import serve

    server = serve()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(
    params=[
        pytest.param("mongomock", marks=pytest.mark.mongomock),
        pytest.param("wire", marks=pytest.mark.mongomock),
        pytest.param("mongodb", marks=pytest.mark.mongodb),
    ]
)
def mongo_kind(request) -> str:
    """``mongomock``, ``wire`` (mongomock through pymongo's network path) or ``mongodb``
    (the server of ``PINNACLE_MONGODB_URI``)."""
    if request.param != "mongomock":
        only = request.node.get_closest_marker("mongomock_only")
        if only is not None:
            pytest.skip(f"mongomock only: {only.args[0] if only.args else only.kwargs.get('reason', '')}")
    if request.param == "mongodb":
        if not SERVER:
            pytest.skip(UNSET)
        reason = unreachable(SERVER)
        if reason is not None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{reason} (CI=true: server tests must run, not skip)", pytrace=False)
            pytest.skip(reason)
    return request.param


@pytest.fixture
def mongo_uri(mongo_kind, request):
    name = f"pn_mongo_{_uuid.uuid4().hex[:12]}"
    uri = request.getfixturevalue("wire_server").uri(name) if mongo_kind == "wire" else database_uri(mongo_kind, name)
    yield uri
    client, database = open_raw(uri)
    client.drop_database(database.name)
    client.close()


@pytest.fixture
def backend(mongo_uri):
    """A MongoBackend on an empty database."""
    from pinnacle.plugins.mongodb import connect

    found = connect(mongo_uri)
    yield found
    found.close()


@pytest.fixture
def raw(mongo_uri):
    """The same database through a separate client: another application."""
    client, database = open_raw(mongo_uri)
    yield database
    client.close()


@pytest.fixture
def spec():
    return ListenerSpec("emb", "docs", ("text",), "uuid-1")


@pytest.fixture
def listening(backend, spec):
    """``backend`` with docs a, b, c and listener ``emb`` on ``text`` (all three queued)."""
    backend.insert("docs", [{"_id": k, "text": f"text of {k}"} for k in "abc"])
    assert backend.create_listener(spec) == 3
    return backend


@pytest.fixture
def mdb(mongo_uri):
    """A Datalayer on the database with Listener ``emb`` (model Letters, key ``text``) on ``docs``."""
    db = pinnacle.connect(mongo_uri)
    db["docs"].insert([{"_id": "d1", "text": "alpha"}, {"_id": "d2", "text": "beta"}])
    listener = pinnacle.Listener("emb", model=Letters(identifier="letters"), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("idx", indexing_listener=listener))
    yield db
    db.close()
