"""Component identity: a stable uuid from the definition, the same in every process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pinnacle
from pinnacle import ConfigError
from pinnacle.components.model import Model
from pinnacle.ext.sentence_transformers import SentenceTransformer

UUID_SCRIPT = """
import json, pinnacle
from pinnacle.ext.sentence_transformers import SentenceTransformer
m = SentenceTransformer(identifier="minilm", model="/models/minilm", predict_kwargs={"batch_size": 8, "normalize_embeddings": True})
l = pinnacle.Listener("docs-emb", model=m, key="text", select="docs")
i = pinnacle.VectorIndex("docs-idx", indexing_listener=l, measure="dot")
print(json.dumps([m.uuid, l.uuid, i.uuid]))
"""


def _tree():
    m = SentenceTransformer(
        identifier="minilm", model="/models/minilm", predict_kwargs={"normalize_embeddings": True, "batch_size": 8}
    )
    listener = pinnacle.Listener("docs-emb", model=m, key="text", select="docs")
    return m, listener, pinnacle.VectorIndex("docs-idx", indexing_listener=listener, measure="dot")


def test_same_definition_same_uuid():
    a, b = _tree(), _tree()
    assert [c.uuid for c in a] == [c.uuid for c in b]
    assert all(len(c.uuid) == 32 and int(c.uuid, 16) >= 0 for c in a)
    assert len({c.uuid for c in a}) == 3


def test_uuid_same_in_another_process(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", UUID_SCRIPT], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [c.uuid for c in _tree()]


@pytest.mark.parametrize(
    "change",
    [
        {"model": "/models/other"},
        {"predict_kwargs": {"normalize_embeddings": False, "batch_size": 8}},
        {"identifier": "minilm2"},
        {"signature": "*args"},
    ],
)
def test_output_changing_fields_change_uuid(change):
    base = dict(identifier="minilm", model="/models/minilm", predict_kwargs={"normalize_embeddings": True, "batch_size": 8})
    assert SentenceTransformer(**{**base, **change}).uuid != SentenceTransformer(**base).uuid


@pytest.mark.parametrize(
    "change",
    [
        {"device": "cuda:1"},
        {"preferred_devices": ("cpu",)},
        {"compute_kwargs": {"num_gpus": 1}},
        {"metric_values": {"acc": 1.0}},
        {"predict_kwargs": {"normalize_embeddings": True, "batch_size": 256, "show_progress_bar": True}},
    ],
)
def test_runtime_fields_do_not_change_uuid(change):
    base = dict(identifier="minilm", model="/models/minilm", predict_kwargs={"normalize_embeddings": True})
    assert SentenceTransformer(**{**base, **change}).uuid == SentenceTransformer(**base).uuid


def test_child_change_changes_parent_uuid():
    m1 = Model("m")
    m2 = Model("m", predict_kwargs={"x": 1})
    l1 = pinnacle.Listener("l", model=m1, key="text", select="docs")
    l2 = pinnacle.Listener("l", model=m2, key="text", select="docs")
    assert l1.uuid != l2.uuid
    assert pinnacle.Listener("l", model=m1, key="body", select="docs").uuid != l1.uuid
    assert pinnacle.Listener("l", model=m1, key="text", select="other").uuid != l1.uuid


def test_dict_key_order_does_not_change_uuid():
    a = Model("m", predict_kwargs={"a": 1, "b": 2})
    b = Model("m", predict_kwargs={"b": 2, "a": 1})
    assert a.uuid == b.uuid


def test_version_unset_before_apply():
    m, listener, index = _tree()
    assert m.version is None and listener.version is None and index.version is None


def test_listener_accepts_table_handle(sqlite_db):
    listener = pinnacle.Listener("l", model=Model("m"), key="text", select=sqlite_db["docs"])
    assert listener.select == "docs"
    assert listener.uuid == pinnacle.Listener("l", model=Model("m"), key="text", select="docs").uuid


def test_listener_rejects_non_model():
    with pytest.raises(ConfigError, match="model must be a Model"):
        pinnacle.Listener("l", model="minilm", key="text", select="docs")


def test_vector_index_validates_measure_and_listener():
    listener = pinnacle.Listener("l", model=Model("m"), key="text", select="docs")
    with pytest.raises(ConfigError) as info:
        pinnacle.VectorIndex("i", indexing_listener=listener, measure="hamming")
    for valid in ("cosine", "dot", "l2"):
        assert valid in str(info.value)
    with pytest.raises(ConfigError, match="Listener"):
        pinnacle.VectorIndex("i", indexing_listener=Model("m"))
    assert pinnacle.VectorIndex("i", indexing_listener=listener).measure == "cosine"
