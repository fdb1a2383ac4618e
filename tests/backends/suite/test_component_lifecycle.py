"""Components in the database: apply is idempotent, changes are versions, show/load/remove."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, NotFoundError, StateError
from pinnacle.ext.sentence_transformers import SentenceTransformer

ATOL = 1e-5


def _listener_tables(raw_docs) -> list[str]:
    names = raw_docs.table_names()
    return sorted(n for n in names if n.startswith(("_outputs__", "_queue__", "_failed__")))


def test_reapply_identical_is_a_noop(indexed, connect, add_index, raw_docs, output_rows):
    components = raw_docs.count("_pinnacle_components")
    shown = indexed.show()
    stamps = {s: r["_updated_at"] for s, r in output_rows(indexed).items()}

    index = add_index(indexed)  # a new, identical definition
    assert (index.version, index.indexing_listener.version, index.indexing_listener.model.version) == (0, 0, 0)
    other = add_index(connect())  # ... also from another datalayer
    assert other.uuid == index.uuid and other.version == 0

    assert raw_docs.count("_pinnacle_components") == components
    assert indexed.show() == shown
    assert {s: r["_updated_at"] for s, r in output_rows(indexed).items()} == stamps  # nothing recomputed


def test_runtime_only_change_is_not_a_new_version(indexed, add_index, minilm, raw_docs):
    components = raw_docs.count("_pinnacle_components")
    index = add_index(indexed, model=minilm(device="cpu", preferred_devices=("cpu",), compute_kwargs={"num_cpus": 1}))
    assert index.indexing_listener.model.version == 0
    assert raw_docs.count("_pinnacle_components") == components


def test_changed_model_is_a_new_version(indexed, add_index, minilm, raw_docs, st_native, rows, connect):
    components = raw_docs.count("_pinnacle_components")
    old_tables = _listener_tables(raw_docs)
    old_uuid = indexed.load("Model", "minilm").uuid

    index = add_index(indexed, model=minilm(predict_kwargs={"truncate_dim": 128}))
    model = index.indexing_listener.model
    assert model.uuid != old_uuid
    assert (model.version, index.indexing_listener.version, index.version) == (1, 1, 1)
    assert raw_docs.count("_pinnacle_components") == components + 3
    assert indexed.show("Model", "minilm")["version"] == 1
    assert indexed.load("Model", "minilm", version=0).uuid == old_uuid  # the old version stays readable

    status = indexed.status()["docs-emb"]
    assert status["pending"] == 0 and status["outputs"] == len(rows) and "building" not in status
    outputs = indexed.outputs("docs-emb")
    assert set(outputs) == {r["_id"] for r in rows}
    for row in rows[:5]:
        want = st_native.encode(row["text"], truncate_dim=128)
        assert outputs[row["_id"]].shape == (128,)
        np.testing.assert_allclose(outputs[row["_id"]], want, atol=ATOL)
    assert {r["_model_uuid"] for r in indexed.outputs_table("docs-emb").select()} == {model.uuid}
    # the old version's storage is gone; one version's tables are left
    new_tables = _listener_tables(raw_docs)
    assert len(new_tables) == len(old_tables) == 3 and not set(new_tables) & set(old_tables)
    # search uses the new vectors, new rows get them, and another datalayer sees the same
    assert indexed["docs"].like({"text": rows[6]["text"]}, vector_index="docs-idx", n=1)[0]["_id"] == rows[6]["_id"]
    indexed["docs"].insert([{"_id": "n1", "text": "Brand new after the change."}])
    assert indexed.outputs("docs-emb")["n1"].shape == (128,)
    other = connect()
    assert other.load("Listener", "docs-emb").version == 1
    assert other["docs"].like({"text": "Brand new after the change."}, vector_index="docs-idx", n=1)[0]["_id"] == "n1"


def test_show(indexed, model_path):
    shown = indexed.show()
    assert {(c["type"], c["identifier"], c["version"]) for c in shown} == {
        ("Model", "minilm", 0), ("Listener", "docs-emb", 0), ("VectorIndex", "docs-idx", 0),
    }
    assert all(len(c["uuid"]) == 32 for c in shown)
    assert indexed.show("Listener") == ["docs-emb"]
    assert indexed.show("Model") == ["minilm"]
    record = indexed.show("Listener", "docs-emb")
    assert record["version"] == 0 and record["data"]["key"] == "text" and record["data"]["select"] == "docs"
    assert indexed.show("Model", "minilm")["data"]["model"] == model_path
    with pytest.raises(NotFoundError):
        indexed.show("Listener", "nope")
    with pytest.raises(ConfigError, match="VectorIndex"):
        indexed.show("Widget")


def test_load_in_another_datalayer(indexed, connect, model_path):
    original = indexed.load("VectorIndex", "docs-idx")
    other = connect()
    listener = other.load("Listener", "docs-emb")
    assert isinstance(listener, pinnacle.Listener)
    assert listener.uuid == original.indexing_listener.uuid and listener.version == 0
    assert listener.key == "text" and listener.select == "docs"
    model = listener.model
    assert isinstance(model, SentenceTransformer) and model.model == model_path and model.version == 0
    assert model.signature == "singleton" and model.datatype == pinnacle.Vector(384, "float32")
    index = other.load("VectorIndex", "docs-idx")
    assert index.uuid == original.uuid and index.indexing_listener.uuid == listener.uuid
    assert other.load("Listener", "docs-emb") is listener  # cached while it is the latest
    with pytest.raises(NotFoundError, match="db.show"):
        other.load("Listener", "nope")
    with pytest.raises(NotFoundError):
        other.load("Listener", "docs-emb", version=7)


def test_remove_what_is_in_use_raises(indexed, rows):
    with pytest.raises(StateError) as info:
        indexed.remove("Model", "minilm")
    assert "docs-emb" in str(info.value) and "recursive" in str(info.value)
    with pytest.raises(StateError, match="docs-idx"):
        indexed.remove("Listener", "docs-emb")
    with pytest.raises(NotFoundError):
        indexed.remove("Listener", "nope")
    assert len(indexed.show()) == 3  # nothing was removed
    indexed["docs"].insert([{"_id": "after", "text": "Still listening."}])
    assert len(indexed.outputs("docs-emb")) == len(rows) + 1


def test_remove_index_keeps_listener(indexed, rows):
    indexed.remove("VectorIndex", "docs-idx")
    assert indexed.show("VectorIndex") == []
    with pytest.raises(NotFoundError):
        indexed["docs"].like({"text": "x"}, vector_index="docs-idx", n=1)
    indexed["docs"].insert([{"_id": "after", "text": "Still listening."}])
    assert "after" in indexed.outputs("docs-emb")


def test_remove_recursive_drops_outputs_and_triggers(indexed, connect, raw_docs, rows, add_index):
    assert len(_listener_tables(raw_docs)) == 3
    indexed.remove("Model", "minilm", recursive=True)
    assert indexed.show() == []
    assert _listener_tables(raw_docs) == []
    with pytest.raises(NotFoundError):
        indexed.outputs("docs-emb")
    with pytest.raises(NotFoundError):
        indexed["docs"].like({"text": "x"}, vector_index="docs-idx", n=1)
    # the source table is untouched, and writes no longer reach a (dropped) queue
    indexed["docs"].insert([{"_id": "after", "text": "No listener now."}])
    indexed["docs"].update({"_id": "d00"}, {"text": "Changed with no listener."})
    indexed["docs"].delete({"_id": "d01"})
    assert indexed["docs"].count() == len(rows)
    assert connect().show() == []
    # applying again starts from scratch and backfills every row
    add_index(indexed)
    assert len(indexed.outputs("docs-emb")) == len(rows)


def test_model_loads_from_the_artifact_store(connect, model_path, rows, tmp_path, monkeypatch, st_native):
    from pinnacle.ext.sentence_transformers import model as st_module

    copy = tmp_path / "model-copy"
    shutil.copytree(model_path, copy)
    db = connect()
    db["docs"].insert(rows[:3])
    model = SentenceTransformer(identifier="minilm", model=str(copy))
    db.apply(pinnacle.Listener("docs-emb", model=model, key="text", select=db["docs"]))
    shutil.rmtree(copy)  # the original files are gone

    # a new datalayer, with nothing cached: no unpacked artifacts, no loaded models
    monkeypatch.setenv("PINNACLE_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setattr(st_module, "_native_cache", {})
    other = connect()
    loaded = other.load("Model", "minilm")
    assert loaded.model == str(copy) and loaded.object is None
    vector = loaded.predict("Where did the files go?")
    np.testing.assert_allclose(vector, st_native.encode("Where did the files go?"), atol=ATOL)
    assert any((tmp_path / "fresh-cache").rglob("model.safetensors"))  # unpacked from the database
    other["docs"].insert([{"_id": "new", "text": "Embedded by the stored model."}])
    np.testing.assert_allclose(
        other.outputs("docs-emb")["new"], st_native.encode("Embedded by the stored model."), atol=ATOL
    )


def test_failed_apply_leaves_nothing_behind(indexed, minilm, raw_docs, rows):
    """A listener that cannot be applied takes back the model versions its apply stored."""
    shown, tables = indexed.show(), _listener_tables(raw_docs)
    new_model = minilm("other-minilm", predict_kwargs={"truncate_dim": 64})
    changed_model = minilm(predict_kwargs={"truncate_dim": 128})  # would be "minilm" version 1
    for model in (new_model, changed_model):
        bad = pinnacle.Listener("bad-emb", model=model, key="no_such_column", select=indexed["docs"])
        with pytest.raises(ConfigError, match="Listener 'bad-emb'.*no_such_column"):
            indexed.apply(bad)
    assert indexed.show() == shown and _listener_tables(raw_docs) == tables
    assert indexed.load("Model", "minilm").version == 0
    with pytest.raises(NotFoundError):
        indexed.load("Model", "other-minilm")
    indexed["docs"].insert([{"_id": "after", "text": "The old listener still works."}])
    assert set(indexed.outputs("docs-emb")) == {r["_id"] for r in rows} | {"after"}


def test_a_model_that_cannot_load_is_a_clear_error(db, rows):
    db["docs"].insert(rows[:2])
    model = SentenceTransformer(identifier="nowhere", model="/no/such/folder")
    with pytest.raises(ConfigError, match=r"SentenceTransformer 'nowhere': could not load the model .*/no/such/folder"):
        db.apply(pinnacle.Listener("docs-emb", model=model, key="text", select=db["docs"]))
    assert db.show() == []


def test_failed_apply_keeps_what_another_apply_took_up(connect, minilm, rows, monkeypatch):
    """A model stored by a failing apply stays when another process's listener took it up meanwhile."""
    mine, other = connect(), connect()
    mine["docs"].insert(rows[:3])
    create_listener = mine.backend.create_listener

    def racing(spec):  # the other process applies a listener on the same new model, then ours fails
        other.apply(pinnacle.Listener("other-emb", model=minilm("shared"), key="text", select=other["docs"]))
        return create_listener(spec)

    monkeypatch.setattr(mine.backend, "create_listener", racing)
    with pytest.raises(ConfigError, match="no_such_column"):
        mine.apply(pinnacle.Listener("bad-emb", model=minilm("shared"), key="no_such_column", select=mine["docs"]))
    assert {(c["type"], c["identifier"]) for c in connect().show()} == {("Model", "shared"), ("Listener", "other-emb")}
    assert set(connect().outputs("other-emb")) == {r["_id"] for r in rows[:3]}
