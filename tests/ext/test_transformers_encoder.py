"""TextEncoder: AutoModel + pooling gives sentence-transformers' vectors; weights stored as safetensors."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, Vector

from ext_corpus import ANSWERS, CORPUS, QUERIES

pytest.importorskip("transformers")
from pinnacle.ext.transformers import POOLINGS, TextEncoder  # noqa: E402

TEXTS = [
    "Hello world",
    "  Surrounding whitespace is stripped, as sentence-transformers does.  ",
    "x",
    "A longer sentence about databases, embeddings and keeping one vector per row current " * 8,
]


@pytest.fixture(scope="module")
def encoder(model_path):
    return TextEncoder("minilm-hf", model=model_path)


def test_matches_sentence_transformers(encoder, st_native):
    ours = np.stack(encoder.predict_batches(TEXTS))
    ref = st_native.encode(TEXTS, convert_to_numpy=True)
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(encoder.predict_query(TEXTS[0]), ref[0], atol=1e-5)  # no prefix here
    np.testing.assert_allclose(encoder.predict(TEXTS[2]), ref[2], atol=1e-5)


def test_settings_come_from_the_checkpoint(encoder):
    _, _, settings = encoder.native
    assert (settings.pooling, settings.normalize, settings.max_length) == ("mean", True, 256)
    assert encoder.infer_datatype() == Vector(384, "float32")


def test_options_change_the_vectors(model_path, encoder, st_native):
    raw = TextEncoder("raw", model=model_path, normalize=False, batch_size=2)
    vectors = np.stack(raw.predict_batches(TEXTS))
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)  # not normalised
    np.testing.assert_allclose(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), st_native.encode(TEXTS), atol=1e-5)
    cls = TextEncoder("cls", model=model_path, pooling="cls", normalize=False)
    tokenizer, network, _ = cls.native
    torch = pytest.importorskip("torch")
    with torch.inference_mode():
        first = network(**tokenizer(["Hello world"], return_tensors="pt")).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(cls.predict("Hello world"), first, atol=1e-5)
    short = TextEncoder("short", model=model_path, max_length=8)
    assert short.native[2].max_length == 8
    assert not np.allclose(short.predict(TEXTS[3]), encoder.predict(TEXTS[3]), atol=1e-3)  # truncated
    prefixed = TextEncoder("e5-like", model=model_path, query_prefix="query: ")
    assert not np.allclose(prefixed.predict_query("cats"), prefixed.predict("cats"), atol=1e-4)


def test_definition_is_checked():
    with pytest.raises(ConfigError, match=r"valid ones are \['mean', 'cls'\]"):
        TextEncoder("bad", model="m", pooling="max")
    with pytest.raises(ConfigError, match="batch_size"):
        TextEncoder("bad", model="m", batch_size=0)
    with pytest.raises(ConfigError, match="max_length"):
        TextEncoder("bad", model="m", max_length=1)
    assert POOLINGS == ("mean", "cls")
    # batch_size does not change outputs, so not the uuid; pooling does.
    assert TextEncoder("a", model="m", batch_size=4).uuid == TextEncoder("a", model="m").uuid
    assert TextEncoder("a", model="m", pooling="cls").uuid != TextEncoder("a", model="m").uuid


def test_invalid_inputs_are_named(encoder):
    assert encoder.validate_input("fine") is None
    assert "empty" in encoder.validate_input("   ")
    assert "None" in encoder.validate_input(None)
    assert "bytes" in encoder.validate_input(b"x")


def test_listener_search_and_reload(connect, corpus_rows, model_path, st_native, artifact_files):
    db = connect()
    db["docs"].insert(corpus_rows)
    model = TextEncoder("minilm-hf", model=model_path)
    listener = pinnacle.Listener("docs-hf", model=model, key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("docs-hf-idx", indexing_listener=listener))
    outputs = db.outputs("docs-hf")
    assert len(outputs) == len(CORPUS)
    np.testing.assert_allclose(outputs["r03"], st_native.encode(CORPUS[3]), atol=1e-5)
    for query, answer in zip(QUERIES, ANSWERS):
        hits = db["docs"].like({"text": query}, vector_index="docs-hf-idx", n=3)
        assert hits[0]["_id"] == f"r{answer:02d}"

    # The weights went into the database as safetensors, written by save_pretrained.
    files = artifact_files(model._weights.ref)
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pkl"))]

    # Another process: the model comes from the artifact store, not from model_path.
    other = connect()
    loaded = other.load("Model", "minilm-hf")
    assert isinstance(loaded, TextEncoder) and loaded._weights.ref is not None
    assert loaded._source() != model_path
    np.testing.assert_allclose(loaded.predict(CORPUS[3]), outputs["r03"], atol=1e-6)
    other["docs"].insert([{"_id": "new", "text": "A kitten dozes in the sunny window."}])
    hits = other["docs"].like({"text": QUERIES[0]}, vector_index="docs-hf-idx", n=2)
    assert {h["_id"] for h in hits} == {"r00", "new"}
