"""``like()`` beyond one vector search: the text side, their fusion, and a second stage.

- ``mode="text"``: the database's full-text index alone (``VectorIndex(full_text=True)``);
- ``mode="hybrid"``: the ``candidates`` best of each side, fused by reciprocal rank
  (:func:`pinnacle.fusion.rrf`, ``rrf_k`` and ``weights``);
- ``rerank=``: the first stage's ``candidates`` re-scored by another VectorIndex (ColBERT's
  MaxSim) or a Model scoring ``(query, text)`` pairs (:mod:`pinnacle.search.rerank`).

Filters apply to each side before it ranks (pre-filtering). On an index over chunks of the
table's rows, each side ranks rows by their best chunk. Every hit has ``_score`` (the fused
score; the text engine's in ``mode="text"``; the second stage's with ``rerank``), and
``_vector_rank`` / ``_text_rank``: its rank on each side, ``None`` where that side did not
find it. With ``rerank``, ``_first_score`` keeps the first stage's score.
"""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle.backends.fulltext import FullText
from pinnacle.errors import ConfigError
from pinnacle.fusion import RRF_K, check_weights, rrf

if t.TYPE_CHECKING:
    from pinnacle.backends.base import DataBackend

__all__ = ["MODES", "Query", "Candidates", "first_stage", "check_options", "default_candidates"]

MODES = ("vector", "text", "hybrid")

Hits = list[tuple[t.Any, float]]


def default_candidates(n: int) -> int:
    """Candidates per side when ``candidates`` is not given: ``max(4 * n, 50)``.

    Example:
        >>> default_candidates(5), default_candidates(100)
        (50, 400)
    """
    return max(4 * n, 50)


def check_options(
    n: int, mode: str, candidates: t.Optional[int], rrf_k: int, weights: t.Optional[t.Mapping[str, float]] = None,
) -> int:
    """Validate ``like()``'s options; returns the candidates per side."""
    if mode not in MODES:
        raise ConfigError(f"like(): mode {mode!r} is not valid; valid ones are {list(MODES)}.")
    if weights is not None:
        if mode != "hybrid":
            raise ConfigError(f"like(): weights apply to mode='hybrid' (mode is {mode!r}).")
        check_weights(weights, ["vector", "text"])
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"like(): n must be an integer >= 0, got {n!r}.")
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k <= 0:
        raise ConfigError(f"like(): rrf_k must be a positive integer, got {rrf_k!r}.")
    if candidates is None:
        return default_candidates(n)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < max(n, 1):
        raise ConfigError(f"like(): candidates (per side) must be an integer >= n ({n}), got {candidates!r}.")
    return candidates


@dc.dataclass
class Query:
    """One search as the first stage sees it.

    ``vector``: a callable giving the query's vector (computed only when the vector side runs);
    ``live``: the run-time vector index (``search(vector, k, within=..., filter=...)``);
    ``text``: the full-text index, ``None`` when the mode needs none; ``items``: the table the
    index searches (``table`` itself, or the outputs table of a listener on it: chunks).
    """

    backend: "DataBackend"
    table: str
    items: str
    text_query: t.Optional[str]
    vector: t.Callable[[], t.Any]
    live: t.Any
    text: t.Optional[FullText]
    filter: t.Optional[t.Mapping[str, t.Any]] = None

    @property
    def chunked(self) -> bool:
        return self.items != self.table


@dc.dataclass
class Candidates:
    """One side's rows of the searched table, best first, with their scores and best chunks."""

    ids: list[t.Any] = dc.field(default_factory=list)
    scores: dict[t.Any, float] = dc.field(default_factory=dict)
    chunks: dict[t.Any, t.Any] = dc.field(default_factory=dict)


def _side(query: Query, search: t.Callable[[int, t.Optional[set]], Hits], k: int, within: t.Optional[set]) -> Candidates:
    """The ``k`` best rows of one side. Over chunks, items are fetched until ``k`` distinct rows
    are found (or the side has no more), each row at its best chunk."""
    if not query.chunked:
        hits = search(k, within)
        return Candidates([h[0] for h in hits], dict(hits))
    backend = query.backend
    item_pk = backend.primary_key(query.items)
    fetch = max(4 * k, 16)
    while True:
        hits = search(fetch, within)
        columns = list(dict.fromkeys([item_pk, "_source", "_output"]))
        rows = {r[item_pk]: r for r in backend.select(query.items, ids=[h[0] for h in hits], columns=columns)} if hits else {}
        found = Candidates()
        for item, score in hits:
            row = rows.get(item)
            if row is None or row["_source"] in found.scores:
                continue
            found.ids.append(row["_source"])
            found.scores[row["_source"]] = score
            found.chunks[row["_source"]] = row["_output"]
        if len(found.ids) >= k or len(hits) < fetch:
            del found.ids[k:]
            return found
        fetch *= 4


def _within(query: Query) -> t.Optional[set]:
    """Over chunks: the chunks of the rows matching the filter (``None``: no filter)."""
    if not query.chunked or not query.filter:
        return None
    backend = query.backend
    parents = backend.ids(query.table, query.filter)
    return set(backend.ids(query.items, {"_source": parents})) if parents else set()


def first_stage(
    query: Query, mode: str, k: int, keep: int, *, rrf_k: int = RRF_K, weights: t.Optional[t.Mapping[str, float]] = None,
) -> tuple[list[t.Any], dict[t.Any, dict[str, t.Any]]]:
    """The first stage's rows best first (the ``keep`` best of the ``k`` best of each side), and
    for each: ``_score``, ``_vector_rank``, ``_text_rank`` and the best chunk (``_chunk``, over
    chunks of text)."""
    within = _within(query)
    if within is not None and not within:
        return [], {}
    own_filter = None if query.chunked else query.filter
    sides: dict[str, Candidates] = {}
    if mode in ("vector", "hybrid"):
        vector = query.vector()
        sides["vector"] = _side(query, lambda size, ids: query.live.search(vector, size, within=ids, filter=own_filter), k, within)
    if mode in ("text", "hybrid"):
        text = t.cast(FullText, query.text)
        words = query.text_query or ""
        sides["text"] = _side(query, lambda size, ids: text.search(words, size, within=ids, filter=own_filter), k, within)
    rankings = {side: found.ids for side, found in sides.items()}
    fused = rrf(rankings, k=rrf_k, weights=weights if mode == "hybrid" else None, n=keep)
    order, info = [], {}
    for hit in fused:
        score = hit.score if mode == "hybrid" else sides[mode].scores[hit.id]
        detail: dict[str, t.Any] = {"_score": score, "_vector_rank": hit.ranks.get("vector"), "_text_rank": hit.ranks.get("text")}
        chunk = next((sides[s].chunks[hit.id] for s in sides if hit.id in sides[s].chunks), None)
        if isinstance(chunk, str):
            detail["_chunk"] = chunk
        order.append(hit.id)
        info[hit.id] = detail
    return order, info
