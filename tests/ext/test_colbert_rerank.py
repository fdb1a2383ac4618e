"""like(..., rerank=<ColBERT VectorIndex>): the first stage's candidates re-scored by MaxSim.

The first stage is hybrid (MiniLM vectors + the database's full-text index) on SQLite; the
second is a ColBERT listener on the same table (multi-vector outputs, measure="maxsim").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import pinnacle
from pinnacle.backends.maxsim import maxsim

sys.path.insert(0, str(Path(__file__).parents[1]))  # hybrid_corpus
from hybrid_corpus import CODE_QUERY, CORPUS  # noqa: E402

pytest.importorskip("transformers")
pytest.importorskip("scipy")
from pinnacle.ext.colbert import ColBERT  # noqa: E402


def test_colbert_reranks_the_hybrid_candidates(sqlite_db, minilm, model_path):
    db = sqlite_db
    db["docs"].insert([{"_id": i, "topic": topic, "text": text} for i, topic, text in CORPUS])
    dense = pinnacle.Listener("docs-emb", model=minilm(), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=dense, full_text=True))
    colbert = ColBERT("colbert", model_name_or_path=model_path)
    late = pinnacle.Listener("docs-colbert", model=colbert, key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("colbert-idx", indexing_listener=late, measure="maxsim"))

    first = db["docs"].like({"text": CODE_QUERY}, vector_index="docs-idx", n=6, mode="hybrid", candidates=6)
    hits = db["docs"].like({"text": CODE_QUERY}, vector_index="docs-idx", n=3, mode="hybrid", candidates=6, rerank="colbert-idx")
    assert len(hits) == 3 and {h["_id"] for h in hits} <= {h["_id"] for h in first}
    outputs = db.outputs("docs-colbert")
    query = colbert.predict_query(CODE_QUERY)
    want = sorted((h["_id"] for h in first), key=lambda i: -maxsim(query, outputs[i]))[:3]
    assert [h["_id"] for h in hits] == want
    for hit in hits:
        assert hit["_score"] == pytest.approx(maxsim(query, outputs[hit["_id"]]), rel=1e-4)
        before = next(f for f in first if f["_id"] == hit["_id"])
        assert hit["_first_score"] == before["_score"]
        assert (hit["_vector_rank"], hit["_text_rank"]) == (before["_vector_rank"], before["_text_rank"])
    # A vector-only first stage can be re-ranked too.
    vector_first = db["docs"].like({"text": CODE_QUERY}, vector_index="docs-idx", n=2, candidates=5, rerank="colbert-idx")
    assert len(vector_first) == 2 and all(h["_text_rank"] is None and h["_vector_rank"] <= 5 for h in vector_first)
