"""Exact in-memory vector search with numpy: cosine, dot product and L2."""

from __future__ import annotations

import threading
import typing as t

import numpy as np

__all__ = ["NumpySearcher"]


class NumpySearcher:
    """Holds vectors by id and returns the ``n`` most similar to a query, best first.

    Rows are added, replaced and removed in place (no full rebuild); scores are
    higher-is-better for every measure (L2 returns the negated distance).

    Example:
        >>> s = NumpySearcher("cosine")
        >>> s.upsert(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
        >>> [i for i, _ in s.search(np.array([0.9, 0.1]), n=1)]
        ['a']
    """

    def __init__(self, measure: str = "cosine"):
        self.measure = measure
        self._lock = threading.RLock()
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._ids: list[t.Any] = []
        self._index: dict[t.Any, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, source: t.Any) -> bool:
        return source in self._index

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if self.measure == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors

    def upsert(self, ids: t.Sequence[t.Any], vectors: np.ndarray) -> None:
        """Add or replace the vectors of ``ids``."""
        if len(ids) == 0:
            return
        vectors = self._prepare(vectors)
        with self._lock:
            n = len(self._ids)
            if n == 0 or self._matrix.shape[1] != vectors.shape[1]:
                if n and self._matrix.shape[1] != vectors.shape[1]:
                    raise ValueError(f"vector length {vectors.shape[1]} differs from the index's {self._matrix.shape[1]}")
                self._matrix = np.zeros((max(16, len(ids)), vectors.shape[1]), dtype=np.float32)
            new = [i for i in dict.fromkeys(ids) if i not in self._index]
            needed = n + len(new)
            if needed > self._matrix.shape[0]:
                grown = np.zeros((max(needed, 2 * self._matrix.shape[0]), self._matrix.shape[1]), dtype=np.float32)
                grown[:n] = self._matrix[:n]
                self._matrix = grown
            for source in new:
                self._index[source] = len(self._ids)
                self._ids.append(source)
            rows = [self._index[i] for i in ids]
            self._matrix[rows] = vectors

    def remove(self, ids: t.Iterable[t.Any]) -> None:
        """Drop ``ids`` (missing ones are ignored)."""
        with self._lock:
            for source in ids:
                row = self._index.pop(source, None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:
                    moved = self._ids[last]
                    self._matrix[row] = self._matrix[last]
                    self._ids[row] = moved
                    self._index[moved] = row
                self._ids.pop()

    def clear(self) -> None:
        with self._lock:
            self._matrix = np.zeros((0, 0), dtype=np.float32)
            self._ids = []
            self._index = {}

    def search(self, query: np.ndarray, n: int = 10, within: t.Optional[t.Collection[t.Any]] = None) -> list[tuple[t.Any, float]]:
        """The ``n`` best ``(id, score)``; ``within`` restricts to those ids (pre-filtering)."""
        q = self._prepare(query)[0]
        with self._lock:
            size = len(self._ids)
            if size == 0 or n <= 0:
                return []
            if within is not None:
                rows = np.fromiter((self._index[i] for i in within if i in self._index), dtype=np.int64)
                if rows.size == 0:
                    return []
                matrix = self._matrix[rows]
            else:
                rows = None
                matrix = self._matrix[:size]
            if q.shape[0] != matrix.shape[1]:
                raise ValueError(f"query length {q.shape[0]} differs from the index's {matrix.shape[1]}")
            if self.measure == "l2":
                scores = -np.linalg.norm(matrix - q, axis=1)
            else:
                scores = matrix @ q
            k = min(n, scores.shape[0])
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            ids = self._ids
            if rows is not None:
                return [(ids[rows[i]], float(scores[i])) for i in top]
            return [(ids[i], float(scores[i])) for i in top]
