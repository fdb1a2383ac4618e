"""MultiVector: a variable number of vectors per row in one bytes value; 'maxsim' on VectorIndex."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, MultiVector
from pinnacle.base.encoding import decode, encode
from pinnacle.components.datatype import datatype_from_json
from pinnacle.components.model import Model


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int8", "uint8"])
@pytest.mark.parametrize("rows", [1, 3, 40])
def test_round_trip(dtype, rows):
    values = (np.arange(rows * 4) % 100).reshape(rows, 4).astype(dtype)
    m = MultiVector(4, dtype)
    data = m.encode(values)
    assert isinstance(data, bytes)
    assert len(data) == rows * 4 * np.dtype(dtype).itemsize  # compact: the row count is implied
    back = m.decode(data)
    assert back.shape == (rows, 4) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, values)


def test_bytes_are_little_endian_rows():
    assert MultiVector(2).encode([[1.0, -2.5], [0.5, 3.0]]) == np.array([1.0, -2.5, 0.5, 3.0], dtype="<f4").tobytes()


@pytest.mark.parametrize(
    "value, message",
    [
        ([1.0, 2.0, 3.0], "shape"),  # 1-d
        (np.zeros((2, 3, 3)), "shape"),
        (np.zeros((2, 4)), "length 3"),
        (np.zeros((0, 3)), "at least one"),
        ([[1.0, np.nan, 0.0]], "NaN"),
    ],
)
def test_bad_values_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        MultiVector(3).encode(value)


def test_decode_checks_the_length():
    with pytest.raises(ValueError, match="whole number"):
        MultiVector(3).decode(b"\x00" * 10)


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": None}, {"dim": 3, "dtype": "int64"}, {"dim": True}])
def test_bad_definitions(kwargs):
    with pytest.raises(ConfigError):
        MultiVector(**kwargs)


def test_json_round_trip_through_encoding():
    m = MultiVector(128, "float16")
    assert m.to_json() == {"_type": "multivector", "dim": 128, "dtype": "float16"}
    assert datatype_from_json(m.to_json()) == m
    model = Model("m", datatype=m)
    back = decode(encode(model))
    assert back.datatype == m
    assert back.output_datatype() == m


def test_unknown_datatype_lists_known_ones():
    with pytest.raises(ConfigError, match="multivector"):
        datatype_from_json({"_type": "tensor"})


def test_vector_index_maxsim_and_candidates():
    listener = pinnacle.Listener("l", model=Model("m"), key="text", select="docs")
    index = pinnacle.VectorIndex("i", indexing_listener=listener, measure="maxsim", candidates=50)
    assert index.measure == "maxsim" and index.candidates == 50
    assert "candidates" not in encode(pinnacle.VectorIndex("j", indexing_listener=listener))  # default omitted
    with pytest.raises(ConfigError, match="maxsim"):
        pinnacle.VectorIndex("i", indexing_listener=listener, measure="cosine", candidates=50)
    with pytest.raises(ConfigError, match="positive"):
        pinnacle.VectorIndex("i", indexing_listener=listener, measure="maxsim", candidates=0)
    with pytest.raises(ConfigError, match="'maxsim'"):
        pinnacle.VectorIndex("i", indexing_listener=listener, measure="colbert")
