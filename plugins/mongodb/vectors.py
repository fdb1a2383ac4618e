"""Outputs as BSON binary: the bytes the listener's datatype produced, stored compactly.

A 384-dimensional float32 vector is 1,536 bytes of BSON binary (subtype 0), not 384
BSON doubles (about 4.6 KB). Reading accepts subtype 0 and the BSON vector subtype 9
(``dtype byte, padding byte, values``) that other tools (e.g. Atlas) may write.

Example:
    >>> import numpy as np
    >>> from pinnacle.components.datatype import Vector
    >>> data = Vector(3).encode([1.0, 2.0, 3.0])
    >>> Vector(3).decode(from_bson(to_bson(data))).tolist()
    [1.0, 2.0, 3.0]
"""

from __future__ import annotations

import typing as t

from bson.binary import Binary

__all__ = ["to_bson", "from_bson"]

_VECTOR_SUBTYPE = 9


def to_bson(data: t.Any) -> t.Any:
    """BSON binary (subtype 0) holding ``data`` unchanged; text stays a string, and a list
    (the items of a flattened output) is converted item by item."""
    if isinstance(data, str):
        return data
    if isinstance(data, (list, tuple)):
        return [to_bson(x) for x in data]
    return Binary(bytes(data), 0)


def from_bson(value: t.Any) -> t.Any:
    """The stored bytes of an output (item by item for a list; anything not binary is returned as it is)."""
    if isinstance(value, list):
        return [from_bson(x) for x in value]
    if isinstance(value, Binary) and value.subtype == _VECTOR_SUBTYPE:
        return bytes(value)[2:]  # dtype and padding bytes first
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return value
