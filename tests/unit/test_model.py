"""The Model base: signatures, validation of options, predict_batches."""

from __future__ import annotations

import pytest

import pinnacle
from pinnacle import ConfigError
from pinnacle.components.model import SIGNATURES, Model


class Echo(Model):
    def predict(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}


def test_signatures():
    assert set(SIGNATURES) == {"*args", "**kwargs", "*args,**kwargs", "singleton"}
    assert Echo("e", signature="singleton").predict_batches([(1, 2)]) == [{"args": [(1, 2)], "kwargs": {}}]
    assert Echo("e", signature="*args").predict_batches([(1, 2)]) == [{"args": [1, 2], "kwargs": {}}]
    assert Echo("e", signature="**kwargs").predict_batches([{"a": 1}]) == [{"args": [], "kwargs": {"a": 1}}]
    assert Echo("e", signature="*args,**kwargs").predict_batches([((1,), {"b": 2})]) == [{"args": [1], "kwargs": {"b": 2}}]


def test_invalid_signature_lists_valid():
    with pytest.raises(ConfigError) as info:
        Model("m", signature="positional")
    for valid in SIGNATURES:
        assert valid in str(info.value)


@pytest.mark.parametrize("name", ["predict_kwargs", "compute_kwargs", "model_update_kwargs", "metric_values"])
def test_kwargs_fields_must_be_dicts(name):
    with pytest.raises(ConfigError, match=name):
        Model("m", **{name: ["not", "a", "dict"]})


def test_base_predict_not_implemented():
    with pytest.raises(NotImplementedError, match="Model"):
        Model("m").predict("x")


def test_output_datatype():
    assert Model("m", datatype=8).output_datatype() == pinnacle.Vector(8)
    assert Model("m", datatype=pinnacle.vector(4, "int8")).output_datatype() == pinnacle.Vector(4, "int8")
    with pytest.raises(ConfigError, match="datatype"):
        Model("m", datatype="big").output_datatype()


def test_listener_model_input_shapes():
    text = pinnacle.Listener("l", model=Echo("e", signature="singleton"), key="text", select="docs")
    assert text.model_input({"text": "hi", "other": 1}) == "hi"
    args = pinnacle.Listener("l", model=Echo("e", signature="*args"), key=("a", "b"), select="docs")
    assert args.key_columns == ("a", "b")
    assert args.model_input({"a": 1, "b": 2}) == (1, 2)
    kwargs = pinnacle.Listener("l", model=Echo("e", signature="**kwargs"), key={"x": "a"}, select="docs")
    assert kwargs.model_input({"a": 5}) == {"x": 5}
    with pytest.raises(KeyError):
        text.model_input({"other": 1})
