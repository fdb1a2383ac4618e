"""Brute-force scores in float64: the reference the search tests compare every searcher with."""

from __future__ import annotations

import numpy as np


def brute_force_scores(matrix: np.ndarray, query: np.ndarray, measure: str) -> np.ndarray:
    """One score per row of ``matrix`` (higher is better): cosine, dot, or negative L2 distance."""
    m = np.asarray(matrix, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if measure == "cosine":
        return (m / np.linalg.norm(m, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    if measure == "dot":
        return m @ q
    return -np.linalg.norm(m - q, axis=1)
