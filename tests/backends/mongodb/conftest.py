"""Fixtures of the MongoDB plugin tests: a fresh mongomock database, a raw client on it,
a backend-level listener, and a Datalayer with a fast model."""

from __future__ import annotations

import uuid as _uuid

import pytest

pytest.importorskip("pymongo")
pytest.importorskip("mongomock")

import pinnacle  # noqa: E402
from pinnacle.backends.base import ListenerSpec  # noqa: E402
from pinnacle.plugins.mongodb.client import open_raw  # noqa: E402

from mongo_models import Letters  # noqa: E402


@pytest.fixture
def mongo_uri():
    uri = f"mongomock://localhost/pn_mongo_{_uuid.uuid4().hex[:12]}"
    yield uri
    client, database = open_raw(uri)
    client.drop_database(database.name)


@pytest.fixture
def backend(mongo_uri):
    """A MongoBackend on an empty mongomock database."""
    from pinnacle.plugins.mongodb import connect

    found = connect(mongo_uri)
    yield found
    found.close()


@pytest.fixture
def raw(mongo_uri):
    """The same database through a separate client: another application."""
    client, database = open_raw(mongo_uri)
    yield database


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
