"""TextChunker (by characters and by tokens), the Text datatype, and flattened outputs on SQLite."""

from __future__ import annotations

import random

import pytest

import pinnacle
from pinnacle import ConfigError, Text, TextChunker
from pinnacle.base.encoding import decode, encode
from pinnacle.components.chunker import split_chars, split_offsets
from pinnacle.components.datatype import datatype_from_json


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(n))


@pytest.mark.parametrize("size,overlap", [(50, 0), (200, 40), (1000, 100)])
def test_char_chunks_are_bounded_cover_the_text_and_overlap(size, overlap):
    text = _words(3000)
    chunks = split_chars(text, size, overlap)
    assert all(0 < len(c) <= size for c in chunks)
    words = text.split()
    assert sum(len(c.split()) for c in chunks) >= len(words)  # nothing lost
    position = 0
    for chunk in chunks:  # each chunk is a run of whole words, in order
        found = text.find(chunk, max(0, position - size))
        assert found >= 0 and (found == 0 or text[found - 1] == " ")
        position = found + len(chunk)
    assert position == len(text)
    if overlap:
        assert all(set(a.split()[-1:]) & set(b.split()) for a, b in zip(chunks, chunks[1:]))


def test_char_chunks_of_odd_texts():
    assert split_chars("", 10, 2) == []
    assert split_chars("   \n ", 10, 2) == []
    assert split_chars("short", 10, 2) == ["short"]
    assert split_chars("x" * 25, 10, 0) == ["x" * 10, "x" * 10, "x" * 5]  # no space: cut anyway
    assert split_chars("x" * 25, 10, 3) == ["x" * 10, "x" * 10, "x" * 10, "x" * 4]


def test_token_windows():
    offsets = [(i * 2, i * 2 + 1) for i in range(10)]
    assert split_offsets(offsets, 4, 1) == [(0, 7), (6, 13), (12, 19)]
    assert split_offsets(offsets, 20, 5) == [(0, 19)]
    assert split_offsets([], 4, 1) == []


def test_token_chunks_fit_the_model_window(model_path):
    from transformers import AutoTokenizer

    chunker = TextChunker("tok", unit="tokens", size=64, overlap=8, tokenizer=model_path)
    text = _words(1500, seed=3)
    chunks = chunker.predict(text)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert len(chunks) > 10 and max(lengths) <= 64
    assert chunks[0] == text[: len(chunks[0])] and text.endswith(chunks[-1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"unit": "words"}, "valid ones are"),
        ({"size": 0}, "size"),
        ({"size": 10, "overlap": 10}, "overlap"),
        ({"unit": "tokens"}, "needs a tokenizer"),
        ({"flatten": False}, "flatten"),
        ({"datatype": 384}, "datatype"),
    ],
)
def test_chunker_validates_its_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TextChunker("c", **kwargs)


def test_chunker_round_trips_and_rejects_non_text():
    chunker = TextChunker("c", size=300, overlap=30)
    again = decode(encode(chunker))
    assert isinstance(again, TextChunker) and again.uuid == chunker.uuid
    assert isinstance(again.datatype, Text) and again.flatten
    assert chunker.validate_input(None) and chunker.validate_input(b"bytes") and chunker.validate_input("ok") is None
    assert TextChunker("c", size=301, overlap=30).uuid != chunker.uuid


def test_text_datatype():
    assert datatype_from_json(Text().to_json()) == Text()
    assert Text().decode(b"caf\xc3\xa9") == "café"
    with pytest.raises(ValueError, match="expected text"):
        Text().encode(3)


def test_flattened_outputs_on_sqlite(sqlite_db):
    db = sqlite_db
    db["docs"].insert([{"_id": "a", "text": "one two three four five six"}, {"_id": "b", "text": "   "}])
    db.apply(pinnacle.Listener("chunks", model=TextChunker("c", size=12, overlap=4), key="text", select=db["docs"]))
    assert db.outputs("chunks") == {"a": ["one two", "two three", "three four", "four five", "five six"]}
    rows = db.outputs_table("chunks").select()
    assert sorted(r["_id"] for r in rows) == [f"a/{i}" for i in range(5)]
    assert {r["_source"] for r in rows} == {"a"} and sorted(r["_position"] for r in rows) == list(range(5))
    db["docs"].update({"_id": "a"}, {"text": "seven"})
    assert db.outputs("chunks") == {"a": ["seven"]}
    assert [r["_id"] for r in db.outputs_table("chunks").select()] == ["a/0"]
    assert db.status()["chunks"]["outputs"] == 1 and db.status()["chunks"]["failed"] == 0
