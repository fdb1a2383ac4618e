"""Collections as tables: ids, MongoDB filters, updates, field checks."""

from __future__ import annotations

import pytest
from bson import ObjectId

import pinnacle
from pinnacle import ConfigError, NotFoundError


def test_generated_ids_are_object_ids_shown_as_hex(backend, raw):
    ids = backend.insert("docs", [{"text": "one"}, {"text": "two"}])
    assert all(isinstance(i, str) and len(i) == 24 for i in ids)
    stored = {d["_id"] for d in raw["docs"].find({}, {"_id": 1})}
    assert stored == {ObjectId(i) for i in ids}  # ObjectIds in the database (find has no order)
    rows = backend.select("docs", ids=[ids[1]])
    assert rows == [{"_id": ids[1], "text": "two"}]
    assert backend.select("docs", {"_id": ids[0]})[0]["text"] == "one"
    assert backend.select("docs", ids=[ObjectId(ids[0])])[0]["_id"] == ids[0]  # an ObjectId works too


def test_given_ids_are_kept_even_when_they_look_like_object_ids(backend, raw):
    hexlike = "65f000000000000000000001"
    assert backend.insert("docs", [{"_id": hexlike, "text": "x"}, {"_id": 7, "text": "y"}]) == [hexlike, 7]
    assert raw["docs"].find_one({"_id": hexlike})["text"] == "x"  # stored as the string given
    found = {r["_id"]: r for r in backend.select("docs", ids=[hexlike, 7])}
    assert found == {hexlike: {"_id": hexlike, "text": "x"}, 7: {"_id": 7, "text": "y"}}


def test_native_filters_pass_through(mongo_uri):
    db = pinnacle.connect(mongo_uri)
    db["docs"].insert([{"_id": f"i{n}", "n": n, "tag": "even" if n % 2 == 0 else "odd"} for n in range(6)])
    assert sorted(r["n"] for r in db["docs"].select({"n": {"$gt": 3}})) == [4, 5]
    assert sorted(r["n"] for r in db["docs"].select({"$or": [{"n": 0}, {"tag": "odd", "n": {"$lt": 3}}]})) == [0, 1]
    assert sorted(r["n"] for r in db["docs"].select({"n": [1, 2]})) == [1, 2]  # a list means any of
    assert db["docs"].count({"n": {"$gte": 2}}) == 4
    assert db["docs"].update({"n": {"$lt": 2}}, {"$inc": {"n": 100}}) == 2
    assert sorted(r["n"] for r in db["docs"].select({"n": {"$gte": 100}})) == [100, 101]
    assert db["docs"].delete({"tag": "odd"}) == 3
    assert sorted(r["n"] for r in db["docs"].select({"_id": {"$in": ["i0", "i2"]}}, columns=["n"])) == [2, 100]
    assert all(r.keys() == {"n"} for r in db["docs"].select({}, columns=["n"]))
    db.close()


def test_schemaless_fields_and_bad_names(backend):
    backend.insert("docs", [{"text": "x"}, {"text": "y", "extra": {"nested": [1, 2]}}])
    assert backend.columns("docs")[0] == "_id" and set(backend.columns("docs")) == {"_id", "text", "extra"}
    for bad in ({"$x": 1}, {"a.b": 1}, {"": 1}):
        with pytest.raises(ConfigError, match="field name"):
            backend.insert("docs", [bad])
    with pytest.raises(ConfigError, match="scalar"):
        backend.insert("docs", [{"_id": {"a": 1}, "text": "x"}])
    with pytest.raises(ConfigError, match="list of dicts"):
        backend.insert("docs", {"text": "x"})
    with pytest.raises(ConfigError, match="cannot be stored"):
        backend.insert("docs", [{"n": 2**70}])
    with pytest.raises(NotFoundError):
        backend.select("nowhere")
    assert backend.list_tables() == ["docs"] and backend.primary_key("docs") == "_id"


def test_duplicate_id_is_a_backend_error(backend):
    backend.insert("docs", [{"_id": "a", "text": "x"}])
    with pytest.raises(pinnacle.BackendError, match="duplicate"):
        backend.insert("docs", [{"_id": "a", "text": "again"}])


def test_changing_the_id_moves_the_document_and_its_queue(listening, spec, raw):
    raw[spec.queue_table].delete_many({})
    assert listening.update("docs", {"_id": "a"}, {"_id": "a2"}) == 1
    assert listening.select("docs", ids=["a", "a2"]) == [{"_id": "a2", "text": "text of a"}]
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["a", "a2"]
    with pytest.raises(ConfigError, match="one document"):
        listening.update("docs", {}, {"_id": "z"})
    with pytest.raises(ConfigError, match="plain value"):
        listening.update("docs", {"_id": "b"}, {"$set": {"_id": "z"}})


def test_only_key_updates_enqueue(listening, spec, raw):
    raw[spec.queue_table].delete_many({})
    listening.update("docs", {"_id": "a"}, {"topic": "t"})
    assert raw[spec.queue_table].count_documents({}) == 0
    listening.update("docs", {"_id": "a"}, {"$set": {"text": "new"}})
    listening.update("docs", {"_id": "b"}, {"$rename": {"text": "body"}})
    assert sorted(e["_source"] for e in raw[spec.queue_table].find()) == ["a", "b"]
    listening.delete("docs", {"_id": "c"})
    assert raw[spec.queue_table].count_documents({"_source": "c"}) == 1


def test_artifacts_in_parts(backend, raw, monkeypatch):
    from pinnacle.plugins.mongodb import metadata

    monkeypatch.setattr(metadata, "ARTIFACT_PART", 1000)
    data = bytes(range(256)) * 10
    backend.put_artifact("f" * 64, data)
    backend.put_artifact("f" * 64, data)  # idempotent
    assert raw["_pinnacle_artifacts"].count_documents({"sha256": "f" * 64}) == 3
    assert backend.get_artifact("f" * 64) == data and backend.has_artifact("f" * 64)
    raw["_pinnacle_artifacts"].delete_one({"sha256": "f" * 64, "part": 2})  # a crashed writer's leftovers
    assert not backend.has_artifact("f" * 64)
    with pytest.raises(NotFoundError):
        backend.get_artifact("f" * 64)
    backend.put_artifact("f" * 64, data)
    assert backend.get_artifact("f" * 64) == data


def test_components_and_state(backend):
    backend.put_component("Model", "m", 0, "u0", {"a": {"$weird.key": 1}})
    backend.put_component("Model", "m", 1, "u1", {"a": 2})
    assert backend.get_component("Model", "m")["uuid"] == "u1"
    assert backend.get_component("Model", "m", 0)["data"] == {"a": {"$weird.key": 1}}
    assert backend.list_components() == [{"type": "Model", "identifier": "m", "version": 1, "uuid": "u1"}]
    with pytest.raises(pinnacle.BackendError, match="apply it again"):
        backend.put_component("Model", "m", 1, "u1", {})
    backend.delete_component("Model", "m")
    assert backend.get_component("Model", "m") is None
    backend.set_state("k", "v")
    assert backend.get_state("k") == "v"
    backend.set_state("k", None)
    assert backend.get_state("k") is None
