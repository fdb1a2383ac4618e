"""Reciprocal rank fusion: against a brute-force reference, exact ties broken by id, options checked."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from pinnacle import ConfigError
from pinnacle.fusion import check_weights, rrf


def _reference(rankings, k=60, weights=None):
    """Every id's sum of weight / (k + rank), exactly; best first, ties by id."""
    weights = weights or {}
    scores: dict = {}
    for side, ranking in rankings.items():
        seen = []
        for source in ranking:
            if source not in seen:
                seen.append(source)
        for rank, source in enumerate(seen, 1):
            scores[source] = scores.get(source, Fraction(0)) + Fraction(weights.get(side, 1.0)) / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_brute_force_reference(seed):
    rng = random.Random(seed)
    pool = [f"r{i:03d}" for i in range(60)]
    rankings = {"vector": rng.sample(pool, rng.randint(0, 40)), "text": rng.sample(pool, rng.randint(0, 40))}
    k = rng.choice([1, 10, 60])
    weights = rng.choice([None, {"vector": 0.5}, {"text": 3.0, "vector": 1.5}])
    got = rrf(rankings, k=k, weights=weights)
    want = _reference(rankings, k, weights)
    assert [f.id for f in got] == [source for source, _ in want]
    assert [f.score for f in got] == [float(score) for _, score in want]
    for fused in got:
        for side, ranking in rankings.items():
            assert fused.ranks[side] == (ranking.index(fused.id) + 1 if fused.id in ranking else None)
    assert rrf(rankings, k=k, weights=weights, n=5) == got[:5]


def test_equal_sums_tie_exactly_and_break_by_id():
    # 1/(60+1) + 1/(60+4) and 1/(60+4) + 1/(60+1): the same sum, whatever the float rounding.
    fused = rrf({"vector": ["b", "x", "y", "a"], "text": ["a", "p", "q", "b"]})
    assert [f.id for f in fused[:2]] == ["a", "b"] and fused[0].score == fused[1].score
    assert [f.id for f in rrf({"vector": ["z"], "text": ["y"]})] == ["y", "z"]  # 1/61 each: by id
    assert [f.id for f in rrf({"vector": [3, 1], "text": [1, 3]})] == [1, 3]  # integer ids sort as numbers


def test_a_repeated_id_counts_at_its_first_rank():
    fused = rrf({"vector": ["a", "a", "b"]})
    assert [(f.id, f.ranks["vector"]) for f in fused] == [("a", 1), ("b", 2)]


def test_weights_and_k():
    assert [f.id for f in rrf({"vector": ["a", "b"], "text": ["b", "a"]}, weights={"text": 2.0})] == ["b", "a"]
    assert [f.id for f in rrf({"vector": ["a"], "text": ["b"]}, weights={"text": 0.0})] == ["a", "b"]
    assert rrf({"vector": ["a"]}, k=1)[0].score == 0.5
    assert rrf({}) == [] and rrf({"vector": [], "text": []}) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "60"])
def test_k_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="rrf_k"):
        rrf({"vector": ["a"]}, k=bad)


def test_weights_are_checked():
    assert check_weights(None, ["vector", "text"]) == {"vector": 1.0, "text": 1.0}
    for bad in ({"vector": -1}, {"text": float("nan")}, {"text": float("inf")}, {"text": "1"}, {"text": True}):
        with pytest.raises(ConfigError, match="weights"):
            check_weights(bad, ["vector", "text"])
    with pytest.raises(ConfigError, match="unknown side"):
        check_weights({"bm25": 1}, ["vector", "text"])
