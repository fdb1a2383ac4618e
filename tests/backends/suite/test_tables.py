"""Tables: created on first insert, rows read back as written."""

from __future__ import annotations

import pytest

from pinnacle import ConfigError, NotFoundError


def test_insert_creates_table_and_returns_ids(db):
    assert "docs" not in db.backend.list_tables()
    ids = db["docs"].insert([{"text": "first"}, {"text": "second"}, {"text": "third"}])
    assert db.backend.list_tables() == ["docs"]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(isinstance(i, str) and i for i in ids)
    assert db["docs"].count() == 3
    assert [db["docs"].get(i)["text"] for i in ids] == ["first", "second", "third"]
    more = db["docs"].insert([{"text": "fourth"}])
    assert len(more) == 1 and more[0] not in ids and db["docs"].count() == 4


def test_insert_keeps_given_ids(db):
    assert db["docs"].insert([{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}]) == ["a", "b"]
    assert db["docs"].get("b") == {"_id": "b", "text": "y"}
    assert db["docs"].get("missing") is None


def test_values_round_trip(db):
    row = {"_id": "r1", "text": "héllo ✓ 'quoted' \"double\"", "n": 2**40, "x": 0.125, "flag": True, "meta": {"a": [1, 2]}}
    db["things"].insert([row, {"_id": "r2", "text": "other", "n": -1, "x": -2.5, "flag": False, "meta": {"b": None}}])
    got = db["things"].get("r1")
    assert got == row
    assert type(got["n"]) is int and type(got["x"]) is float and type(got["flag"]) is bool
    assert db["things"].get("r2")["flag"] is False


def test_select_update_delete(db):
    db["docs"].insert([{"_id": f"i{k}", "text": f"t{k}", "topic": "even" if k % 2 == 0 else "odd"} for k in range(6)])
    assert sorted(r["_id"] for r in db["docs"].select({"topic": "odd"})) == ["i1", "i3", "i5"]
    assert sorted(r["_id"] for r in db["docs"].select({"_id": ["i0", "i4", "nope"]})) == ["i0", "i4"]
    assert sorted(r["_id"] for r in db["docs"].select(ids=["i2", "i3"])) == ["i2", "i3"]
    assert db["docs"].select({"topic": "odd"}, columns=["_id"], limit=1)[0].keys() == {"_id"}
    assert db["docs"].update({"topic": "odd"}, {"text": "changed"}) == 3
    assert {r["text"] for r in db["docs"].select({"topic": "odd"})} == {"changed"}
    assert {r["text"] for r in db["docs"].select({"topic": "even"})} == {"t0", "t2", "t4"}
    assert db["docs"].delete({"topic": "even"}) == 3
    assert db["docs"].count() == 3 and db["docs"].count({"topic": "even"}) == 0


def test_unknown_columns_and_tables_are_config_errors(db, schemaless):
    db["docs"].insert([{"text": "x"}])
    if schemaless:  # MongoDB: a collection takes any field; missing collections are still errors
        db["docs"].insert([{"text": "y", "nope": 1}])
        assert db["docs"].count({"nope": 1}) == 1 and db["docs"].count({"nope": 2}) == 0
        with pytest.raises(NotFoundError):
            db["missing"].select()
        with pytest.raises(ConfigError, match="field name"):
            db["docs"].insert([{"$bad": 1}])
        return
    with pytest.raises(ConfigError, match="unknown column"):
        db["docs"].insert([{"text": "y", "nope": 1}])
    with pytest.raises(ConfigError, match="nope"):
        db["docs"].update({"text": "x"}, {"nope": 1})
    with pytest.raises(ConfigError, match="nope"):
        db["docs"].select({"nope": 1})
    with pytest.raises(NotFoundError):
        db["missing"].select()
    assert db["docs"].count() == 1


def test_where_must_be_a_mapping(db):
    (row_id,) = db["docs"].insert([{"text": "x"}])
    for call in (lambda: db["docs"].update(row_id, {"text": "y"}), lambda: db["docs"].delete(row_id),
                 lambda: db["docs"].select(row_id), lambda: db["docs"].count(row_id)):
        with pytest.raises(ConfigError, match=r"'where' must be a dict of column -> value \(e.g. \{'_id'"):
            call()
    assert db["docs"].get(row_id)["text"] == "x"
    assert db["docs"].update({"_id": row_id}, {"text": "y"}) == 1 and db["docs"].get(row_id)["text"] == "y"


def test_insert_rejects_non_rows(db):
    with pytest.raises(ConfigError, match="list of dicts"):
        db["docs"].insert(["just a string"])
    assert db["docs"].insert([]) == []
