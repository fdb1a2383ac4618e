"""``like()``: the rows of a table most similar to a query, by a VectorIndex (and, with
``mode="text"``/``"hybrid"`` or ``rerank``, :mod:`pinnacle.search.hybrid`)."""

from __future__ import annotations

import typing as t

import numpy as np

from pinnacle import chains
from pinnacle.backends.base import ListenerSpec
from pinnacle.catalogue import Catalogue
from pinnacle.components.listener import Listener
from pinnacle.components.vector_index import VectorIndex
from pinnacle.errors import ConfigError, NotFoundError
from pinnacle.fusion import RRF_K
from pinnacle.runtimes import Runtimes
from pinnacle.search import hybrid
from pinnacle.search.indexes import DatabaseIndex, LiveIndex, open_index
from pinnacle.search.rerank import reorder, rerank_scores
from pinnacle.search.text import TextIndexes

__all__ = ["Search"]

RunTimeIndex = t.Union[LiveIndex, DatabaseIndex]


class Search:
    """The vector indexes of one datalayer at run time, and ``like()`` over them.

    Args:
        catalogue: Where the VectorIndex components are loaded from.
        runtimes: The listeners' runtimes (an index searches its listener's serving version).
    """

    def __init__(self, catalogue: Catalogue, runtimes: Runtimes):
        self.catalogue = catalogue
        self.runtimes = runtimes
        self.backend = catalogue.backend
        self.indexes: dict[str, RunTimeIndex] = {}
        self.text = TextIndexes(self.backend)

    def forget(self, identifier: str) -> None:
        """Drop the run-time form of ``identifier``; when it is no longer stored (removed), its
        full-text index goes too."""
        self.indexes.pop(identifier, None)
        if self.backend.get_component("VectorIndex", identifier) is None:
            self.text.removed(identifier)

    def apply_commit(
        self, spec: ListenerSpec, sources: list, vectors: list, removed: list, stamp: float, version: t.Optional[tuple] = None,
    ) -> None:
        """Bring the in-memory indexes over ``spec``'s outputs up to a commit of this process."""
        for live in list(self.indexes.values()):
            if live.spec == spec:
                live.apply_commit(sources, vectors, removed, stamp, version)

    def activate(self, index: VectorIndex) -> None:
        """``index`` became current here: its run-time form is rebuilt on next use, and its
        full-text index (``full_text=True``) is made what it asks for."""
        self.indexes.pop(index.identifier, None)
        self.text.activate(index)

    def like(
        self, table: str, query: t.Mapping[str, t.Any], *, vector_index: str, n: int = 10,
        filter: t.Optional[t.Mapping[str, t.Any]] = None, mode: str = "vector", rerank: t.Any = None,
        candidates: t.Optional[int] = None, rrf_k: int = RRF_K, weights: t.Optional[t.Mapping[str, float]] = None,
    ) -> list[dict]:
        """Rows of ``table`` most similar to ``query`` by ``vector_index``, best first (see :meth:`Table.like`)."""
        k = hybrid.check_options(n, mode, candidates, rrf_k, weights)
        live = self.live_index(vector_index)
        listener = live.listener
        parent = None
        if listener.select != table:  # an index over chunks of ``table``: hits map to parent rows
            parent = chains.parent_listener(self.runtimes, listener, table, vector_index)
        query_listener = live.index.compatible_listener or listener  # the serving model's query side
        original, query = query, chains.parent_query(query_listener, parent, query)
        if mode == "vector" and rerank is None:
            vector = self._embed(query_listener, query)
            if parent is not None:
                return chains.search_parents(self.backend, live, vector, table, listener.select, n, filter)
            hits = live.search(vector, n, filter=filter)  # pre-filtering: in the database or in memory
            return self._rows(table, [h[0] for h in hits], {source: {"_score": score} for source, score in hits})
        key = t.cast(str, listener.key) if isinstance(listener.key, str) else ""
        text_query = query.get(key) if isinstance(query, t.Mapping) else None
        text = None
        if mode != "vector":
            text = self.text.get(live.index, live.index.indexing_listener)
            if not isinstance(text_query, str):
                raise ConfigError(f"like(mode={mode!r}): the query needs the text of {key!r}, e.g. {{{key!r}: 'a question'}}.")
        first = hybrid.Query(
            self.backend, table, listener.select, text_query, lambda: self._embed(query_listener, query), live, text, filter,
        )
        depth = k if mode == "hybrid" or rerank is not None else n  # one side alone: its n best are the n best
        order, info = hybrid.first_stage(first, mode, depth, k if rerank is not None else n, rrf_k=rrf_k, weights=weights)
        if rerank is not None and order:
            scores = rerank_scores(self, rerank, table, order, original, text_query, key, listener.select)
            order = reorder(order, scores, n)
            for source in order:
                detail = info[source]
                detail["_first_score"] = detail["_score"]
                score, chunk = scores.get(source, (None, None))
                detail["_score"] = score
                if chunk is not None:
                    detail["_chunk"] = chunk
        return self._rows(table, order[:n], info)

    def _embed(self, listener: Listener, query: t.Any) -> np.ndarray:
        try:
            x = listener.model_input(query)
        except KeyError as exc:
            raise ConfigError(f"like(): the query needs the key {exc} of Listener {listener.identifier!r}.") from None
        return np.asarray(listener.model.predict_query(x), dtype=np.float32)

    def _rows(self, table: str, order: list[t.Any], info: t.Mapping[t.Any, t.Mapping[str, t.Any]]) -> list[dict]:
        """The rows of ``order``, in that order, each with its ``info`` (``_score``...)."""
        if not order:
            return []
        rows = {r[self.backend.primary_key(table)]: r for r in self.backend.select(table, ids=order)}
        return [{**rows[source], **info[source]} for source in order if source in rows]

    def live_index(self, identifier: str) -> RunTimeIndex:
        """The run-time index of ``identifier`` (in the database or in memory), over the serving
        version of its listener."""
        runtimes = self.runtimes
        runtimes.sync()
        live = self.indexes.get(identifier)
        index = self.catalogue.loaded.get(("VectorIndex", identifier))
        if index is None:
            runtimes.sync(force=True)
            index = self.catalogue.loaded.get(("VectorIndex", identifier))
        if index is None:
            runtimes.skipped.check("VectorIndex", identifier)
            raise NotFoundError(f"No VectorIndex {identifier!r}; db.show('VectorIndex') lists them.")
        index = t.cast(VectorIndex, index)
        serving = runtimes.get(index.indexing_listener.identifier).serving
        if live is None or live.index is not index or live.listener is not serving:
            spec = ListenerSpec.of(serving)
            if spec.flatten or spec.text:
                raise ConfigError(
                    f"VectorIndex {identifier!r}: Listener {serving.identifier!r} stores "
                    f"{'lists of items' if spec.flatten else 'text'}, not vectors; index a listener that embeds them, "
                    f"e.g. Listener('{serving.identifier}-emb', model=..., key='_output', select=db.outputs_table({serving.identifier!r}))."
                )
            live = open_index(self.backend, index, serving)
            self.indexes[identifier] = live
        return live
