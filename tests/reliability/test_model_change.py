"""Model change without downtime (issue 3, part 7).

Re-applying a listener whose model changed (here: ``truncate_dim=128``, so 384-d vectors
become 128-d) builds the new outputs beside the old ones. Meanwhile search answers from
the old version, ``status`` shows the build's progress, and writes reach both versions.
When the new version is complete it serves and the old version's tables and triggers
are dropped; other processes switch too.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

import pinnacle
from pinnacle.backends.base import ListenerSpec

TEXTS = [
    "The cat sleeps on the warm windowsill all afternoon.",
    "Slow-cooked tomato sauce needs garlic, basil and patience.",
    "The database server ran out of disk space during the backup.",
    "The night train crosses the snowy mountains before dawn.",
    "A golden retriever fetched the stick from the cold lake.",
    "Freshly baked sourdough bread has a crisp crust.",
    "A memory leak made the web service crash every few hours.",
    "We rented bicycles to explore the old town and the harbour.",
    "Migrating geese fly south in a V formation every autumn.",
    "Add a pinch of smoked paprika to the roasted potatoes.",
    "The compiler reported a type error on line forty-two.",
    "Pack sunscreen and comfortable shoes for the desert trip.",
]
QUERY = "a pet dog playing in water"


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


_REFERENCE: dict[str, np.ndarray] = {}


def _ref(st_native, *texts: str) -> list[np.ndarray]:
    """Reference vectors from plain sentence-transformers (encoded once per text, in one batch)."""
    todo = [x for x in dict.fromkeys(texts) if x not in _REFERENCE]
    if todo:
        _REFERENCE.update(zip(todo, st_native.encode(todo, batch_size=64)))
    return [_REFERENCE[x] for x in texts]


def _assert_scores(hits: list[dict], texts: dict, st_native, dim: int) -> None:
    """Each hit's score is the cosine of ``dim``-d vectors (384: the old model, 128: the new)."""
    _ref(st_native, QUERY, *texts.values())
    (query,) = _ref(st_native, QUERY)
    query = query[:dim]
    assert hits, "no hits"
    for hit in hits:
        expected = _cos(query, _ref(st_native, texts[hit["_id"]])[0][:dim])
        assert abs(hit["_score"] - expected) < 1e-4, (dim, hit["_id"], hit["_score"], expected)


def _triggers(engine: sa.Engine, kind: str) -> set[str]:
    with engine.connect() as conn:
        if kind == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        elif kind == "postgresql":
            query = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = current_schema()"
        else:
            query = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        return {r[0] for r in conn.execute(sa.text(query))}


def test_model_change_builds_beside_then_switches(backend_kind, connect, raw_engine, minilm, st_native):
    db = connect(metadata_ttl=0)  # this process notices another process's switch at once
    texts = {f"d{i:02d}": text for i, text in enumerate(TEXTS)}
    db["docs"].insert([{"_id": k, "text": v} for k, v in texts.items()])
    old = pinnacle.Listener("emb", model=minilm(), key="text", select="docs")
    db.apply(pinnacle.VectorIndex("idx", indexing_listener=old))
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 12, "version": 0}

    new = pinnacle.Listener("emb", model=minilm(predict_kwargs={"truncate_dim": 128}), key="text", select="docs")
    assert new.uuid != old.uuid
    db.apply(new, wait=False)
    assert new.version == 1
    status = db.status()["emb"]
    assert status["version"] == 0 and status["outputs"] == 12
    assert status["building"] == {"version": 1, "pending": 12, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 0}
    _assert_scores(db["docs"].like({"text": QUERY}, vector_index="idx", n=3), texts, st_native, 384)

    # A worker computes part of the new version: progress shows, search still uses the old one.
    db.runtimes.get("emb").drainers[1].run_once(limit=5)
    building = db.status()["emb"]["building"]
    assert (building["outputs"], building["pending"]) == (5, 7), building
    _assert_scores(db["docs"].like({"text": QUERY}, vector_index="idx", n=3), texts, st_native, 384)

    # Writes during the build reach both versions.
    texts["n1"] = "A puppy splashes happily in the lake."
    db["docs"].insert([{"_id": "n1", "text": texts["n1"]}])  # waits: computed in both versions
    assert db.outputs("emb")["n1"].shape == (384,)
    v1 = ListenerSpec.of(new)
    built = {s: np.frombuffer(b, dtype="<f4") for s, b in db.backend.read_outputs(v1)}
    assert built["n1"].shape == (128,)
    np.testing.assert_allclose(built["n1"], _ref(st_native, texts["n1"])[0][:128], atol=2e-5)
    before_update = dict(texts)
    texts["d00"] = "The kitten chases a red ball across the floor."
    db["docs"].update({"_id": "d00"}, {"text": texts["d00"]}, wait=False)  # queued in both versions
    with raw_engine.connect() as conn:
        for queue in ("_queue__emb", "_queue__emb__v1"):
            assert "d00" in set(conn.execute(sa.text(f"SELECT _source FROM {queue}")).scalars()), queue
    status = db.status()["emb"]
    assert status["version"] == 0 and status["pending"] == 1 and status["building"]["pending"] >= 7

    # Another process (as after a restart) finishes the build and switches.
    other = connect()
    assert other.status()["emb"]["building"]["outputs"] == 6
    # (d00's update is still queued: its served vector is that of its previous text.)
    _assert_scores(other["docs"].like({"text": QUERY}, vector_index="idx", n=3), before_update, st_native, 384)
    other.drain()
    assert other.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 13, "version": 1}

    # The new version serves, everywhere; the old storage and triggers are gone.
    for handle in (other, db):
        assert "building" not in handle.status()["emb"]
        outputs = handle.outputs("emb")
        assert set(outputs) == set(texts)
        for source, vector in outputs.items():
            assert vector.shape == (128,)
            np.testing.assert_allclose(vector, _ref(st_native, texts[source])[0][:128], atol=2e-5)
        _assert_scores(handle["docs"].like({"text": QUERY}, vector_index="idx", n=3), texts, st_native, 128)
    names = set(sa.inspect(raw_engine).get_table_names())
    assert not names & {"_outputs__emb", "_queue__emb", "_failed__emb"}, names
    assert {"_outputs__emb__v1", "_queue__emb__v1", "_failed__emb__v1"} <= names
    triggers = _triggers(raw_engine, backend_kind)
    assert triggers and all("emb__v1" in name for name in triggers), triggers

    # Writes after the switch go to the new version only (no trigger of the old one is left).
    texts["n2"] = "Fresh snow fell on the mountain pass overnight."
    db["docs"].insert([{"_id": "n2", "text": texts["n2"]}])
    assert db.outputs("emb")["n2"].shape == (128,)
    assert db.status()["emb"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 14, "version": 1}
