"""Approximate in-memory search: an HNSW graph (hnswlib) behind the NumpySearcher interface.

hnswlib was chosen over faiss by measurement and by what a live index needs (see
docs/search.md): rows are added, replaced and deleted in place, with no training step and
no rebuild, and a search can be restricted to a set of ids. Install with
``pip install 'pinnacle[ann]'``; hnswlib is imported when the first searcher is made.
"""

from __future__ import annotations

import threading
import typing as t

import numpy as np

from pinnacle._deps import require

__all__ = ["HnswSearcher"]

_SPACES = {"cosine": "cosine", "dot": "ip", "l2": "l2"}
#: A filtered search scores at most this many rows exactly (else it walks the graph).
EXACT_WITHIN = 20_000


class HnswSearcher:
    """Holds vectors by id in an HNSW graph and returns about the ``n`` most similar, best first.

    Scores are higher-is-better as in :class:`~pinnacle.backends.searcher.NumpySearcher`
    (cosine similarity, dot product, negated L2 distance). ``within`` restricts the search
    to those ids before ranking: up to :data:`EXACT_WITHIN` of them are scored exactly,
    more are searched in the graph with a filter (exact again if the graph finds fewer
    than ``n``), so ``n`` rows come back whenever ``n`` ids match.

    Args:
        measure: ``'cosine'``, ``'dot'`` or ``'l2'``.
        m: Graph degree (hnswlib ``M``): more is better recall, more memory.
        ef_construction: Candidates kept while inserting: more is better recall, slower inserts.
        ef_search: Candidates kept while searching (at least ``n``): more is better recall, slower.

    Example:
        >>> s = HnswSearcher("cosine")
        >>> s.upsert(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
        >>> [i for i, _ in s.search(np.array([0.9, 0.1]), n=1)]
        ['a']
    """

    def __init__(self, measure: str = "cosine", *, m: int = 16, ef_construction: int = 64, ef_search: int = 40):
        if measure not in _SPACES:
            raise ValueError(f"HnswSearcher measure must be one of {list(_SPACES)}, got {measure!r}")
        self._hnswlib = require("hnswlib", extra="ann")
        self.measure = measure
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        self._lock = threading.RLock()
        self.clear()

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, source: t.Any) -> bool:
        return source in self._labels

    def clear(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._graph: t.Any = None
            self._dim = 0
            self._labels: dict[t.Any, int] = {}
            self._ids: dict[int, t.Any] = {}
            self._next = 0

    def _ensure(self, dim: int, more: int) -> None:
        if self._graph is None:
            self._dim = dim
            self._graph = self._hnswlib.Index(space=_SPACES[self.measure], dim=dim)
            self._graph.init_index(
                max_elements=max(1024, more), M=self.m, ef_construction=self.ef_construction, allow_replace_deleted=True
            )
        elif dim != self._dim:
            raise ValueError(f"vector length {dim} differs from the index's {self._dim}")
        needed = len(self._labels) + more
        capacity = self._graph.get_max_elements()
        if needed > capacity:
            self._graph.resize_index(max(needed, 2 * capacity))

    def upsert(self, ids: t.Sequence[t.Any], vectors: np.ndarray) -> None:
        """Add or replace the vectors of ``ids`` (the last one wins for a repeated id)."""
        if len(ids) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        latest = {source: i for i, source in enumerate(ids)}
        with self._lock:
            new = [s for s in latest if s not in self._labels]
            self._ensure(vectors.shape[1], len(new))
            old = [s for s in latest if s in self._labels]
            if old:
                self._graph.add_items(vectors[[latest[s] for s in old]], [self._labels[s] for s in old])
            if new:
                labels = list(range(self._next, self._next + len(new)))
                self._next += len(new)
                self._graph.add_items(vectors[[latest[s] for s in new]], labels, replace_deleted=True)
                for source, label in zip(new, labels):
                    self._labels[source] = label
                    self._ids[label] = source

    def remove(self, ids: t.Iterable[t.Any]) -> None:
        """Drop ``ids`` (missing ones are ignored); their slots are reused by later inserts."""
        with self._lock:
            for source in ids:
                label = self._labels.pop(source, None)
                if label is not None:
                    del self._ids[label]
                    self._graph.mark_deleted(label)

    def search(self, query: np.ndarray, n: int = 10, within: t.Optional[t.Collection[t.Any]] = None) -> list[tuple[t.Any, float]]:
        """About the ``n`` best ``(id, score)``; ``within`` restricts to those ids (pre-filtering)."""
        q = np.asarray(query, dtype=np.float32).ravel()
        with self._lock:
            if not self._labels or n <= 0:
                return []
            if q.shape[0] != self._dim:
                raise ValueError(f"query length {q.shape[0]} differs from the index's {self._dim}")
            if within is None:
                return self._graph_search(q, min(n, len(self._labels)), None) or self._exact(q, n, list(self._labels.values()))
            labels = [self._labels[s] for s in within if s in self._labels]
            if not labels:
                return []
            if len(labels) <= EXACT_WITHIN:
                return self._exact(q, n, labels)
            allowed = set(labels)
            found = self._graph_search(q, min(n, len(labels)), allowed.__contains__)
            return found if found is not None else self._exact(q, n, labels)

    def _graph_search(self, q: np.ndarray, k: int, accept: t.Optional[t.Callable[[int], bool]]):
        """``k`` results from the graph, or ``None`` when it finds fewer."""
        self._graph.set_ef(max(self.ef_search, k))
        try:
            labels, distances = self._graph.knn_query(q, k=k, num_threads=1, filter=accept)
        except RuntimeError:  # hnswlib: fewer than k reachable (deletions, a narrow filter)
            return None
        return [(self._ids[int(label)], self._score(float(d))) for label, d in zip(labels[0], distances[0])]

    def _exact(self, q: np.ndarray, n: int, labels: list[int]) -> list[tuple[t.Any, float]]:
        vectors = np.asarray(self._graph.get_items(labels, return_type="numpy"), dtype=np.float32)
        if self.measure == "l2":
            scores = -np.linalg.norm(vectors - q, axis=1)
        elif self.measure == "cosine":  # hnswlib stores cosine vectors normalised
            norm = np.linalg.norm(q)
            scores = vectors @ (q / norm if norm else q)
        else:
            scores = vectors @ q
        k = min(n, len(labels))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[labels[i]], float(scores[i])) for i in top]

    def _score(self, distance: float) -> float:
        if self.measure == "l2":  # hnswlib returns the squared distance
            return -float(np.sqrt(max(distance, 0.0)))
        return 1.0 - distance  # cosine: 1 - cos; ip: 1 - dot
