"""Fixtures of the shared backend suite: a small corpus, the index on it, reference vectors.

Every test here takes ``backend_uri`` (through ``db``/``connect``) and so runs once per
backend: SQLite, PostgreSQL, MariaDB and MongoDB (mongomock; a real server with
``PINNACLE_MONGODB_URI``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

import pinnacle

#: 20 rows, 4 topics of 5; ids d00..d19.
TEXTS = [
    ("animals", "The cat sleeps on the warm windowsill all afternoon."),
    ("food", "Slow-cooked tomato sauce needs garlic, basil and patience."),
    ("tech", "The database server ran out of disk space during the backup."),
    ("travel", "The night train crosses the snowy mountains before dawn."),
    ("animals", "A golden retriever fetched the stick from the cold lake."),
    ("food", "Freshly baked sourdough bread has a crisp crust."),
    ("tech", "A memory leak made the web service crash every few hours."),
    ("travel", "We rented bicycles to explore the old town and the harbour."),
    ("animals", "Migrating geese fly south in a V formation every autumn."),
    ("food", "Add a pinch of smoked paprika to the roasted potatoes."),
    ("tech", "The compiler reported a type error on line forty-two."),
    ("travel", "Pack sunscreen and comfortable shoes for the desert trip."),
    ("animals", "The octopus escaped its aquarium tank through a tiny gap."),
    ("food", "Lentil soup is cheap, filling and easy to freeze."),
    ("tech", "Rotating the API keys every month limits the damage of a leak."),
    ("travel", "Our ferry to the islands was cancelled because of the storm."),
    ("animals", "Honey bees communicate the location of flowers by dancing."),
    ("food", "Whisk the eggs with sugar until the mixture turns pale."),
    ("tech", "The load balancer spreads requests across three web servers."),
    ("travel", "The museum in Lisbon is free on the first Sunday of the month."),
]


@pytest.fixture
def rows():
    """The corpus as rows with explicit ids."""
    return [{"_id": f"d{i:02d}", "topic": topic, "text": text} for i, (topic, text) in enumerate(TEXTS)]


@pytest.fixture
def encode(st_native):
    """``encode(text)``: the reference vector, from plain sentence-transformers outside pinnacle."""

    def run(text: str) -> np.ndarray:
        return np.asarray(st_native.encode(text), dtype=np.float32)

    return run


@pytest.fixture
def add_index(minilm):
    """``add_index(db)`` applies Listener ``docs-emb`` (key ``text``) and VectorIndex ``docs-idx`` on ``docs``."""

    def apply(db, model=None, measure="cosine", **listener_kwargs):
        listener = pinnacle.Listener("docs-emb", model=model or minilm(), key="text", select=db["docs"], **listener_kwargs)
        return db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener, measure=measure))

    return apply


@pytest.fixture
def indexed(db, rows, add_index):
    """``db`` with the corpus inserted and the index applied (backfilled)."""
    db["docs"].insert(rows)
    add_index(db)
    return db


@pytest.fixture
def schemaless(backend_uri) -> bool:
    """Whether tables take any field (MongoDB collections) instead of fixed columns."""
    return backend_uri.startswith(("mongomock://", "mongodb"))


@pytest.fixture
def other_processes(backend_uri) -> None:
    """Skips the test on mongomock: its in-memory database lives in this process only."""
    if backend_uri.startswith("mongomock://"):
        pytest.skip("mongomock's database lives in this process; other processes cannot see it")


class RawMongo:
    """``raw_docs`` on MongoDB: a separate client (pymongo, or mongomock sharing the store)."""

    engine = None

    def __init__(self, uri: str):
        from pinnacle.plugins.mongodb.client import open_raw

        self.client, self.db = open_raw(uri)

    def insert(self, *rows):
        self.db["docs"].insert_many([dict(r) for r in rows])

    def update(self, id, **values):
        return self.db["docs"].update_one({"_id": id}, {"$set": values}).matched_count

    def delete(self, id):
        return self.db["docs"].delete_one({"_id": id}).deleted_count

    def count(self, name: str) -> int:
        """Documents in collection ``name`` (live outputs only: removed ones leave a marker)."""
        return self.db[name].count_documents({"_deleted": {"$ne": True}})

    def has_table(self, name: str) -> bool:
        return name in self.db.list_collection_names()

    def table_names(self) -> list[str]:
        return self.db.list_collection_names()

    def scalar(self, sql: str, **params):
        pytest.skip("raw SQL: not for MongoDB")


@pytest.fixture
def raw_docs(request, backend_uri):
    """Write ``docs`` with raw SQL through a separate connection, as another application would
    (on MongoDB: with a separate client, :class:`RawMongo`)."""
    if backend_uri.startswith(("mongomock://", "mongodb")):
        raw = RawMongo(backend_uri)
        yield raw
        raw.client.close()
        return
    raw_engine = request.getfixturevalue("raw_engine")
    table = sa.table("docs", sa.column("_id"), sa.column("text"), sa.column("topic"))

    class Raw:
        engine = raw_engine

        def insert(self, *rows):
            with raw_engine.begin() as conn:
                conn.execute(table.insert(), list(rows))

        def update(self, id, **values):
            with raw_engine.begin() as conn:
                return conn.execute(table.update().where(table.c._id == id).values(**values)).rowcount

        def delete(self, id):
            with raw_engine.begin() as conn:
                return conn.execute(table.delete().where(table.c._id == id)).rowcount

        def count(self, name: str) -> int:
            """Rows in table ``name`` (quoted for the dialect)."""
            with raw_engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()

        def has_table(self, name: str) -> bool:
            return sa.inspect(raw_engine).has_table(name)

        def table_names(self) -> list[str]:
            return sa.inspect(raw_engine).get_table_names()

        def scalar(self, sql: str, **params):
            with raw_engine.connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()

    yield Raw()


@pytest.fixture
def output_rows():
    """``output_rows(db)``: ``{source: row}`` of the listener's outputs table (``_output``, ``_updated_at``...)."""

    def read(db, listener: str = "docs-emb") -> dict:
        return {r["_source"]: r for r in db.outputs_table(listener).select()}

    return read
