"""NumpySearcher: exact search, checked against brute force numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pinnacle.backends.searcher import NumpySearcher
from search_reference import brute_force_scores

DIM = 24


def _brute(matrix, ids, query, measure, n, allowed=None):
    scores = brute_force_scores(matrix, query, measure)
    order = [i for i in np.argsort(-scores, kind="stable") if allowed is None or ids[i] in allowed]
    return [(ids[i], float(scores[i])) for i in order[:n]]


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    matrix = rng.normal(size=(200, DIM)).astype(np.float32)
    ids = [f"id{i}" for i in range(200)]
    return matrix, ids, rng


@pytest.mark.parametrize("measure", ["cosine", "dot", "l2"])
def test_matches_brute_force(data, measure):
    matrix, ids, rng = data
    s = NumpySearcher(measure)
    s.upsert(ids, matrix)
    assert len(s) == 200
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        got = s.search(q, n=10)
        want = _brute(matrix, ids, q, measure, 10)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([x for _, x in got], [x for _, x in want], rtol=1e-4, atol=1e-4)
        scores = [x for _, x in got]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("measure", ["cosine", "dot", "l2"])
def test_exact_vector_ranks_first(data, measure):
    matrix, ids, _ = data
    s = NumpySearcher(measure)
    s.upsert(ids, matrix)
    if measure == "dot":  # dot: the exact match need not win; check against brute force instead
        assert s.search(matrix[17], n=1)[0][0] == _brute(matrix, ids, matrix[17], "dot", 1)[0][0]
        return
    best, score = s.search(matrix[17], n=1)[0]
    assert best == "id17"
    assert score == pytest.approx(1.0 if measure == "cosine" else 0.0, abs=1e-5)


def test_upsert_replaces_and_remove_drops(data):
    matrix, ids, rng = data
    s = NumpySearcher("cosine")
    s.upsert(ids[:100], matrix[:100])
    s.upsert(ids[100:], matrix[100:])  # growth in place
    assert len(s) == 200
    target = rng.normal(size=DIM).astype(np.float32)
    s.upsert(["id5"], target[None, :])  # replace an existing id
    assert len(s) == 200
    assert s.search(target, n=1)[0][0] == "id5"
    s.remove(["id5", "id0", "not-there"])
    assert len(s) == 198 and "id5" not in s and "id0" not in s and "id199" in s
    got = [i for i, _ in s.search(target, n=198)]
    assert "id5" not in got and "id0" not in got and len(got) == 198
    # the rows moved by remove() still carry their own vectors
    kept_ids = [i for i in ids if i not in ("id0", "id5")]
    kept = matrix[[ids.index(i) for i in kept_ids]]
    q = rng.normal(size=DIM).astype(np.float32)
    assert [i for i, _ in s.search(q, n=20)] == [i for i, _ in _brute(kept, kept_ids, q, "cosine", 20)]


def test_duplicate_ids_in_one_upsert_keep_the_last(data):
    matrix, _, _ = data
    s = NumpySearcher("dot")
    s.upsert(["a", "b", "a"], matrix[:3])
    assert len(s) == 2
    assert s.search(matrix[2], n=1)[0][0] == _brute(matrix[1:3], ["b", "a"], matrix[2], "dot", 1)[0][0]


@pytest.mark.parametrize("measure", ["cosine", "dot", "l2"])
def test_within_prefilters_and_still_returns_n(data, measure):
    matrix, ids, rng = data
    s = NumpySearcher(measure)
    s.upsert(ids, matrix)
    allowed = set(ids[::7])  # 29 ids
    q = rng.normal(size=DIM).astype(np.float32)
    got = s.search(q, n=10, within=allowed)
    assert len(got) == 10
    assert all(i in allowed for i, _ in got)
    assert [i for i, _ in got] == [i for i, _ in _brute(matrix, ids, q, measure, 10, allowed)]


def test_within_smaller_than_n_and_unknown_ids(data):
    matrix, ids, rng = data
    s = NumpySearcher("cosine")
    s.upsert(ids, matrix)
    q = rng.normal(size=DIM).astype(np.float32)
    got = s.search(q, n=10, within={"id3", "id4", "nope"})
    assert sorted(i for i, _ in got) == ["id3", "id4"]
    assert s.search(q, n=10, within=set()) == []
    assert s.search(q, n=10, within={"nope"}) == []


def test_edge_cases(data):
    matrix, ids, _ = data
    s = NumpySearcher("cosine")
    assert s.search(matrix[0], n=5) == []
    s.upsert(ids[:3], matrix[:3])
    assert len(s.search(matrix[0], n=50)) == 3
    assert s.search(matrix[0], n=0) == []
    with pytest.raises(ValueError, match="length"):
        s.search(np.ones(DIM + 1, dtype=np.float32), n=1)
    with pytest.raises(ValueError, match="length"):
        s.upsert(["x"], np.ones((1, DIM + 1), dtype=np.float32))
    s.clear()
    assert len(s) == 0 and s.search(matrix[0], n=1) == []


def test_zero_vector_does_not_produce_nan():
    s = NumpySearcher("cosine")
    s.upsert(["zero", "one"], np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32))
    got = s.search(np.array([1.0, 0.0]), n=2)
    assert got[0][0] == "one"
    assert all(np.isfinite(x) for _, x in got)
