"""A Ray job over a listener with backend="onnx": actors run the stored export, none exports again."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle

from ray_models import embed_without_export

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("backend_kind", [pytest.param("sqlite", marks=pytest.mark.sqlite)], indirect=True)
def test_ray_actors_run_the_stored_onnx_file(ray_session, connect, backend_uri, model_path, st_native):
    pytest.importorskip("onnxruntime")
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    texts = [f"row {i} about {topic}" for i, topic in enumerate(["cats", "trains", "bread", "servers"] * 10)]
    db = connect(compute="ray")
    db["docs"].insert([{"_id": f"r{i:02d}", "text": text} for i, text in enumerate(texts)])
    model = SentenceTransformer(identifier="minilm-onnx", model=model_path, backend="onnx")
    db.apply(pinnacle.Listener("docs-emb", model=model, key="text", select="docs"), wait=False)

    stats = db.backfill("docs-emb", num_actors=2, chunk_rows=10, show_progress_bar=False)

    assert (stats.rows, stats.outputs, stats.failed) == (len(texts), len(texts), 0)
    outputs = db.outputs("docs-emb")
    reference = st_native.encode(texts)
    np.testing.assert_allclose(np.stack([outputs[f"r{i:02d}"] for i in range(len(texts))]), reference, atol=1e-5)
    # In a Ray worker, with exporting made impossible, the model loads and runs the stored file.
    task = ray_session.remote(embed_without_export)
    result = ray_session.get(task.remote(backend_uri, "minilm-onnx", texts[:4]))
    assert result["runs"] == "OnnxModule"
    np.testing.assert_allclose(result["vectors"], reference[:4], atol=1e-5)
