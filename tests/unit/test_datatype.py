"""Vector: compact little-endian bytes, checked on the way in."""

from __future__ import annotations

import numpy as np
import pytest

from pinnacle import ConfigError, Vector, vector
from pinnacle.components.datatype import datatype_from_json


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int8", "uint8"])
def test_round_trip(dtype):
    values = np.array([0, 1, 2, 3, 100, 7], dtype=dtype)
    v = Vector(6, dtype)
    data = v.encode(values)
    assert isinstance(data, bytes)
    assert len(data) == 6 * np.dtype(dtype).itemsize  # raw bytes, not text
    back = v.decode(data)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, values)


def test_bytes_are_little_endian_float32():
    data = Vector(2).encode([1.0, -2.5])
    assert data == np.array([1.0, -2.5], dtype="<f4").tobytes()


def test_float64_input_stored_as_float32():
    x = np.random.default_rng(0).normal(size=384)
    v = Vector(384)
    back = v.decode(v.encode(x))
    assert back.dtype == np.float32 and len(v.encode(x)) == 384 * 4
    np.testing.assert_allclose(back, x.astype(np.float32))


def test_dim_unknown_accepts_any_length():
    v = Vector()
    assert v.decode(v.encode([1.0, 2.0, 3.0])).tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "value, match",
    [([1.0, 2.0], "length 3"), ([[1.0, 2.0, 3.0]], "1-d"), ([1.0, float("nan"), 3.0], "NaN"), ([1.0, float("inf"), 0.0], "NaN")],
)
def test_bad_values_rejected(value, match):
    with pytest.raises(ValueError, match=match):
        Vector(3).encode(value)


def test_bad_definitions_rejected():
    with pytest.raises(ConfigError) as info:
        Vector(3, "float128")
    for valid in ("float32", "float16", "int8", "uint8"):
        assert valid in str(info.value)
    for dim in (0, -1, 2.5, "3"):
        with pytest.raises(ConfigError, match="dim"):
            Vector(dim)


def test_json_round_trip():
    v = vector(128, "int8")
    assert v == Vector(128, "int8")
    assert v.to_json() == {"_type": "vector", "dim": 128, "dtype": "int8"}
    assert datatype_from_json(v.to_json()) == v
    with pytest.raises(ConfigError, match="Unknown datatype"):
        datatype_from_json({"_type": "image"})
