"""like(): the n nearest rows, best first, with a score; filters; always current."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, NotFoundError


def _brute_force(db, query_vector, allowed=None):
    """Source ids by cosine similarity to ``query_vector``, from the stored outputs."""
    outputs = db.outputs("docs-emb")
    ids = [i for i in outputs if allowed is None or i in allowed]
    matrix = np.stack([outputs[i] for i in ids]).astype(np.float64)
    q = np.asarray(query_vector, dtype=np.float64)
    scores = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    order = np.argsort(-scores, kind="stable")
    return [(ids[k], float(scores[k])) for k in order]


def test_like_returns_n_best_first_with_scores(indexed, rows, st_native):
    query = "my pet dog loves swimming"
    hits = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=5)
    assert len(hits) == 5
    for hit in hits:
        assert set(hit) == {"_id", "topic", "text", "_score"}
        assert isinstance(hit["_score"], float)
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    want = _brute_force(indexed, st_native.encode_query(query))[:5]
    assert [h["_id"] for h in hits] == [i for i, _ in want]
    np.testing.assert_allclose(scores, [s for _, s in want], atol=1e-5)
    assert hits[0]["_id"] == "d04"  # the golden retriever in the lake
    assert {h["_id"] for h in hits[:3]} <= {r["_id"] for r in rows if r["topic"] == "animals"}


def test_exact_text_ranks_first(indexed, rows):
    for row in (rows[2], rows[13], rows[19]):
        hits = indexed["docs"].like({"text": row["text"]}, vector_index="docs-idx", n=3)
        assert hits[0]["_id"] == row["_id"] and hits[0]["text"] == row["text"]
        assert hits[0]["_score"] == pytest.approx(1.0, abs=1e-4)
        assert hits[1]["_score"] < hits[0]["_score"] - 0.05


def test_filter_restricts_and_still_returns_n(indexed, rows, st_native):
    query = "something tasty to cook for dinner"
    unfiltered = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=3)
    filtered = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=3, filter={"topic": "tech"})
    assert len(filtered) == 3
    assert all(h["topic"] == "tech" for h in filtered)
    assert not any(h["topic"] == "tech" for h in unfiltered)  # so the filter is applied before the top n
    tech = {r["_id"] for r in rows if r["topic"] == "tech"}
    want = _brute_force(indexed, st_native.encode_query(query), allowed=tech)[:3]
    assert [h["_id"] for h in filtered] == [i for i, _ in want]
    several = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=10, filter={"topic": ["tech", "travel"]})
    assert len(several) == 10 and {h["topic"] for h in several} == {"tech", "travel"}


def test_filter_with_fewer_matches_than_n(indexed):
    hits = indexed["docs"].like({"text": "bread"}, vector_index="docs-idx", n=5, filter={"_id": ["d05", "d09"]})
    assert [h["_id"] for h in hits] == ["d05", "d09"]
    assert indexed["docs"].like({"text": "bread"}, vector_index="docs-idx", n=5, filter={"topic": "none"}) == []


def test_n_larger_than_table(indexed, rows):
    hits = indexed["docs"].like({"text": "anything"}, vector_index="docs-idx", n=100)
    assert sorted(h["_id"] for h in hits) == sorted(r["_id"] for r in rows)


def test_search_is_current_after_each_write(indexed):
    text = "Tardigrades survive in outer space without protection."
    indexed["docs"].insert([{"_id": "new", "text": text, "topic": "animals"}])
    assert indexed["docs"].like({"text": text}, vector_index="docs-idx", n=1)[0]["_id"] == "new"
    indexed["docs"].update({"_id": "d10"}, {"text": "Violin lessons every Thursday evening."})
    assert indexed["docs"].like({"text": "Violin lessons every Thursday evening."}, vector_index="docs-idx", n=1)[0]["_id"] == "d10"
    indexed["docs"].delete({"_id": "new"})
    hits = indexed["docs"].like({"text": text}, vector_index="docs-idx", n=25)
    assert "new" not in [h["_id"] for h in hits] and len(hits) == 20


def test_writes_by_another_datalayer_are_searchable(indexed, connect):
    other = connect()
    assert other["docs"].like({"text": "cats"}, vector_index="docs-idx", n=1)  # other has its own copy
    text = "The chess grandmaster sacrificed her queen to win the game."
    indexed["docs"].like({"text": "warm up the index"}, vector_index="docs-idx", n=1)
    other["docs"].insert([{"_id": "elsewhere", "text": text, "topic": "games"}])
    other["docs"].delete({"_id": "d00"})
    hits = indexed["docs"].like({"text": text}, vector_index="docs-idx", n=25)
    assert hits[0]["_id"] == "elsewhere"
    assert "d00" not in [h["_id"] for h in hits] and len(hits) == 20


@pytest.mark.parametrize("measure", ["dot", "l2"])
def test_other_measures(db, rows, add_index, measure):
    db["docs"].insert(rows)
    add_index(db, measure=measure)
    hits = db["docs"].like({"text": rows[8]["text"]}, vector_index="docs-idx", n=4)
    assert hits[0]["_id"] == "d08" and len(hits) == 4
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    if measure == "l2":
        assert hits[0]["_score"] == pytest.approx(0.0, abs=1e-3) and all(s <= 1e-3 for s in scores)


def test_like_errors(indexed, db):
    with pytest.raises(NotFoundError, match="db.show"):
        indexed["docs"].like({"text": "x"}, vector_index="nope", n=1)
    with pytest.raises(ConfigError, match="text"):
        indexed["docs"].like({"body": "x"}, vector_index="docs-idx", n=1)
    indexed["other"].insert([{"text": "x"}])
    with pytest.raises(ConfigError, match="docs"):
        indexed["other"].like({"text": "x"}, vector_index="docs-idx", n=1)


def test_filter_finds_rows_far_below_the_unfiltered_top_n(indexed, rows, st_native):
    query = "a dog playing fetch in the park"
    ranked = _brute_force(indexed, st_native.encode_query(query))
    worst = [i for i, _ in ranked[-3:]]  # the three least similar rows
    top = [h["_id"] for h in indexed["docs"].like({"text": query}, vector_index="docs-idx", n=5)]
    assert not set(worst) & set(top)
    hits = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=2, filter={"_id": worst})
    assert [h["_id"] for h in hits] == worst[:2]  # pre-filtered: the 2 best of the matching rows
    topic = rows[int(worst[-1][1:])]["topic"]
    hits = indexed["docs"].like({"text": query}, vector_index="docs-idx", n=5, filter={"topic": topic, "_id": worst})
    assert [h["_id"] for h in hits] == [i for i in worst if rows[int(i[1:])]["topic"] == topic]


def test_hnsw_index_in_memory(db, rows, minilm, st_native):
    pytest.importorskip("hnswlib", reason="pip install 'pinnacle[ann]'")
    db["docs"].insert(rows)
    listener = pinnacle.Listener("docs-emb", model=minilm(), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener, index="hnsw", index_options={"ef_search": 50}))
    query = "something tasty to cook for dinner"
    want = _brute_force(db, st_native.encode_query(query))
    hits = db["docs"].like({"text": query}, vector_index="docs-idx", n=5)
    assert [h["_id"] for h in hits] == [i for i, _ in want[:5]]  # 20 rows: the graph finds them all
    tech = {r["_id"] for r in rows if r["topic"] == "tech"}
    hits = db["docs"].like({"text": query}, vector_index="docs-idx", n=3, filter={"topic": "tech"})
    assert [h["_id"] for h in hits] == [i for i, _ in want if i in tech][:3]
    db["docs"].insert([{"_id": "new", "text": "Tardigrades survive in outer space.", "topic": "animals"}])
    db["docs"].delete({"_id": "d05"})
    hits = db["docs"].like({"text": "Tardigrades survive in outer space."}, vector_index="docs-idx", n=30)
    assert hits[0]["_id"] == "new" and "d05" not in [h["_id"] for h in hits] and len(hits) == 20


def test_outside_writes_refresh_only_the_changed_rows(indexed, connect):
    """The in-memory copy reads back only the rows another writer changed, not the table."""
    indexed["docs"].like({"text": "warm up"}, vector_index="docs-idx", n=1)
    backend = indexed.backend
    read: list = []
    original = backend.read_outputs

    def spy(spec, sources=None):
        read.append(None if sources is None else sorted(sources))
        return original(spec, sources)

    backend.read_outputs = spy
    try:
        other = connect()
        other["docs"].insert([{"_id": "elsewhere", "text": "A new row from another writer.", "topic": "tech"}])
        other["docs"].update({"_id": "d03"}, {"text": "Changed by another writer."})
        hits = indexed["docs"].like({"text": "A new row from another writer."}, vector_index="docs-idx", n=2)
        assert hits[0]["_id"] == "elsewhere"
        assert read == [["d03", "elsewhere"]]
        read.clear()
        indexed["docs"].like({"text": "again"}, vector_index="docs-idx", n=1)
        assert read == []  # nothing changed: nothing read
        other["docs"].delete({"_id": "d07"})
        hits = indexed["docs"].like({"text": "bicycles in the old town"}, vector_index="docs-idx", n=30)
        assert "d07" not in [h["_id"] for h in hits] and len(hits) == 20 and read == []
    finally:
        backend.read_outputs = original


def test_own_writes_need_no_rescan_of_the_outputs(indexed):
    """A commit of this process brings its in-memory copy up to date by itself: the next
    search reads neither the outputs nor their stamps back (only the version check)."""
    indexed["docs"].like({"text": "warm up"}, vector_index="docs-idx", n=1)
    backend = indexed.backend
    scans: list = []
    original_stamps, original_read = backend.output_stamps, backend.read_outputs
    backend.output_stamps = lambda spec: scans.append("stamps") or original_stamps(spec)
    backend.read_outputs = lambda spec, sources=None: scans.append("outputs") or original_read(spec, sources)
    try:
        text = "A lighthouse keeper counts the ships at dawn."
        indexed["docs"].insert([{"_id": "own", "text": text, "topic": "sea"}])
        indexed["docs"].update({"_id": "d05"}, {"text": "Changed by this process."})
        assert indexed["docs"].like({"text": text}, vector_index="docs-idx", n=1)[0]["_id"] == "own"
        assert indexed["docs"].like({"text": "Changed by this process."}, vector_index="docs-idx", n=1)[0]["_id"] == "d05"
        assert scans == []
    finally:
        backend.output_stamps, backend.read_outputs = original_stamps, original_read
