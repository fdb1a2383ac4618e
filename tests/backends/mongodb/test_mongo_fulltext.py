"""The MongoDB text index of a VectorIndex (``full_text=True``).

``[mongodb]`` (a real server, ``PINNACLE_MONGODB_URI``) runs all of it; the whole hybrid
suite runs there too (tests/backends/suite/test_hybrid.py). mongomock does not implement
``$text`` and the wire server answers no ``listIndexes``: there the search's statement is
checked against a recording collection instead, and mongomock's refusal is tested.
"""

from __future__ import annotations

import pytest

import pinnacle
from pinnacle import ConfigError
from pinnacle.backends.fulltext import TextIndexSpec
from pinnacle.plugins.mongodb.fulltext import MOCK_REASON, MongoFullText, text_query

SPEC = TextIndexSpec("idx", "docs", "text")


def test_text_query_matches_any_word_and_never_negates():
    assert text_query("error E-4471 on boot") == {"$text": {"$search": "error E-4471 on boot"}}
    assert text_query('-boot "exact phrase" !!!') == {"$text": {"$search": "boot exact phrase"}}
    assert text_query("  ") is None and text_query("!!! ...") is None
    assert text_query("x", within=["a", "b"], filter={"topic": "t"}) == {
        "$and": [{"$text": {"$search": "x"}}, {"topic": "t"}, {"_id": {"$in": ["a", "b"]}}]
    }


def test_mongomock_has_no_full_text(mongo_uri):
    if not mongo_uri.startswith("mongomock://"):
        pytest.skip("mongomock:// only")
    db = pinnacle.connect(mongo_uri)
    assert db.backend.full_text(SPEC) is None and "$text" in db.backend.full_text_missing()
    db["docs"].insert([{"_id": "a", "text": "hello"}])
    listener = pinnacle.Listener("emb", model=pinnacle.Model("m"), key="text", select="docs")
    with pytest.raises(ConfigError, match=MOCK_REASON.replace("$", r"\$").split(" (")[0]):
        db.apply(pinnacle.VectorIndex("idx", indexing_listener=listener, full_text=True), wait=False)
    assert db.show() == []  # nothing half-applied
    db.close()


def _real_server_only(mongo_kind):
    if mongo_kind == "mongomock":
        pytest.skip(MOCK_REASON)
    if mongo_kind == "wire":
        pytest.skip("the wire server (tests/backends/mongodb/wire_server.py) answers no listIndexes/dropIndexes, and mongomock has no $text")


def test_index_created_found_and_dropped(backend, mongo_kind):
    _real_server_only(mongo_kind)
    backend.insert("docs", [{"_id": "a", "text": "error E-4471 on boot"}, {"_id": "b", "text": "all fine"}])
    found = backend.full_text(SPEC)
    assert isinstance(found, MongoFullText) and not found.exists()
    found.create()
    found.create()  # there already: nothing to do
    assert found.exists()
    assert "_fts__idx" in backend.db["docs"].index_information()
    other = backend.full_text(TextIndexSpec("idx2", "docs", "title"))
    with pytest.raises(ConfigError, match="one per collection"):
        other.create()
    found.drop()
    found.drop()
    assert not found.exists()


def test_search_on_a_real_server(backend, mongo_kind):
    _real_server_only(mongo_kind)
    backend.insert("docs", [
        {"_id": "a", "topic": "x", "text": "error E-4471 on boot"},
        {"_id": "b", "topic": "y", "text": "the boot loader is fine"},
        {"_id": "c", "topic": "x", "text": "nothing here"},
    ])
    found = backend.full_text(SPEC)
    found.create()
    hits = found.search("E-4471 boot", 5)
    assert [h[0] for h in hits] == ["a", "b"] and hits[0][1] > hits[1][1]
    assert [h[0] for h in found.search("boot", 5, filter={"topic": "y"})] == ["b"]
    assert [h[0] for h in found.search("boot", 5, within=["a"])] == ["a"]
    backend.update("docs", {"_id": "c"}, {"text": "boot boot boot"})
    assert found.search("boot", 1)[0][0] == "c"


class _Cursor:
    def __init__(self, docs, calls):
        self.docs, self.calls = docs, calls

    def sort(self, keys):
        self.calls.append(("sort", keys))
        return self

    def limit(self, n):
        self.calls.append(("limit", n))
        return self

    def __iter__(self):
        return iter(self.docs)


class _Collection:
    """Records what the search asks a server for, and answers like one."""

    def __init__(self):
        self.calls = []

    def find(self, query, projection):
        self.calls.append(("find", query, projection))
        return _Cursor([{"_id": "a", "_fts_score": 1.5}, {"_id": "b", "_fts_score": 0.75}], self.calls)


class _Backend:
    safe_uri = "mongodb://server/db"
    is_mock = False

    def __init__(self):
        self.db = {"docs": _Collection()}


def test_search_statement_ranks_by_text_score_then_id():
    backend = _Backend()
    hits = MongoFullText(backend, SPEC).search("error E-4471", 7, filter={"topic": "x"})
    assert hits == [("a", 1.5), ("b", 0.75)]
    score = {"$meta": "textScore"}
    assert backend.db["docs"].calls == [
        ("find", {"$and": [{"$text": {"$search": "error E-4471"}}, {"topic": "x"}]}, {"_id": 1, "_fts_score": score}),
        ("sort", [("_fts_score", score), ("_id", 1)]),
        ("limit", 7),
    ]
    assert MongoFullText(backend, SPEC).search("!!!", 7) == [] and MongoFullText(backend, SPEC).search("x", 0) == []
