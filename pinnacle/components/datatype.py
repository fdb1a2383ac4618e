"""Datatypes of model outputs and how they are stored as bytes."""

from __future__ import annotations

import dataclasses as dc
import typing as t

import numpy as np

from pinnacle.errors import ConfigError

__all__ = ["Vector", "MultiVector", "Text", "datatype_from_json", "vector"]

_DTYPES = ("float32", "float16", "float64", "int8", "uint8")


@dc.dataclass(frozen=True)
class Vector:
    """A fixed-size vector stored compactly as raw little-endian bytes.

    Args:
        dim: Number of components; ``None`` until known (any length is accepted).
        dtype: One of ``float32`` (default), ``float16``, ``float64``, ``int8``, ``uint8``.

    Example:
        >>> v = Vector(3)
        >>> v.decode(v.encode([1.0, 2.0, 3.0])).tolist()
        [1.0, 2.0, 3.0]
    """

    dim: t.Optional[int] = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"Vector dtype {self.dtype!r} is not supported; valid ones are {list(_DTYPES)}.")
        if self.dim is not None and (not isinstance(self.dim, int) or self.dim <= 0):
            raise ConfigError(f"Vector dim must be a positive integer, got {self.dim!r}.")

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype).newbyteorder("<")

    def encode(self, value: t.Any) -> bytes:
        """Bytes of ``value`` (array-like of length ``dim``)."""
        array = np.asarray(value)
        if array.ndim != 1:
            raise ValueError(f"expected a 1-d vector, got shape {array.shape}")
        if self.dim is not None and array.shape[0] != self.dim:
            raise ValueError(f"expected a vector of length {self.dim}, got {array.shape[0]}")
        if not np.all(np.isfinite(array)) if array.dtype.kind == "f" else False:
            raise ValueError("vector contains NaN or infinity")
        return np.ascontiguousarray(array, dtype=self.numpy_dtype).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=self.numpy_dtype).astype(self.dtype, copy=False)

    def to_json(self) -> dict:
        return {"_type": "vector", "dim": self.dim, "dtype": self.dtype}


@dc.dataclass(frozen=True)
class MultiVector:
    """A variable number of same-size vectors per row (e.g. ColBERT token vectors).

    Stored as the raw little-endian bytes of an ``(n, dim)`` matrix: the row count
    ``n`` is implied by the byte length, so backends keep it in the same bytes column
    as a :class:`Vector`.

    Args:
        dim: Size of each vector (required: decoding needs it).
        dtype: One of ``float32`` (default), ``float16``, ``float64``, ``int8``, ``uint8``.

    Example:
        >>> m = MultiVector(2)
        >>> m.decode(m.encode([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])).shape
        (3, 2)
    """

    dim: int
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"MultiVector dtype {self.dtype!r} is not supported; valid ones are {list(_DTYPES)}.")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0:
            raise ConfigError(f"MultiVector dim must be a positive integer, got {self.dim!r}.")

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype).newbyteorder("<")

    def encode(self, value: t.Any) -> bytes:
        """Bytes of ``value`` (array-like of shape ``(n, dim)`` with ``n >= 1``)."""
        array = np.asarray(value)
        if array.ndim != 2:
            raise ValueError(f"expected a matrix of shape (n, {self.dim}), got shape {array.shape}")
        if array.shape[1] != self.dim:
            raise ValueError(f"expected vectors of length {self.dim}, got {array.shape[1]}")
        if array.shape[0] == 0:
            raise ValueError("expected at least one vector, got none")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError("vectors contain NaN or infinity")
        return np.ascontiguousarray(array, dtype=self.numpy_dtype).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        """The ``(n, dim)`` matrix stored in ``data``."""
        width = self.dim * self.numpy_dtype.itemsize
        if len(data) % width:
            raise ValueError(f"{len(data)} bytes are not a whole number of {self.dim}-d {self.dtype} vectors")
        flat = np.frombuffer(data, dtype=self.numpy_dtype).astype(self.dtype, copy=False)
        return flat.reshape(-1, self.dim)

    def to_json(self) -> dict:
        return {"_type": "multivector", "dim": self.dim, "dtype": self.dtype}


@dc.dataclass(frozen=True)
class Text:
    """Text outputs (e.g. the chunks of a :class:`~pinnacle.components.chunker.TextChunker`),
    stored in a text column, so a downstream listener can read them as its key.

    Example:
        >>> Text().decode(Text().encode("a chunk"))
        'a chunk'
    """

    def encode(self, value: t.Any) -> str:
        """``value`` itself: a ``str`` that is valid UTF-8."""
        if not isinstance(value, str):
            raise ValueError(f"expected text (str), got {type(value).__name__}")
        value.encode("utf-8")  # a lone surrogate cannot be stored
        return value

    def decode(self, data: t.Any) -> str:
        return data if isinstance(data, str) else bytes(data).decode("utf-8")

    def to_json(self) -> dict:
        return {"_type": "text"}


def vector(dim: int | None = None, dtype: str = "float32") -> Vector:
    """Shorthand for :class:`Vector`."""
    return Vector(dim, dtype)


def datatype_from_json(data: dict) -> Vector | MultiVector:
    kind = data.get("_type")
    if kind == "vector":
        return Vector(data.get("dim"), data.get("dtype", "float32"))
    if kind == "multivector":
        return MultiVector(data["dim"], data.get("dtype", "float32"))
    if kind == "text":
        return Text()
    raise ConfigError(f"Unknown datatype {kind!r}; known: ['vector', 'multivector', 'text'].")
