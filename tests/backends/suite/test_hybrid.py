"""Hybrid search: the database's own full-text index beside the vectors, fused by RRF.

On SQLite (FTS5), PostgreSQL (tsvector + GIN), MariaDB (InnoDB FULLTEXT) and a real
MongoDB (text index, with ``PINNACLE_MONGODB_URI``); mongomock has no ``$text``: there the
tests skip with that reason, and ``apply`` refuses ``full_text=True`` saying so.

The corpus holds exact codes (``E-4471``, ``E-4417``, ``E-7441``...) and paraphrases: for
"error E-4471 when the computer starts" the real model (all-MiniLM-L6-v2) ranks two
start-up faults with look-alike codes above the row that has the code; the text side finds
that row first, and so does hybrid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, NotFoundError
from pinnacle.backends.fulltext import TextIndexSpec
from pinnacle.plugins.mongodb.fulltext import MOCK_REASON

sys.path.insert(0, str(Path(__file__).parent))  # hybrid_models must import by name
sys.path.insert(0, str(Path(__file__).parents[2]))  # hybrid_corpus
from hybrid_corpus import CODE_QUERY, CODE_ROW, CORPUS  # noqa: E402
from hybrid_models import OverlapReranker  # noqa: E402


@pytest.fixture
def corpus_rows():
    return [{"_id": i, "topic": topic, "text": text} for i, topic, text in CORPUS]


@pytest.fixture
def no_text_search(backend_uri):
    """Skips on mongomock: it does not implement ``$text``."""
    if backend_uri.startswith("mongomock://"):
        pytest.skip(MOCK_REASON)


def _apply(db, minilm, **index):
    listener = pinnacle.Listener("docs-emb", model=minilm(), key="text", select=db["docs"])
    return db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener, full_text=True, **index))


@pytest.fixture
def hybrid(db, corpus_rows, minilm, no_text_search):
    """``db`` with the corpus and VectorIndex ``docs-idx`` (``full_text=True``) applied."""
    db["docs"].insert(corpus_rows)
    _apply(db, minilm)
    return db


def _ids(hits):
    return [h["_id"] for h in hits]


def _like(db, query, **options):
    return db["docs"].like({"text": query}, vector_index="docs-idx", **options)


def _exists(db) -> bool:
    return db.backend.full_text(TextIndexSpec("docs-idx", "docs", "text")).exists()


def test_dense_misses_the_code_hybrid_finds_it_first(hybrid):
    dense = _ids(_like(hybrid, CODE_QUERY, n=5))
    # Start-up faults with look-alike codes come first: E-4417 (k02, by 0.02), then E-7441 (k03)
    # and the row with the code (k01) within 0.001 of each other.
    assert dense[0] == "k02" and dense.index(CODE_ROW) in (1, 2) and "k03" in dense[:3]
    text = _like(hybrid, CODE_QUERY, n=5, mode="text")
    assert text[0]["_id"] == CODE_ROW and text[0]["_text_rank"] == 1 and text[0]["_vector_rank"] is None
    assert "k02" not in _ids(text) and "k03" not in _ids(text)  # no word of the query in them
    hits = _like(hybrid, CODE_QUERY, n=5, mode="hybrid")
    first = hits[0]
    assert first["_id"] == CODE_ROW and first["text"] == CORPUS[0][2]
    assert (first["_vector_rank"], first["_text_rank"]) == (dense.index(CODE_ROW) + 1, 1)
    assert first["_score"] == pytest.approx(1 / (60 + first["_vector_rank"]) + 1 / 61)
    for hit in hits:
        assert set(hit) == {"_id", "topic", "text", "_score", "_vector_rank", "_text_rank"}
        assert hit["_vector_rank"] is not None or hit["_text_rank"] is not None
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_keeps_what_dense_search_gets_right(hybrid):
    query = "a double payment was taken from my card"  # a paraphrase: few shared words
    dense = _ids(_like(hybrid, query, n=2))
    assert set(dense) == {"k07", "k08"}
    assert set(_ids(_like(hybrid, query, n=2, mode="hybrid"))) == {"k07", "k08"}
    assert _ids(_like(hybrid, "INV-9122", n=1, mode="hybrid")) == ["k09"]


def test_rrf_against_a_brute_force_reference(hybrid, st_native):
    """Vector ranks from the stored outputs in float64, text ranks from the database, fused by hand."""
    outputs = hybrid.outputs("docs-emb")
    ids = sorted(outputs)
    matrix = np.stack([outputs[i] for i in ids]).astype(np.float64)
    for query, candidates, rrf_k, weights in [
        (CODE_QUERY, 50, 60, None), ("laptop startup error", 8, 60, None), (CODE_QUERY, 5, 1, {"vector": 2.0, "text": 0.5}),
        ("refund of a duplicate invoice", 20, 10, {"text": 0.0}),
    ]:
        q = np.asarray(st_native.encode_query(query), dtype=np.float64)
        cosine = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        vector = [ids[k] for k in np.argsort(-cosine, kind="stable")][:candidates]
        text = _ids(_like(hybrid, query, n=candidates, mode="text"))
        w = {"vector": 1.0, "text": 1.0, **(weights or {})}
        fused: dict[str, float] = {}
        for side, ranking in (("vector", vector), ("text", text)):
            for rank, source in enumerate(ranking, 1):
                fused[source] = fused.get(source, 0.0) + w[side] / (rrf_k + rank)
        n = min(6, candidates)
        want = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:n]
        hits = _like(hybrid, query, n=n, mode="hybrid", candidates=candidates, rrf_k=rrf_k, weights=weights)
        assert [(h["_id"], round(h["_score"], 12)) for h in hits] == [(i, round(s, 12)) for i, s in want], query
        for hit in hits:
            assert hit["_vector_rank"] == (vector.index(hit["_id"]) + 1 if hit["_id"] in vector else None)
            assert hit["_text_rank"] == (text.index(hit["_id"]) + 1 if hit["_id"] in text else None)
        again = _like(hybrid, query, n=n, mode="hybrid", candidates=candidates, rrf_k=rrf_k, weights=weights)
        assert again == hits  # deterministic


def test_text_side_sees_rows_written_by_another_client(hybrid, raw_docs):
    """The database keeps the text index: a raw write is searchable by text before any drain."""
    raw_docs.insert({"_id": "raw1", "topic": "support", "text": "Error Q-90210 means the cooling pump failed."})
    assert _ids(_like(hybrid, "Q-90210", n=3, mode="text")) == ["raw1"]
    raw_docs.update("raw1", text="The cooling pump works again after the repair.")
    assert _like(hybrid, "Q-90210", n=3, mode="text") == []
    assert _ids(_like(hybrid, "cooling pump repair", n=1, mode="text")) == ["raw1"]
    raw_docs.update("k19", text="Error Q-90210: the office printer is out of toner.")
    assert _ids(_like(hybrid, "Q-90210", n=3, mode="text")) == ["k19"]
    raw_docs.delete("k19")
    assert _like(hybrid, "Q-90210", n=3, mode="text") == []
    hybrid.drain()  # and the vectors catch up: hybrid finds the raw row on both sides
    hit = _like(hybrid, "the cooling pump works again", n=1, mode="hybrid")[0]
    assert (hit["_id"], hit["_vector_rank"], hit["_text_rank"]) == ("raw1", 1, 1)


def test_updates_and_deletes_reach_the_text_side(hybrid):
    hybrid["docs"].update({"_id": CODE_ROW}, {"text": "The partition table is damaged; restore it from the recovery drive."})
    assert _like(hybrid, "E-4471", n=3, mode="text") == []
    hybrid["docs"].update({"_id": "k14"}, {"text": "Error E-4471 also appears when the battery is empty."})
    assert _ids(_like(hybrid, CODE_QUERY, n=1, mode="hybrid")) == ["k14"]
    hybrid["docs"].insert([{"_id": "k21", "topic": "support", "text": "E-9001 is a new code: the screen cable is loose."}])
    assert _ids(_like(hybrid, "E-9001", n=1, mode="text")) == ["k21"]
    hybrid["docs"].delete({"_id": ["k14", "k21"]})
    assert _like(hybrid, "E-4471 E-9001", n=5, mode="text") == []
    assert "k14" not in _ids(_like(hybrid, CODE_QUERY, n=25, mode="hybrid"))


def test_filters_apply_to_the_text_side_before_ranking(hybrid):
    billing = {i for i, topic, _ in CORPUS if topic == "billing"}
    hits = _like(hybrid, CODE_QUERY, n=3, mode="text", filter={"topic": "billing"})
    assert _ids(hits) and set(_ids(hits)) <= {"k13", "k17", "k20"} & billing  # rows with "error"
    assert _ids(hits) == [h["_id"] for h in _like(hybrid, "error", n=10, mode="text") if h["topic"] == "billing"][:3]
    hits = _like(hybrid, CODE_QUERY, n=4, mode="hybrid", filter={"topic": "billing"})
    assert len(hits) == 4 and {h["topic"] for h in hits} == {"billing"}  # n rows: pre-filtered
    assert CODE_ROW not in _ids(hits)
    hits = _like(hybrid, CODE_QUERY, n=5, mode="hybrid", filter={"_id": ["k01", "k13", "k19"]})
    assert _ids(hits)[0] == CODE_ROW and set(_ids(hits)) == {"k01", "k13", "k19"}
    assert _like(hybrid, CODE_QUERY, n=5, mode="text", filter={"topic": "none"}) == []


def test_rerank_by_a_model_scoring_pairs(hybrid):
    OverlapReranker.calls.clear()
    query = "charged twice INV-2291"
    hits = _like(hybrid, query, n=3, mode="hybrid", candidates=6, rerank=OverlapReranker("overlap"))
    assert len(OverlapReranker.calls) == 6  # the first stage's candidates, once each
    assert hits[0]["_id"] == "k07" and hits[0]["_score"] == pytest.approx(1.0)
    assert all("_first_score" in h and "_vector_rank" in h and "_text_rank" in h for h in hits)
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    hybrid.apply(OverlapReranker("overlap"))  # by name, as a stored Model
    assert _ids(_like(hybrid, query, n=3, mode="hybrid", candidates=6, rerank="overlap")) == _ids(hits)
    with pytest.raises(NotFoundError, match="neither a VectorIndex nor a Model"):
        _like(hybrid, query, n=3, rerank="nope")


def test_rerank_by_another_vector_index(hybrid, minilm):
    """Any VectorIndex on the table re-scores the candidates exactly (ColBERT in tests/ext)."""
    second = pinnacle.Listener("docs-emb2", model=minilm("minilm2", predict_kwargs={"normalize_embeddings": True}), key="text", select=hybrid["docs"])
    hybrid.apply(pinnacle.VectorIndex("rerank-idx", indexing_listener=second, measure="dot"))
    hits = _like(hybrid, CODE_QUERY, n=3, mode="hybrid", candidates=4, rerank="rerank-idx")
    first = _like(hybrid, CODE_QUERY, n=4, mode="hybrid", candidates=4)
    assert set(_ids(hits)) <= set(_ids(first))  # only the first stage's candidates
    dense = {h["_id"]: h["_score"] for h in _like(hybrid, CODE_QUERY, n=20)}
    assert [h["_score"] for h in hits] == pytest.approx([dense[h["_id"]] for h in hits], abs=1e-5)
    assert _ids(hits) == sorted(_ids(hits), key=lambda i: -dense[i])


def test_modes_and_options_are_checked(hybrid, db):
    with pytest.raises(ConfigError, match="mode 'fuzzy' is not valid"):
        _like(hybrid, "x", n=3, mode="fuzzy")
    with pytest.raises(ConfigError, match="candidates"):
        _like(hybrid, "x", n=10, mode="hybrid", candidates=5)
    with pytest.raises(ConfigError, match="weights apply to mode='hybrid'"):
        _like(hybrid, "x", n=3, weights={"text": 2})
    with pytest.raises(ConfigError, match="unknown side"):
        _like(hybrid, "x", n=3, mode="hybrid", weights={"bm25": 2})
    with pytest.raises(ConfigError, match="rrf_k"):
        _like(hybrid, "x", n=3, mode="hybrid", rrf_k=0)
    assert _like(hybrid, "!!! ...", n=3, mode="text") == []  # no word: nothing matches
    listener = pinnacle.Listener("plain-emb", model=hybrid.load("Model", "minilm"), key="text", select=hybrid["docs"])
    hybrid.apply(pinnacle.VectorIndex("plain-idx", indexing_listener=listener))
    with pytest.raises(ConfigError, match="full_text=True"):
        hybrid["docs"].like({"text": "x"}, vector_index="plain-idx", n=3, mode="hybrid")
    assert hybrid["docs"].like({"text": "x"}, vector_index="plain-idx", n=3)  # vector mode is unchanged


def test_remove_drops_the_full_text_index_and_apply_makes_it_again(hybrid, connect):
    assert _exists(hybrid)
    other = connect()
    assert _ids(other["docs"].like({"text": "E-4471"}, vector_index="docs-idx", n=1, mode="text")) == [CODE_ROW]
    hybrid.remove("VectorIndex", "docs-idx")
    assert not _exists(hybrid) and hybrid.backend.get_state("fulltext/docs-idx") is None
    assert "docs" in hybrid.backend.list_tables() and hybrid["docs"].count() == len(CORPUS)  # the table stays
    listener = hybrid.load("Listener", "docs-emb")
    hybrid.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener))  # a version without full_text
    assert not _exists(hybrid)
    hybrid.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener, full_text=True))
    assert _exists(hybrid)  # made again, with the rows already there
    assert _ids(_like(hybrid, "E-4471", n=1, mode="text")) == [CODE_ROW]
    hybrid.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener))
    assert not _exists(hybrid)  # the new version has none: dropped
    hybrid.remove("Listener", "docs-emb", recursive=True)
    assert not _exists(hybrid)


def test_recursive_remove_of_the_listener_drops_it_too(hybrid):
    hybrid.remove("Listener", "docs-emb", recursive=True)
    assert not _exists(hybrid) and hybrid.show("VectorIndex") == []


def test_short_codes_follow_the_engines_token_rules(hybrid, backend_uri):
    """MariaDB's InnoDB indexes words of innodb_ft_min_token_size (3) characters or more: "R-71"
    is the words "R" and "71", neither indexed. SQLite, PostgreSQL and MongoDB find it."""
    found = _ids(_like(hybrid, "R-71", n=3, mode="text"))
    if backend_uri.startswith("mysql"):
        ft = hybrid.backend.full_text(TextIndexSpec("docs-idx", "docs", "text"))
        assert ft.limits()["innodb_ft_min_token_size"] == 3
        assert found == []
        assert _ids(_like(hybrid, "R-71", n=3, mode="hybrid"))[0] == "k12"  # the vector side still finds it
    else:
        assert found[0] == "k12"


#: Manuals of four corpus rows each: over chunks, a row ranks by its best chunk.
MANUALS = {"m-a": [1, 14, 15, 18], "m-b": [2, 6, 7, 13], "m-c": [0, 8, 10, 17], "m-d": [3, 5, 9, 11], "m-e": [4, 12, 16, 19]}


def test_hybrid_over_chunks_ranks_rows_by_their_best_chunk(db, minilm, no_text_search, backend_uri):
    if backend_uri.startswith("mongodb"):
        pytest.skip("listener chains are SQL only; MongoDB refuses them (test_chunks.py)")
    topics = {"m-a": "support", "m-b": "support", "m-c": "support", "m-d": "network", "m-e": "billing"}
    db["docs"].insert([
        {"_id": m, "topic": topics[m], "text": " ".join(CORPUS[i][2] for i in rows)} for m, rows in MANUALS.items()
    ])
    db.apply(pinnacle.Listener("chunks", model=pinnacle.TextChunker("chunker", size=100, overlap=0), key="text", select=db["docs"]))
    emb = pinnacle.Listener("chunk-emb", model=minilm(), key="_output", select=db.outputs_table("chunks"))
    db.apply(pinnacle.VectorIndex("chunk-idx", indexing_listener=emb, full_text=True))

    def like(**options):
        return db["docs"].like({"text": "what does E-4471 mean"}, vector_index="chunk-idx", n=3, **options)

    hits = like(mode="hybrid")
    assert hits[0]["_id"] == "m-c" and "E-4471" in hits[0]["_chunk"] and hits[0]["_text_rank"] == 1
    assert len({h["_id"] for h in hits}) == 3 and all(isinstance(h["_chunk"], str) for h in hits)
    text = like(mode="text")
    assert text[0]["_id"] == "m-c" and "E-4471" in text[0]["_chunk"]
    filtered = like(mode="hybrid", filter={"topic": ["network", "billing"]})
    assert {h["_id"] for h in filtered} == {"m-d", "m-e"}  # pre-filtered: both, though far from the query
    reranked = like(mode="hybrid", rerank=OverlapReranker("overlap"), candidates=5)
    assert reranked[0]["_id"] == "m-c" and "E-4471" in reranked[0]["_chunk"]
    db["docs"].update({"_id": "m-c"}, {"text": CORPUS[8][2]})  # the code's chunk goes
    assert "m-c" not in {h["_id"] for h in db["docs"].like({"text": "E-4471"}, vector_index="chunk-idx", n=3, mode="text")}


def test_mongomock_refuses_full_text_saying_why(db, corpus_rows, minilm, backend_uri):
    if not backend_uri.startswith("mongomock://"):
        pytest.skip("mongomock only: the other backends have a full-text engine")
    db["docs"].insert(corpus_rows)
    with pytest.raises(ConfigError, match=r"\$text"):
        _apply(db, minilm)
    assert db.show("VectorIndex") == []  # nothing half-applied
