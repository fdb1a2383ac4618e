"""Reciprocal rank fusion (RRF): one ranking from several, exact and deterministic.

Each side (``"vector"``, ``"text"``...) gives its candidates best first. A candidate's fused
score is the sum, over the sides that found it, of ``weight / (k + rank)`` (ranks start at 1;
a side that did not find it adds nothing). The order is decided in exact rational
arithmetic (:class:`fractions.Fraction`), so two candidates whose sums are equal tie exactly
whatever the float rounding, and ties are broken by id: the same inputs give the same
order on every run and every machine.
"""

from __future__ import annotations

import dataclasses as dc
import typing as t
from fractions import Fraction

from pinnacle.errors import ConfigError

__all__ = ["Fused", "rrf", "RRF_K", "check_weights"]

#: The constant of RRF (Cormack et al., 2009): large enough that the top ranks do not dominate.
RRF_K = 60


@dc.dataclass(frozen=True)
class Fused:
    """One fused candidate: its id, fused score and its rank on each side (``None``: not found)."""

    id: t.Any
    score: float
    ranks: t.Mapping[str, t.Optional[int]]


def check_weights(weights: t.Optional[t.Mapping[str, float]], sides: t.Sequence[str]) -> dict[str, float]:
    """``weights`` completed with 1.0 for each of ``sides``; unknown sides and negative or
    non-finite weights are refused.

    Example:
        >>> check_weights({"text": 2}, ["vector", "text"])
        {'vector': 1.0, 'text': 2.0}
    """
    given = dict(weights or {})
    unknown = sorted(set(given) - set(sides))
    if unknown:
        raise ConfigError(f"weights: unknown side(s) {unknown}; the sides are {list(sides)}.")
    out = {}
    for side in sides:
        value = given.get(side, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise ConfigError(f"weights[{side!r}] must be a finite number >= 0, got {value!r}.")
        out[side] = float(value)
    return out


def _id_key(source: t.Any) -> tuple:
    """A total order on ids: by type name, then value (ids of one table share a type)."""
    return (type(source).__name__, source)


def rrf(
    rankings: t.Mapping[str, t.Sequence[t.Any]], *, k: int = RRF_K,
    weights: t.Optional[t.Mapping[str, float]] = None, n: t.Optional[int] = None,
) -> list[Fused]:
    """Fuse ``rankings`` (side -> ids, best first) by reciprocal rank fusion, best first.

    Args:
        rankings: Per side, the ids it found, best first (an id repeated on one side counts
            at its first rank).
        k: RRF's constant (a positive integer; 60 by default).
        weights: Per side, its weight (1.0 by default; 0 keeps a side's ranks but not its votes).
        n: Keep the ``n`` best (all by default).

    Example:
        >>> [(f.id, f.ranks) for f in rrf({"vector": ["a", "b", "c"], "text": ["c", "a"]})]
        [('a', {'vector': 1, 'text': 2}), ('c', {'vector': 3, 'text': 1}), ('b', {'vector': 2, 'text': None})]
        >>> round(rrf({"vector": ["a"], "text": ["a"]})[0].score, 6)  # 1/61 + 1/61
        0.032787
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigError(f"rrf_k must be a positive integer, got {k!r}.")
    sides = list(rankings)
    weight = check_weights(weights, sides)
    exact_weight = {side: Fraction(w) for side, w in weight.items()}
    ranks: dict[t.Any, dict[str, t.Optional[int]]] = {}
    for side in sides:
        position = 0
        for source in rankings[side]:
            found = ranks.setdefault(source, dict.fromkeys(sides))
            if found[side] is None:
                position += 1
                found[side] = position
    scored = []
    for source, where in ranks.items():
        exact = sum((exact_weight[s] / (k + r) for s, r in where.items() if r is not None), Fraction(0))
        scored.append((exact, source, where))
    scored.sort(key=lambda item: (-item[0], _id_key(item[1])))
    if n is not None:
        scored = scored[: max(0, int(n))]
    return [Fused(source, float(exact), where) for exact, source, where in scored]
