"""Encoding a batch of model outputs for storage at once, where they are alike.

A batch of same-shaped 1-d arrays (what an embedding model returns) is checked and
converted as one matrix: the same bytes as :meth:`Vector.encode` of each, in a fraction
of the time. Anything else, and any row the matrix check rejects, is encoded one by one,
so each error is the datatype's own.

Example:
    >>> import numpy as np
    >>> from pinnacle.components.datatype import Vector
    >>> out = encode_batch(Vector(2), [np.array([1.0, 2.0]), np.array([np.nan, 0.0])])
    >>> out[0] == Vector(2).encode([1.0, 2.0]), type(out[1]).__name__
    (True, 'ValueError')
"""

from __future__ import annotations

import typing as t

import numpy as np

from pinnacle.components.datatype import Vector

__all__ = ["encode_batch"]


def encode_batch(datatype: t.Any, outputs: t.Sequence[t.Any]) -> list[t.Any]:
    """The stored form of each output, or the ``ValueError``/``TypeError`` its encoding raised."""
    fast = _vector_batch(datatype, outputs)
    if fast is not None:
        return fast
    encoded: list[t.Any] = []
    for out in outputs:
        try:
            encoded.append(datatype.encode(out))
        except (ValueError, TypeError) as exc:
            encoded.append(exc)
    return encoded


def _vector_batch(datatype: t.Any, outputs: t.Sequence[t.Any]) -> t.Optional[list[t.Any]]:
    """One matrix for a batch of 1-d arrays of one dtype and length (``None`` if they are not)."""
    if type(datatype) is not Vector or len(outputs) < 2:
        return None
    first = outputs[0]
    if type(first) is not np.ndarray or first.ndim != 1 or first.dtype.kind not in "fiu":
        return None
    shape, dtype = first.shape, first.dtype
    if datatype.dim is not None and shape[0] != datatype.dim:
        return None
    for out in outputs:
        if type(out) is not np.ndarray or out.shape != shape or out.dtype != dtype:
            return None
    matrix = np.stack(outputs)
    ok = np.isfinite(matrix).all(axis=1) if dtype.kind == "f" else None
    stored = np.ascontiguousarray(matrix, dtype=datatype.numpy_dtype)
    encoded: list[t.Any] = [row.tobytes() for row in stored]
    if ok is not None and not ok.all():
        for i in np.flatnonzero(~ok):
            try:
                encoded[i] = datatype.encode(outputs[i])  # raises: the datatype's own message
            except (ValueError, TypeError) as exc:
                encoded[i] = exc
    return encoded
