"""MaxSimSearcher: exact late-interaction search, checked against brute force numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pinnacle.backends import maxsim as maxsim_module
from pinnacle.backends.maxsim import MaxSimSearcher, maxsim, maxsim_scores

DIM = 16


def _brute(docs: dict, query: np.ndarray, n: int, allowed=None) -> list:
    scores = {i: float((query.astype(np.float64) @ d.astype(np.float64).T).max(axis=1).sum()) for i, d in docs.items()}
    order = sorted((i for i in scores if allowed is None or i in allowed), key=lambda i: -scores[i])
    return [(i, scores[i]) for i in order[:n]]


def _docs(rng, count: int, start: int = 0) -> dict:
    out = {}
    for k in range(start, start + count):
        m = rng.normal(size=(int(rng.integers(1, 30)), DIM)).astype(np.float32)
        out[f"d{k}"] = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def _assert_same(got, want):
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-4)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_exact_against_brute_force(rng):
    docs = _docs(rng, 120)
    s = MaxSimSearcher()
    s.upsert(list(docs), list(docs.values()))
    assert len(s) == 120 and "d5" in s
    for _ in range(5):
        q = rng.normal(size=(8, DIM)).astype(np.float32)
        _assert_same(s.search(q, n=10), _brute(docs, q, 10))


def test_small_chunks_give_the_same_scores(rng, monkeypatch):
    docs = _docs(rng, 60)
    s = MaxSimSearcher()
    s.upsert(list(docs), list(docs.values()))
    q = rng.normal(size=(4, DIM)).astype(np.float32)
    want = s.search(q, n=60)
    monkeypatch.setattr(maxsim_module, "_CHUNK_TOKENS", 7)  # many chunks, some of one row
    _assert_same(s.search(q, n=60), want)


def test_replace_remove_and_compaction(rng):
    docs = _docs(rng, 50)
    s = MaxSimSearcher()
    s.upsert(list(docs), list(docs.values()))
    replaced = _docs(rng, 20)  # d0..d19 get new matrices
    s.upsert(list(replaced), list(replaced.values()))
    docs.update(replaced)
    removed = [f"d{k}" for k in range(20, 35)]
    s.remove(removed + ["missing"])
    for r in removed:
        docs.pop(r)
    s.upsert(["late"], [docs.setdefault("late", _docs(rng, 1)["d0"])])
    assert len(s) == len(docs)
    assert s._dead * 2 < max(s._used, 1)  # compacted once half the buffer was dead
    q = rng.normal(size=(6, DIM)).astype(np.float32)
    _assert_same(s.search(q, n=len(docs)), _brute(docs, q, len(docs)))


def test_within_restricts_before_ranking(rng):
    docs = _docs(rng, 80)
    s = MaxSimSearcher()
    s.upsert(list(docs), list(docs.values()))
    q = rng.normal(size=(5, DIM)).astype(np.float32)
    allowed = {f"d{k}" for k in range(0, 80, 7)} | {"unknown"}
    _assert_same(s.search(q, n=5, within=allowed), _brute(docs, q, 5, allowed))
    assert s.search(q, n=5, within={"unknown"}) == []


def test_candidates_stage(rng):
    docs = _docs(rng, 200)
    exact = MaxSimSearcher()
    staged = MaxSimSearcher(candidates=40)
    for s in (exact, staged):
        s.upsert(list(docs), list(docs.values()))
    q = rng.normal(size=(6, DIM)).astype(np.float32)
    got = staged.search(q, n=10)
    assert len(got) == 10
    means = {i: d.mean(0) / np.linalg.norm(d.mean(0)) for i, d in docs.items()}
    centre = q.mean(0)
    shortlist = set(sorted(means, key=lambda i: -float(means[i] @ centre))[:40])
    assert {i for i, _ in got} <= shortlist  # only candidates are scored
    _assert_same(got, _brute({i: docs[i] for i in shortlist}, q, 10))  # and scored exactly
    wide = MaxSimSearcher(candidates=1000)  # more candidates than rows: exact
    wide.upsert(list(docs), list(docs.values()))
    _assert_same(wide.search(q, n=10), exact.search(q, n=10))


def test_errors_and_edges(rng):
    s = MaxSimSearcher()
    assert s.search(np.zeros((2, DIM)), n=3) == []
    s.upsert(["a"], [np.ones((2, DIM))])
    with pytest.raises(ValueError, match="differs"):
        s.upsert(["b"], [np.ones((2, DIM + 1))])
    with pytest.raises(ValueError, match="non-empty"):
        s.upsert(["b"], [np.ones((0, DIM))])
    with pytest.raises(ValueError, match="match"):
        s.search(np.ones((2, DIM + 1)), n=1)
    with pytest.raises(ValueError, match="ids"):
        s.upsert(["a", "b"], [np.ones((2, DIM))])
    with pytest.raises(ValueError, match="candidates"):
        MaxSimSearcher(candidates=0)
    assert s.search(np.ones(DIM), n=0) == []
    assert [i for i, _ in s.search(np.ones(DIM), n=5)] == ["a"]  # a 1-d query is one vector
    s.clear()
    assert len(s) == 0


def test_maxsim_functions():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d1 = np.array([[1.0, 0.0], [0.6, 0.8]])
    d2 = np.array([[0.0, 1.0]])
    assert maxsim(q, d1) == pytest.approx(1.8)
    np.testing.assert_allclose(maxsim_scores([q, q[:1]], [d1, d2]), [[1.8, 1.0], [1.0, 0.0]], atol=1e-6)
