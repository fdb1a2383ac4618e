"""A VectorIndex at run time: in the database when it can search (pgvector), else an
in-memory copy of a listener's outputs, kept fresh."""

from __future__ import annotations

import logging
import threading
import typing as t

import numpy as np

from pinnacle.backends.base import DatabaseSearch, DataBackend, ListenerSpec, Where
from pinnacle.backends.maxsim import MaxSimSearcher
from pinnacle.backends.searcher import NumpySearcher
from pinnacle.components.datatype import MultiVector
from pinnacle.components.listener import Listener
from pinnacle.components.vector_index import VectorIndex
from pinnacle.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["LiveIndex", "DatabaseIndex", "open_index"]


def open_index(backend: DataBackend, index: VectorIndex, listener: Listener) -> t.Union["LiveIndex", "DatabaseIndex"]:
    """The run-time form of ``index`` over ``listener``'s outputs: searched by the database
    when the backend can (:class:`~pinnacle.backends.stores.SearchStore`), else kept in memory."""
    if index.measure != "maxsim" and backend.supports("search"):
        native = backend.database_search(ListenerSpec.of(listener), index.measure, index.index, index.options())
        if native is not None:
            return DatabaseIndex(index, listener, native)
    return LiveIndex(backend, index, listener)


class DatabaseIndex:
    """A VectorIndex searched by the database itself: nothing is held in memory."""

    def __init__(self, index: VectorIndex, listener: Listener, native: DatabaseSearch):
        self.index = index
        self.listener = listener
        self.spec = ListenerSpec.of(listener)
        self.native = native

    def apply_commit(self, sources: list, vectors: list, removed: list, stamp: float, version: t.Optional[tuple] = None) -> None:
        """Nothing to do: the database sees every commit."""

    def refresh(self) -> None:
        """Nothing to do: the database is the index."""

    def search(
        self, vector: np.ndarray, n: int, within: t.Optional[t.Collection[t.Any]] = None, filter: Where = None,
    ) -> list[tuple[t.Any, float]]:
        return self.native.search(np.asarray(vector, dtype=np.float32), n, within=within, filter=filter)


class LiveIndex:
    """Keeps a :class:`NumpySearcher` equal to the outputs table.

    This process's own writes are applied as they commit; before each search a cheap check
    of the outputs' version (``outputs_version``) detects writes by others, and only changed
    rows are read.
    """

    def __init__(self, backend: DataBackend, index: VectorIndex, listener: Listener):
        self.backend = backend
        self.index = index
        self.listener = listener  # the version of the indexing listener that serves
        self.spec = ListenerSpec.of(listener)
        self.datatype = listener.model.output_datatype()
        self.multi = isinstance(self.datatype, MultiVector)
        self.searcher = _make_searcher(index, self.multi)
        self._stamps: dict[t.Any, float] = {}
        self._synced: t.Optional[t.Hashable] = None  # the outputs version read last (None: never)
        self._lock = threading.RLock()

    def apply_commit(
        self, sources: list, vectors: list[np.ndarray], removed: list, stamp: float, version: t.Optional[tuple] = None,
    ) -> None:
        """Take this process's committed outputs without reading them back. ``version``: the
        ``(old, new)`` outputs version of the commit; at ``old`` before, the copy is at ``new`` after."""
        with self._lock:
            if version is not None and self._synced is not None and self._synced == version[0]:
                self._synced = version[1]
            if sources:
                self.searcher.upsert(sources, vectors if self.multi else np.asarray(vectors, dtype=np.float32))
                for s in sources:
                    self._stamps[s] = stamp
            if removed:
                self.searcher.remove(removed)
                for s in removed:
                    self._stamps.pop(s, None)

    def refresh(self) -> None:
        """Bring the copy up to date with the outputs table, reading only what changed."""
        with self._lock:
            version = self.backend.outputs_version(self.spec)
            if version == self._synced:
                return
            if self._synced is not None and isinstance(version, tuple):  # (count, latest): MongoDB
                mine = (len(self._stamps), max(self._stamps.values(), default=0.0))
                if version == mine:
                    self._synced = version
                    return
            stamps = dict(self.backend.output_stamps(self.spec))
            changed = [s for s, ts in stamps.items() if self._stamps.get(s) != ts]
            removed = [s for s in self._stamps if s not in stamps]
            if removed:
                self.searcher.remove(removed)
            if changed:
                ids, vecs = [], []
                for source, data in self.backend.read_outputs(self.spec, sources=changed if len(changed) < len(stamps) else None):
                    ids.append(source)
                    vecs.append(self.datatype.decode(data))
                if ids:
                    self.searcher.upsert(ids, vecs if self.multi else np.stack(vecs).astype(np.float32))
            self._stamps = stamps
            self._synced = version
            logger.debug("Index %r: %d changed, %d removed", self.index.identifier, len(changed), len(removed))

    def search(
        self, vector: np.ndarray, n: int, within: t.Optional[t.Collection[t.Any]] = None, filter: Where = None,
    ) -> list[tuple[t.Any, float]]:
        """The ``n`` best ``(source, score)``; ``within`` (ids) and ``filter`` (on the listener's
        table) restrict the candidates before ranking."""
        if filter:
            matching = set(self.backend.ids(self.spec.table, filter))
            within = matching if within is None else matching.intersection(within)
        self.refresh()
        return self.searcher.search(np.asarray(vector, dtype=np.float32), n=n, within=within)


def _make_searcher(index: VectorIndex, multi: bool) -> t.Union[NumpySearcher, MaxSimSearcher]:
    """The searcher for ``index.measure``: MaxSim for multi-vector outputs, numpy otherwise."""
    if multi != (index.measure == "maxsim"):
        outputs = "multi-vector (MultiVector)" if multi else "single-vector (Vector)"
        fix = "use measure='maxsim'" if multi else "use 'cosine', 'dot' or 'l2', or a multi-vector model such as ColBERT"
        raise ConfigError(
            f"VectorIndex {index.identifier!r}: measure {index.measure!r} does not fit the {outputs} "
            f"outputs of Listener {index.indexing_listener.identifier!r}; {fix}."
        )
    if multi:
        return MaxSimSearcher(candidates=index.candidates)
    if index.index == "hnsw":
        from pinnacle.backends.ann import HnswSearcher

        return HnswSearcher(index.measure, **index.options())
    if index.index is not None:
        raise ConfigError(
            f"VectorIndex {index.identifier!r}: index {index.index!r} runs only in PostgreSQL with pgvector; "
            "here the index is kept in memory, where index='hnsw' (approximate) or index=None (exact) work."
        )
    return NumpySearcher(index.measure)
