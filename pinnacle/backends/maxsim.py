"""Exact late-interaction (MaxSim) search over multi-vector rows, with numpy.

A row is a matrix of token vectors; a query is one too. The score of a row is the sum,
over the query's vectors, of the best dot product with any of the row's vectors
(ColBERT's MaxSim). All rows' vectors live in one flat matrix; each row is a segment
of it, so one matrix product and one ``np.maximum.reduceat`` score many rows at once.
"""

from __future__ import annotations

import threading
import typing as t

import numpy as np

__all__ = ["MaxSimSearcher", "maxsim", "maxsim_scores"]

#: Rows are scored in chunks spanning at most this many token vectors (bounds memory).
_CHUNK_TOKENS = 1 << 18


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """MaxSim of one query matrix ``(q, dim)`` and one document matrix ``(d, dim)``.

    Example:
        >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> d = np.array([[1.0, 0.0], [0.6, 0.8]])
        >>> round(maxsim(q, d), 2)  # 1.0 (first row) + 0.8 (second row)
        1.8
    """
    q = np.atleast_2d(np.asarray(query, dtype=np.float32))
    d = np.atleast_2d(np.asarray(document, dtype=np.float32))
    return float((q @ d.T).max(axis=1).sum())


def maxsim_scores(queries: t.Sequence[np.ndarray], documents: t.Sequence[np.ndarray]) -> np.ndarray:
    """``(len(queries), len(documents))`` MaxSim scores, documents of any lengths.

    Example:
        >>> q = [np.eye(2)]
        >>> maxsim_scores(q, [np.eye(2), np.array([[1.0, 0.0]])]).round(2).tolist()
        [[2.0, 1.0]]
    """
    documents = [np.atleast_2d(np.asarray(d, dtype=np.float32)) for d in documents]
    out = np.zeros((len(queries), len(documents)), dtype=np.float32)
    if not documents:
        return out
    tokens = np.concatenate(documents)
    starts = np.cumsum([0] + [len(d) for d in documents[:-1]])
    ends = starts + np.array([len(d) for d in documents])
    for i, query in enumerate(queries):
        out[i] = _segment_scores(tokens, starts, ends, np.atleast_2d(np.asarray(query, dtype=np.float32)))
    return out


def _segment_scores(tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, query: np.ndarray) -> np.ndarray:
    """MaxSim of ``query`` with each segment ``tokens[starts[k]:ends[k]]``; starts ascending.

    Segments need not be contiguous: the gaps between them are reduced too and dropped.
    """
    scores = np.empty(len(starts), dtype=np.float32)
    k = 0
    while k < len(starts):
        stop = k + 1  # take rows while the span stays under the chunk size (at least one row)
        while stop < len(starts) and ends[stop] - starts[k] <= _CHUNK_TOKENS:
            stop += 1
        lo, hi = int(starts[k]), int(ends[stop - 1])
        sims = tokens[lo:hi] @ query.T  # (tokens in span, query vectors)
        bounds = np.empty(2 * (stop - k) - 1, dtype=np.int64)
        bounds[0::2] = starts[k:stop] - lo
        bounds[1::2] = ends[k : stop - 1] - lo
        best = np.maximum.reduceat(sims, bounds, axis=0)[0::2]  # even entries: the rows, odd: gaps
        scores[k:stop] = best.sum(axis=1)
        k = stop
    return scores


class MaxSimSearcher:
    """Holds a matrix of vectors per id and returns the ``n`` best ids by MaxSim, best first.

    Exact over all rows by default. With ``candidates``, rows are first ranked by the
    dot product of their mean vector with the query's mean vector and only the best
    ``candidates`` rows are scored exactly (faster on large tables; a row outside the
    candidates is never returned).

    Args:
        candidates: Rows to score exactly after the mean-vector stage; ``None`` scores all.

    Example:
        >>> s = MaxSimSearcher()
        >>> s.upsert(["a", "b"], [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [0.6, 0.8]])])
        >>> [i for i, _ in s.search(np.array([[0.0, 1.0]]), n=1)]
        ['b']
    """

    measure = "maxsim"

    def __init__(self, candidates: t.Optional[int] = None):
        if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int) or candidates <= 0):
            raise ValueError(f"candidates must be a positive integer or None, got {candidates!r}")
        self.candidates = candidates
        self._lock = threading.RLock()
        self.clear()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, source: t.Any) -> bool:
        return source in self._index

    def clear(self) -> None:
        with self._lock:
            self._dim: t.Optional[int] = None
            self._tokens = np.zeros((0, 0), dtype=np.float32)  # flat buffer; rows are segments of it
            self._used = 0  # tokens written to the buffer
            self._dead = 0  # tokens of replaced or removed rows still in the buffer
            self._ids: list[t.Any] = []
            self._index: dict[t.Any, int] = {}
            self._starts: list[int] = []
            self._lengths: list[int] = []
            self._means: list[np.ndarray] = []

    # -- writing ------------------------------------------------------------------------
    def _check(self, matrix: t.Any) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise ValueError(f"expected a non-empty matrix of vectors, got shape {matrix.shape}")
        if self._dim is not None and matrix.shape[1] != self._dim:
            raise ValueError(f"vector length {matrix.shape[1]} differs from the index's {self._dim}")
        return matrix

    def upsert(self, ids: t.Sequence[t.Any], vectors: t.Sequence[np.ndarray]) -> None:
        """Add or replace the vectors of ``ids`` (``vectors[k]`` is an ``(n_k, dim)`` matrix)."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} matrices")
        with self._lock:
            for source, matrix in zip(ids, vectors):
                matrix = self._check(matrix)
                if self._dim is None:
                    self._dim = matrix.shape[1]
                    self._tokens = np.zeros((max(1024, matrix.shape[0]), self._dim), dtype=np.float32)
                start = self._append(matrix)
                mean = matrix.mean(axis=0)
                norm = float(np.linalg.norm(mean))
                mean = mean / norm if norm > 0 else mean
                row = self._index.get(source)
                if row is None:
                    self._index[source] = len(self._ids)
                    self._ids.append(source)
                    self._starts.append(start)
                    self._lengths.append(matrix.shape[0])
                    self._means.append(mean)
                else:
                    self._dead += self._lengths[row]
                    self._starts[row], self._lengths[row], self._means[row] = start, matrix.shape[0], mean
            self._maybe_compact()

    def _append(self, matrix: np.ndarray) -> int:
        needed = self._used + matrix.shape[0]
        if needed > self._tokens.shape[0]:
            grown = np.zeros((max(needed, 2 * self._tokens.shape[0]), self._dim), dtype=np.float32)
            grown[: self._used] = self._tokens[: self._used]
            self._tokens = grown
        start = self._used
        self._tokens[start:needed] = matrix
        self._used = needed
        return start

    def remove(self, ids: t.Iterable[t.Any]) -> None:
        """Drop ``ids`` (missing ones are ignored)."""
        with self._lock:
            for source in ids:
                row = self._index.pop(source, None)
                if row is None:
                    continue
                self._dead += self._lengths[row]
                last = len(self._ids) - 1
                if row != last:
                    moved = self._ids[last]
                    self._ids[row] = moved
                    self._index[moved] = row
                    self._starts[row] = self._starts[last]
                    self._lengths[row] = self._lengths[last]
                    self._means[row] = self._means[last]
                for column in (self._ids, self._starts, self._lengths, self._means):
                    column.pop()
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Rewrite the buffer without dead tokens once they are half of it."""
        if self._dead == 0 or self._dead * 2 < self._used:
            return
        live = self._used - self._dead
        packed = np.zeros((max(1024, 2 * live), self._dim), dtype=np.float32)
        at = 0
        for row, (start, length) in enumerate(zip(self._starts, self._lengths)):
            packed[at : at + length] = self._tokens[start : start + length]
            self._starts[row] = at
            at += length
        self._tokens, self._used, self._dead = packed, at, 0

    # -- searching ----------------------------------------------------------------------
    def search(
        self, query: np.ndarray, n: int = 10, within: t.Optional[t.Collection[t.Any]] = None
    ) -> list[tuple[t.Any, float]]:
        """The ``n`` best ``(id, score)`` for the query matrix; ``within`` restricts to those ids."""
        q = np.asarray(query, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        with self._lock:
            if not self._ids or n <= 0:
                return []
            if q.ndim != 2 or q.shape[1] != self._dim:
                raise ValueError(f"query vectors of shape {q.shape[1:]} do not match the index's length {self._dim}")
            if within is not None:
                rows = np.fromiter((self._index[i] for i in within if i in self._index), dtype=np.int64)
                if rows.size == 0:
                    return []
            else:
                rows = np.arange(len(self._ids))
            if self.candidates is not None and rows.size > max(self.candidates, n):
                rows = self._candidate_rows(q, rows, max(self.candidates, n))
            scores = self._score(q, rows)
            k = min(n, scores.shape[0])
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._ids[rows[i]], float(scores[i])) for i in top]

    def _candidate_rows(self, q: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
        means = np.stack([self._means[r] for r in rows])
        centre = q.mean(axis=0)
        approx = means @ centre
        return rows[np.argpartition(-approx, k - 1)[:k]]

    def _score(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        starts = np.asarray(self._starts, dtype=np.int64)[rows]
        lengths = np.asarray(self._lengths, dtype=np.int64)[rows]
        if rows.size == len(self._ids) and self._dead * 4 < self._used:
            # Every row, mostly live buffer: score in place, in buffer order.
            order = np.argsort(starts, kind="stable")
            scores = np.empty(rows.size, dtype=np.float32)
            scores[order] = _segment_scores(self._tokens, starts[order], starts[order] + lengths[order], q)
            return scores
        # A subset: gather its tokens so that no other row's tokens are multiplied.
        ends = np.cumsum(lengths)
        begins = ends - lengths
        index = np.repeat(starts - begins, lengths) + np.arange(int(ends[-1]))
        return _segment_scores(self._tokens[index], begins, ends, q)
