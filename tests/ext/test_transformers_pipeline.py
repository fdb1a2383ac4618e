"""Pipeline: transformers pipelines offline on the bundled model; token vectors or pooled vectors."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, MultiVector, Vector

from ext_corpus import CORPUS

pytest.importorskip("transformers")
from pinnacle.ext.transformers import Pipeline, TextEncoder, mean_pool  # noqa: E402

TEXTS = ["Hello world", "A somewhat longer sentence, with a comma and more words in it.", "x"]


@pytest.fixture(scope="module")
def features(model_path):
    return Pipeline("features", task="feature-extraction", model=model_path, batch_size=2)


def test_feature_extraction_runs_offline(features, model_path):
    tokens = features.predict_batches(TEXTS)
    tokenizer = features.native.tokenizer
    for text, matrix in zip(TEXTS, tokens):
        assert matrix.dtype == np.float32
        assert matrix.shape == (len(tokenizer(text)["input_ids"]), 384)  # batch padding removed
    one_by_one = Pipeline("one", task="feature-extraction", model=model_path, batch_size=1)
    for a, b in zip(tokens, one_by_one.predict_batches(TEXTS)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert features.infer_datatype() == MultiVector(384, "float32")


def test_mean_pool_postprocess_matches_text_encoder(model_path):
    pooled = Pipeline("pooled", task="feature-extraction", model=model_path, postprocess=mean_pool)
    raw = TextEncoder("raw", model=model_path, normalize=False)
    np.testing.assert_allclose(np.stack(pooled.predict_batches(TEXTS)), np.stack(raw.predict_batches(TEXTS)), atol=1e-5)
    assert pooled.infer_datatype() == Vector(None, "float32")


def test_definition_is_checked():
    with pytest.raises(ConfigError, match="task"):
        Pipeline("p", task="", model="m")
    with pytest.raises(ConfigError, match="on the component"):
        Pipeline("p", task="feature-extraction", model="m", pipeline_kwargs={"device": "cpu"})
    with pytest.raises(ConfigError, match="postprocess"):
        Pipeline("p", task="text-classification", model="m").infer_datatype()  # not vectors; no model load


def test_listener_stores_pooled_vectors(sqlite_db, model_path, artifact_files):
    sqlite_db["docs"].insert([{"_id": str(i), "text": t} for i, t in enumerate(CORPUS[:4])])
    model = Pipeline("pipe", task="feature-extraction", model=model_path, postprocess=mean_pool)
    sqlite_db.apply(pinnacle.Listener("docs-pipe", model=model, key="text", select=sqlite_db["docs"]))
    outputs = sqlite_db.outputs("docs-pipe")
    assert len(outputs) == 4 and outputs["0"].shape == (384,)
    np.testing.assert_allclose(outputs["1"], model.predict(CORPUS[1]), atol=1e-5)
    files = artifact_files(model._weights.ref)
    assert "model.safetensors" in files and not [n for n in files if n.endswith(".bin")]
