"""``like()``: the rows of a table most similar to a query, by a VectorIndex."""

from __future__ import annotations

import typing as t

import numpy as np

from pinnacle import chains
from pinnacle.backends.base import ListenerSpec
from pinnacle.catalogue import Catalogue
from pinnacle.components.vector_index import VectorIndex
from pinnacle.errors import ConfigError, NotFoundError
from pinnacle.runtimes import Runtimes
from pinnacle.search.indexes import DatabaseIndex, LiveIndex, open_index

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

    def forget(self, identifier: str) -> None:
        """Drop the run-time form of ``identifier`` (it is rebuilt on next use)."""
        self.indexes.pop(identifier, None)

    def apply_commit(self, spec: ListenerSpec, sources: list, vectors: list, removed: list, stamp: float) -> None:
        """Bring the in-memory indexes over ``spec``'s outputs up to a commit of this process."""
        for live in list(self.indexes.values()):
            if live.spec == spec:
                live.apply_commit(sources, vectors, removed, stamp)

    def like(
        self, table: str, query: t.Mapping[str, t.Any], *, vector_index: str, n: int = 10,
        filter: t.Optional[t.Mapping[str, t.Any]] = None,
    ) -> list[dict]:
        """Rows of ``table`` most similar to ``query`` by ``vector_index``, best first (see :meth:`Table.like`)."""
        live = self.live_index(vector_index)
        listener = live.listener
        parent = None
        if listener.select != table:  # an index over chunks of ``table``: hits map to parent rows
            parent = chains.parent_listener(self.runtimes, listener, table, vector_index)
        query_listener = live.index.compatible_listener or listener  # the serving model's query side
        query = chains.parent_query(query_listener, parent, query)
        try:
            x = query_listener.model_input(query)
        except KeyError as exc:
            raise ConfigError(f"like(): the query needs the key {exc} of Listener {query_listener.identifier!r}.") from None
        vector = np.asarray(query_listener.model.predict_query(x), dtype=np.float32)
        if parent is not None:
            return chains.search_parents(self.backend, live, vector, table, listener.select, n, filter)
        hits = live.search(vector, n, filter=filter)  # pre-filtering: in the database or in memory
        if not hits:
            return []
        rows = {r[self.backend.primary_key(table)]: r for r in self.backend.select(table, ids=[h[0] for h in hits])}
        out = []
        for source, score in hits:
            row = rows.get(source)
            if row is not None:
                out.append({**row, "_score": score})
        return out

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
