"""The second stage of ``like(..., rerank=...)``: re-score the first stage's candidates.

``rerank`` names (or is) one of:

- a **VectorIndex** over a listener on the same table, or on chunks of its rows: typically
  ColBERT (multi-vector outputs, ``measure="maxsim"``); its model embeds the query and the
  candidates' stored outputs are scored exactly (MaxSim), a chunked row at its best chunk;
- a **Model** whose ``predict`` scores a ``(query, text)`` pair, higher is better (the shape
  of sentence-transformers' ``CrossEncoder``): it scores the text of each candidate (each
  chunk of it, over chunks: the best chunk counts).

Candidates the second stage cannot score (no output yet, no text) keep their first-stage
order after the scored ones, with ``_score`` ``None``.
"""

from __future__ import annotations

import typing as t

import numpy as np

from pinnacle import chains
from pinnacle.components.model import Model
from pinnacle.errors import ConfigError, NotFoundError

if t.TYPE_CHECKING:
    from pinnacle.backends.base import DataBackend
    from pinnacle.catalogue import Catalogue
    from pinnacle.runtimes import Runtimes

    class Search(t.Protocol):
        """What the second stage uses of :class:`pinnacle.search.similar.Search`."""

        catalogue: Catalogue
        runtimes: Runtimes
        backend: DataBackend

        def live_index(self, identifier: str) -> t.Any: ...

__all__ = ["rerank_scores", "reorder"]

Scores = dict[t.Any, tuple[float, t.Any]]  # id -> (score, best chunk or None)


def rerank_scores(
    search: "Search", rerank: t.Any, table: str, ids: list[t.Any], query: t.Any, text_query: t.Optional[str],
    key: str, items: str,
) -> Scores:
    """Second-stage scores of the rows ``ids`` of ``table``.

    ``key``/``items``: the first stage's text column and the table it lives in (``table``, or
    the chunks' outputs table), where a Model reranker reads the candidates' text.
    """
    if not ids:
        return {}
    if isinstance(rerank, Model):
        return _by_model(search, rerank, table, ids, text_query, key, items)
    if not isinstance(rerank, str):
        raise ConfigError(f"like(): rerank names a VectorIndex or a Model (or is a Model), got {type(rerank).__name__}.")
    catalogue = search.catalogue
    if ("VectorIndex", rerank) in catalogue.loaded or search.backend.get_component("VectorIndex", rerank) is not None:
        return _by_index(search, rerank, table, ids, query)
    if search.backend.get_component("Model", rerank) is None:
        raise NotFoundError(f"like(): rerank={rerank!r} is neither a VectorIndex nor a Model; db.show() lists what exists.")
    model = t.cast(Model, catalogue.load("Model", rerank))
    return _by_model(search, model, table, ids, text_query, key, items)


def _by_index(search: "Search", identifier: str, table: str, ids: list[t.Any], query: t.Any) -> Scores:
    live = search.live_index(identifier)
    listener = live.listener
    backend = search.backend
    parent = None
    if listener.select == table:
        within = list(ids)
    else:
        parent = chains.parent_listener(search.runtimes, listener, table, identifier)
        within = backend.ids(listener.select, {"_source": list(ids)})
    query_listener = live.index.compatible_listener or listener
    row = chains.parent_query(query_listener, parent, query)
    try:
        x = query_listener.model_input(row)
    except KeyError as exc:
        raise ConfigError(f"like(): rerank={identifier!r} needs the key {exc} of Listener {query_listener.identifier!r} in the query.") from None
    vector = np.asarray(query_listener.model.predict_query(x), dtype=np.float32)
    hits = live.search(vector, len(within), within=within) if within else []
    if parent is None:
        return {source: (score, None) for source, score in hits}
    item_pk = backend.primary_key(listener.select)
    columns = list(dict.fromkeys([item_pk, "_source", "_output"]))
    rows = {r[item_pk]: r for r in backend.select(listener.select, ids=[h[0] for h in hits], columns=columns)} if hits else {}
    best: Scores = {}
    for item, score in hits:  # best first: a row's first chunk is its best
        found = rows.get(item)
        if found is not None and found["_source"] not in best:
            best[found["_source"]] = (score, found["_output"] if isinstance(found["_output"], str) else None)
    return best


def _by_model(
    search: "Search", model: Model, table: str, ids: list[t.Any], text_query: t.Optional[str], key: str, items: str,
) -> Scores:
    if not isinstance(text_query, str):
        raise ConfigError(f"like(): rerank by Model {model.identifier!r} needs the query as text.")
    backend = search.backend
    if items == table:
        pk = backend.primary_key(table)
        rows = backend.select(table, ids=list(ids), columns=list(dict.fromkeys([pk, key])))
        texts = [(r[pk], r[key], None) for r in rows if isinstance(r.get(key), str)]
    else:
        item_pk = backend.primary_key(items)
        rows = backend.select(items, {"_source": list(ids)}, columns=list(dict.fromkeys([item_pk, "_source", key])))
        texts = [(r["_source"], r[key], r[key]) for r in rows if isinstance(r.get(key), str)]
    texts.sort(key=lambda item: (str(item[0]), str(item[2])))  # the same pairs in the same order on every run
    scores = model.predict_batches([(text_query, text) for _, text, _ in texts]) if texts else []
    best: Scores = {}
    for (source, _, chunk), score in zip(texts, scores):
        value = float(np.asarray(score, dtype=np.float64).reshape(-1)[0])
        if source not in best or value > best[source][0]:
            best[source] = (value, chunk)
    return best


def reorder(order: list[t.Any], scores: Scores, n: int) -> list[t.Any]:
    """The ``n`` best of ``order`` by ``scores`` (higher first; ties and unscored rows keep
    ``order``'s order, unscored rows last).

    Example:
        >>> reorder(["a", "b", "c", "d"], {"b": (2.0, None), "c": (1.0, None), "a": (1.0, None)}, 3)
        ['b', 'a', 'c']
    """
    position = {source: i for i, source in enumerate(order)}
    ranked = sorted(order, key=lambda s: (s not in scores, -scores[s][0] if s in scores else 0.0, position[s]))
    return ranked[:n]
