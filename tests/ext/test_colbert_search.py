"""ColBERT end to end: a Listener stores token matrices, VectorIndex(measure='maxsim') ranks rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, MultiVector
from pinnacle.backends.maxsim import maxsim

from ext_corpus import ANSWERS, CORPUS, QUERIES

pytest.importorskip("transformers")
pytest.importorskip("scipy")
from pinnacle.ext.colbert import ColBERT  # noqa: E402


def _apply(db, model_path, **index_kwargs):
    model = ColBERT("colbert", model_name_or_path=model_path)
    listener = pinnacle.Listener("docs-colbert", model=model, key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("docs-maxsim", indexing_listener=listener, measure="maxsim", **index_kwargs))
    return model


def test_listener_and_maxsim_index(connect, corpus_rows, model_path, artifact_files):
    db = connect()
    db["docs"].insert(corpus_rows)
    model = _apply(db, model_path)

    # One (tokens, 128) matrix per row, stored as compact bytes.
    outputs = db.outputs("docs-colbert")
    assert len(outputs) == len(CORPUS)
    expected = model.predict_batches(CORPUS)
    for i, matrix in enumerate(expected):
        np.testing.assert_allclose(outputs[f"r{i:02d}"], matrix, atol=1e-6)
    stored = {r["_source"]: r["_output"] for r in db.outputs_table("docs-colbert").select()}
    assert len(stored["r04"]) == expected[4].size * 4
    assert db.load("Model", "colbert").datatype == MultiVector(128, "float32")

    # Queries go through the query side; the paraphrase ranks first, scores are MaxSim.
    for query, answer in zip(QUERIES, ANSWERS):
        hits = db["docs"].like({"text": query}, vector_index="docs-maxsim", n=3)
        assert [h["_id"] for h in hits][0] == f"r{answer:02d}", (query, hits)
        q = model.predict_query(query)
        assert hits[0]["_score"] == pytest.approx(maxsim(q, outputs[hits[0]["_id"]]), rel=1e-4)
    hits = db["docs"].like({"text": QUERIES[0]}, vector_index="docs-maxsim", n=2, filter={"_id": "r05"})
    assert [h["_id"] for h in hits] == ["r05"]  # pre-filtered

    # Live writes: insert, update, delete reach the index.
    db["docs"].insert([{"_id": "new", "text": "A kitten naps in the sun by the window every day."}])
    hits = db["docs"].like({"text": QUERIES[0]}, vector_index="docs-maxsim", n=2)
    assert {h["_id"] for h in hits} == {"r00", "new"}
    db["docs"].update({"_id": "r00"}, {"text": "Quarterly tax forms are due in April."})
    db["docs"].delete({"_id": "r02"})
    assert db["docs"].like({"text": QUERIES[0]}, vector_index="docs-maxsim", n=1)[0]["_id"] == "new"
    assert "r02" not in {h["_id"] for h in db["docs"].like({"text": QUERIES[1]}, vector_index="docs-maxsim", n=11)}

    # The checkpoint went to the artifact store in PyLate's layout.
    files = artifact_files(model._weights.ref)
    assert json.loads(files["modules.json"])[1]["path"] == "1_Dense"
    assert "1_Dense/model.safetensors" in files and "model.safetensors" in files

    # Another Datalayer: the model comes from the store, the index is read from the outputs table.
    other = connect()
    hits = other["docs"].like({"text": QUERIES[2]}, vector_index="docs-maxsim", n=1)
    assert hits[0]["_id"] == "r08"
    loaded = other.load("Model", "colbert")
    assert loaded._source() != model_path
    np.testing.assert_allclose(loaded.predict(CORPUS[8]), outputs["r08"], atol=1e-6)


def test_candidate_stage(sqlite_db, corpus_rows, model_path):
    sqlite_db["docs"].insert(corpus_rows)
    _apply(sqlite_db, model_path, candidates=4)
    for query, answer in zip(QUERIES, ANSWERS):
        hits = sqlite_db["docs"].like({"text": query}, vector_index="docs-maxsim", n=2)
        assert hits[0]["_id"] == f"r{answer:02d}"


def test_measure_must_fit_the_outputs(sqlite_db, corpus_rows, model_path):
    sqlite_db["docs"].insert(corpus_rows[:2])
    listener = pinnacle.Listener("docs-colbert", model=ColBERT("colbert", model_name_or_path=model_path),
                                 key="text", select="docs")
    sqlite_db.apply(pinnacle.VectorIndex("cosine-on-colbert", indexing_listener=listener))
    with pytest.raises(ConfigError, match="measure='maxsim'"):
        sqlite_db["docs"].like({"text": "x"}, vector_index="cosine-on-colbert")
