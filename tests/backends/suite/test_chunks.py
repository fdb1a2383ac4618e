"""Flatten and chains: chunk long documents, embed the chunks, search returns the parents.

A 5,000-word document goes through ``TextChunker`` (by tokens of the embedding model)
into one output per chunk; a second listener embeds the chunks. Each chunk is embedded
exactly once, an update replaces the chunks and their vectors, a delete removes them,
and a sentence from the middle of the document finds it. MongoDB runs the flatten part;
it refuses chains with a clear error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, StateError
from pinnacle._demo_corpus import demo_rows

sys.path.insert(0, str(Path(__file__).parent))  # chain_models must import by name
from chain_models import Headline  # noqa: E402

MIDDLE = "A violin maker in Cremona carved the scroll of a cello from a single block of maple."
MIDDLE_2 = "The lighthouse keeper painted the spiral staircase a bright shade of orange."


def long_document(seed: int, middle: str, words: int = 5000) -> str:
    """About ``words`` words of varied sentences with ``middle`` half-way through."""
    sentences, count = [], 0
    for row in demo_rows(700, seed=seed):
        if count >= words:
            break
        sentences.append(row["text"])
        count += len(row["text"].split())
    half = len(sentences) // 2
    return " ".join(sentences[:half] + [middle] + sentences[half:])


@pytest.fixture
def chunker(model_path):
    """Chunks of at most 128 tokens of the embedding model's tokenizer (all-MiniLM-L6-v2 reads 256,
    but one sentence in 254 tokens is too diluted to be found; it was trained on 128)."""
    return pinnacle.TextChunker("chunker", unit="tokens", size=128, overlap=16, tokenizer=model_path)


@pytest.fixture
def counted(minilm):
    """The embedding model, counting the texts it embeds (``model.seen``)."""
    model = minilm()
    model.seen = []
    native_batches = model.predict_batches

    def predict_batches(inputs):
        model.seen.extend(inputs)
        return native_batches(inputs)

    model.predict_batches = predict_batches
    return model


def _needs_chains(backend_uri):
    if backend_uri.startswith(("mongomock://", "mongodb")):
        pytest.skip("listener chains are SQL only; MongoDB refuses them (test_mongodb_refuses_chains)")


def _apply_chain(db, chunker, model):
    db.apply(pinnacle.Listener("chunks", model=chunker, key="text", select=db["docs"]))
    emb = pinnacle.Listener("chunk-emb", model=model, key="_output", select=db.outputs_table("chunks"))
    db.apply(pinnacle.VectorIndex("chunk-idx", indexing_listener=emb))


def _items_of(db, source):
    """``{item id: vector}`` of the chunk vectors of ``source``."""
    return {k: v for k, v in db.outputs("chunk-emb").items() if k.startswith(f"{source}/")}


def test_flatten_stores_items_and_replaces_them(db, rows, chunker):
    text = long_document(0, MIDDLE)
    assert 4900 <= len(text.split()) <= 5100
    db["docs"].insert([*rows[:3], {"_id": "long", "topic": "mixed", "text": text}])
    db.apply(pinnacle.Listener("chunks", model=chunker, key="text", select=db["docs"]))
    outputs = db.outputs("chunks")
    assert outputs["long"] == chunker.predict(text)
    assert len(outputs["long"]) >= 20 and any(MIDDLE in c for c in outputs["long"])
    assert outputs["d00"] == [rows[0]["text"]]
    db["docs"].update({"_id": "long"}, {"text": "A short text now."})
    assert db.outputs("chunks")["long"] == ["A short text now."]
    db["docs"].delete({"_id": "long"})
    assert "long" not in db.outputs("chunks")
    assert db.status()["chunks"] == {"pending": 0, "in_flight": 0, "retrying": 0, "failed": 0, "outputs": 3, "version": 0}


def test_long_document_chunked_embedded_searched(db, rows, chunker, counted, encode, backend_uri):
    _needs_chains(backend_uri)
    text = long_document(0, MIDDLE)
    rows = rows[:5]
    db["docs"].insert(rows)
    _apply_chain(db, chunker, counted)
    counted.seen.clear()

    db["docs"].insert([{"_id": "long", "topic": "mixed", "text": text}])
    chunks = chunker.predict(text)
    assert db.outputs("chunks")["long"] == chunks
    vectors = _items_of(db, "long")
    assert sorted(vectors) == sorted(f"long/{i}" for i in range(len(chunks)))
    assert sorted(counted.seen) == sorted(chunks)  # every chunk embedded exactly once
    middle = len(chunks) // 2
    np.testing.assert_allclose(vectors[f"long/{middle}"], encode(chunks[middle]), atol=1e-5)
    assert all(s["pending"] == 0 and s["failed"] == 0 for s in db.status().values())

    hits = db["docs"].like({"text": MIDDLE}, vector_index="chunk-idx", n=3)
    assert [h["_id"] for h in hits][0] == "long" and len({h["_id"] for h in hits}) == 3
    assert MIDDLE in hits[0]["_chunk"] and hits[0]["text"] == text
    assert hits[0]["_score"] > hits[1]["_score"]

    # An update replaces the document's chunks and their vectors, once each.
    counted.seen.clear()
    new_text = long_document(1, MIDDLE_2, words=1000)  # shorter: fewer chunks, some items go
    db["docs"].update({"_id": "long"}, {"text": new_text})
    new_chunks = chunker.predict(new_text)
    assert 5 < len(new_chunks) < len(chunks)
    assert db.outputs("chunks")["long"] == new_chunks
    vectors = _items_of(db, "long")
    assert sorted(vectors) == sorted(f"long/{i}" for i in range(len(new_chunks)))
    assert sorted(counted.seen) == sorted(new_chunks)
    np.testing.assert_allclose(vectors["long/0"], encode(new_chunks[0]), atol=1e-5)
    assert db["docs"].like(MIDDLE_2, vector_index="chunk-idx", n=1)[0]["_id"] == "long"

    # A delete removes the chunks and their vectors.
    db["docs"].delete({"_id": "long"})
    assert "long" not in db.outputs("chunks") and not _items_of(db, "long")
    assert db.outputs_table("chunk-emb").count() == len(rows)
    assert "long" not in {h["_id"] for h in db["docs"].like(MIDDLE_2, vector_index="chunk-idx", n=30)}


def test_search_over_chunks_filters_and_dedups(db, rows, chunker, counted, backend_uri):
    _needs_chains(backend_uri)
    db["docs"].insert([*rows, {"_id": "long", "topic": "food", "text": long_document(2, MIDDLE, words=600)}])
    _apply_chain(db, chunker, counted)
    hits = db["docs"].like({"text": MIDDLE}, vector_index="chunk-idx", n=6, filter={"topic": "food"})
    assert [h["_id"] for h in hits][0] == "long"
    assert len(hits) == 6 and len({h["_id"] for h in hits}) == 6  # 5 short food rows + the long one
    assert all(h["topic"] == "food" for h in hits)
    assert len(db["docs"].like("anything", vector_index="chunk-idx", n=50)) == len(rows) + 1
    assert db["docs"].like("x", vector_index="chunk-idx", n=3, filter={"topic": "none"}) == []


def test_downstream_backfills_and_follows_outside_writes(db, rows, chunker, minilm, raw_docs, backend_uri):
    _needs_chains(backend_uri)
    db["docs"].insert(rows[:4])
    db.apply(pinnacle.Listener("chunks", model=chunker, key="text", select=db["docs"]))
    emb = pinnacle.Listener("chunk-emb", model=minilm(), key="_output", select=db.outputs_table("chunks"))
    db.apply(pinnacle.VectorIndex("chunk-idx", indexing_listener=emb))
    assert sorted(db.outputs("chunk-emb")) == [f"d0{i}/0" for i in range(4)]  # backfilled from the chunks
    raw_docs.insert({"_id": "x1", "text": "Written by another client.", "topic": "tech"})
    db.drain()  # upstream first, then what its commit queued downstream
    assert db.outputs("chunks")["x1"] == ["Written by another client."]
    assert "x1/0" in db.outputs("chunk-emb")
    raw_docs.delete("d01")
    db.drain()
    assert "d01" not in db.outputs("chunks") and "d01/0" not in db.outputs("chunk-emb")


def test_chain_guards(db, rows, chunker, minilm, backend_uri):
    _needs_chains(backend_uri)
    db["docs"].insert(rows[:2])
    _apply_chain(db, chunker, minilm())
    with pytest.raises(StateError, match="chunk-emb"):
        db.remove("Listener", "chunks")
    bigger = pinnacle.TextChunker("chunker", unit="tokens", size=200, overlap=16, tokenizer=chunker.tokenizer)
    with pytest.raises(StateError, match="chunk-emb"):
        db.apply(pinnacle.Listener("chunks", model=bigger, key="text", select=db["docs"]))
    with pytest.raises(ConfigError, match="not vectors"):
        db.apply(pinnacle.VectorIndex("bad-idx", indexing_listener=db.load("Listener", "chunks")))
        db["docs"].like("x", vector_index="bad-idx")
    db.remove("Listener", "chunks", recursive=True)
    assert db.show("Listener") == [] and db.show("VectorIndex") == []


def test_mongodb_refuses_chains(db, rows, chunker, minilm, backend_uri):
    if not backend_uri.startswith(("mongomock://", "mongodb")):
        pytest.skip("MongoDB only")
    db["docs"].insert(rows[:2])
    db.apply(pinnacle.Listener("chunks", model=chunker, key="text", select=db["docs"]))
    with pytest.raises(ConfigError, match="not supported on MongoDB"):
        db.apply(pinnacle.Listener("chunk-emb", model=minilm(), key="_output", select=db.outputs_table("chunks")))


def test_replacing_items_is_one_transaction(db, minilm, backend_uri, monkeypatch):
    """A crash inside the commit that replaces a row's items leaves the old items, their
    vectors and the queue entry as they were; the next drain does the work."""
    _needs_chains(backend_uri)
    from pinnacle.plugins.sql import claims

    db["docs"].insert([{"_id": "a", "topic": "t", "text": "one two three four five six"}])
    _apply_chain(db, pinnacle.TextChunker("words", size=12, overlap=4), minilm())
    chunks, vectors = db.outputs("chunks"), db.outputs("chunk-emb")
    assert len(chunks["a"]) == 5 and len(vectors) == 5
    replace = claims._replace_items

    def crash(*args, **kwargs):
        replace(*args, **kwargs)  # old items deleted, new ones inserted, downstream queued...
        raise RuntimeError("killed before commit")

    monkeypatch.setattr(claims, "_replace_items", crash)
    with pytest.raises(RuntimeError, match="killed"):
        db["docs"].update({"_id": "a"}, {"text": "seven eight"})
    assert db.outputs("chunks") == chunks and sorted(db.outputs("chunk-emb")) == sorted(vectors)
    status = db.status()
    assert status["chunks"]["pending"] == 1 and status["chunk-emb"]["pending"] == 0
    monkeypatch.undo()
    db.drain()
    assert db.outputs("chunks") == {"a": ["seven eight"]} and sorted(db.outputs("chunk-emb")) == ["a/0"]


def test_chain_on_single_text_outputs(db, minilm, backend_uri):
    """A chain whose first model returns one text per row (not flattened)."""
    _needs_chains(backend_uri)
    db["docs"].insert([
        {"_id": "a", "text": "Bees dance to show where flowers are. Then they fly off."},
        {"_id": "b", "text": "The ferry was cancelled. A storm was coming."},
    ])
    db.apply(pinnacle.Listener("headline", model=Headline("headline"), key="text", select=db["docs"]))
    emb = pinnacle.Listener("headline-emb", model=minilm(), key="_output", select=db.outputs_table("headline"))
    db.apply(pinnacle.VectorIndex("headline-idx", indexing_listener=emb))
    assert db.outputs("headline") == {"a": "Bees dance to show where flowers are", "b": "The ferry was cancelled"}
    assert sorted(db.outputs("headline-emb")) == ["a", "b"]
    hits = db["docs"].like({"text": "insects and flowers"}, vector_index="headline-idx", n=2)
    assert [h["_id"] for h in hits] == ["a", "b"] and hits[0]["_chunk"] == "Bees dance to show where flowers are"
    db["docs"].update({"_id": "b"}, {"text": "Insects love flowers. Really."})
    assert db.outputs("headline")["b"] == "Insects love flowers"
    db["docs"].delete({"_id": "a"})
    assert sorted(db.outputs("headline-emb")) == ["b"]


def test_row_whose_item_ids_are_too_long_fails_alone(db, raw_engine):
    import sqlalchemy as sa

    long_id = "x" * 300
    with raw_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id VARCHAR(400) PRIMARY KEY, body TEXT)"))
        conn.execute(sa.text("INSERT INTO notes VALUES (:a, 'one two three'), ('ok', 'four five')"), {"a": long_id})
    db.apply(pinnacle.Listener("chunks", model=pinnacle.TextChunker("c", size=50, overlap=5), key="body", select=db["notes"]))
    assert db.outputs("chunks") == {"ok": ["four five"]}
    [failure] = db.failures("chunks")
    assert failure["_source"] == long_id and "longer than 255 characters" in failure["message"]
