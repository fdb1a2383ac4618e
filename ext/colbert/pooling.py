"""Hierarchical pooling of document token vectors (fewer vectors per document, similar scores)."""

from __future__ import annotations

import numpy as np

from pinnacle._deps import require

__all__ = ["pool_hierarchical"]


def pool_hierarchical(tokens: np.ndarray, pool_factor: int, protected_tokens: int = 1) -> np.ndarray:
    """Merge a document's token vectors into about ``1 / pool_factor`` as many.

    The first ``protected_tokens`` vectors (the ``[CLS]`` token by default) are kept as
    they are. The others are clustered agglomeratively (Ward linkage on cosine
    distance, as PyLate does) into ``max(n // pool_factor, 1)`` clusters, and each
    cluster becomes the mean of its vectors. Kept vectors come first.

    Args:
        tokens: ``(n, dim)`` token vectors of one document.
        pool_factor: 1 keeps every vector, 2 about half, 3 about a third, ...
        protected_tokens: Leading vectors never merged.

    Returns:
        A ``(m, dim)`` array with ``m <= n``.

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
        >>> pool_hierarchical(x, pool_factor=2).shape
        (3, 2)
    """
    tokens = np.asarray(tokens)
    if pool_factor <= 1:
        return tokens
    protected, rest = tokens[:protected_tokens], tokens[protected_tokens:]
    n = len(rest)
    clusters = max(n // pool_factor, 1)
    if clusters >= n:
        return tokens
    hierarchy = require("scipy.cluster.hierarchy", extra="colbert")
    rest64 = rest.astype(np.float64)
    distance = np.clip(1.0 - rest64 @ rest64.T, 0.0, None)
    condensed = distance[np.triu_indices(n, k=1)]
    labels = hierarchy.fcluster(hierarchy.linkage(condensed, method="ward"), t=clusters, criterion="maxclust") - 1
    sums = np.zeros((labels.max() + 1, tokens.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, rest64)
    counts = np.bincount(labels)
    keep = counts > 0  # fcluster may return fewer clusters than asked for
    pooled = (sums[keep] / counts[keep, None]).astype(tokens.dtype)
    return np.concatenate([protected, pooled])
