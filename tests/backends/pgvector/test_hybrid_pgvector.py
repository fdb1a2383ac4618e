"""Hybrid search on PostgreSQL with pgvector: the vector side in the database (exact and HNSW),
the text side on the tsvector GIN index, fused by RRF; a code query dense search misses."""

from __future__ import annotations

import pytest

import pinnacle
from hybrid_corpus import CODE_QUERY, CODE_ROW, CORPUS
from pinnacle.search import DatabaseIndex

pytestmark = pytest.mark.postgresql


def _ids(hits):
    return [h["_id"] for h in hits]


@pytest.mark.parametrize("index", [None, "hnsw"])
def test_hybrid_with_vectors_in_the_database(pg_connect, minilm, index):
    db = pg_connect(pgvector=True)
    db["docs"].insert([{"_id": i, "topic": topic, "text": text} for i, topic, text in CORPUS])
    listener = pinnacle.Listener("docs-emb", model=minilm(), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener, full_text=True, index=index))
    assert isinstance(db.search.live_index("docs-idx"), DatabaseIndex)  # pgvector answers the vector side

    def like(mode, **options):
        return db["docs"].like({"text": CODE_QUERY}, vector_index="docs-idx", n=5, mode=mode, **options)

    dense = _ids(like("vector"))
    assert dense[0] == "k02" and dense.index(CODE_ROW) in (1, 2)  # see tests/hybrid_corpus.py
    hits = like("hybrid")
    assert hits[0]["_id"] == CODE_ROW and hits[0]["_text_rank"] == 1
    assert hits[0]["_vector_rank"] == dense.index(CODE_ROW) + 1
    assert hits[0]["_score"] == pytest.approx(1 / (60 + hits[0]["_vector_rank"]) + 1 / 61)

    filtered = like("hybrid", filter={"topic": "billing"})
    assert len(filtered) == 5 and {h["topic"] for h in filtered} == {"billing"}

    # psql-style writes: the GIN index sees them at once, pgvector once they are embedded.
    with db.backend.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO docs (_id, topic, text) VALUES ('raw', 'support', 'Error E-5150: the battery is swollen.')")
    assert _ids(db["docs"].like({"text": "E-5150"}, vector_index="docs-idx", n=3, mode="text")) == ["raw"]
    db.drain()
    hit = db["docs"].like({"text": "error E-5150 battery"}, vector_index="docs-idx", n=1, mode="hybrid")[0]
    assert hit["_id"] == "raw" and hit["_text_rank"] == 1
