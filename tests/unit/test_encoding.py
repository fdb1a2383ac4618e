"""Components encode to plain JSON and decode back: nested children, callables by import path."""

from __future__ import annotations

import json
import string
import textwrap

import pytest

import pinnacle
from pinnacle import ConfigError
from pinnacle.base.encoding import callable_path, decode, encode, import_callable
from pinnacle.components.devices import DEFAULT_DEVICE
from pinnacle.components.model import Model
from pinnacle.ext.sentence_transformers import SentenceTransformer


def shout(text: str) -> str:
    """A module-level preprocess: importable by path."""
    return text.upper()


def _index():
    model = SentenceTransformer(
        identifier="minilm",
        model="/models/minilm",
        preprocess=string.capwords,
        postprocess=shout,
        predict_kwargs={"batch_size": 4, "nested": {"a": [1, 2.5, None, True], "t": (1, "x")}},
        preferred_devices=("cpu", "mps"),
        datatype=pinnacle.vector(384),
    )
    listener = pinnacle.Listener("docs-emb", model=model, key="text", select="docs")
    return pinnacle.VectorIndex("docs-idx", indexing_listener=listener, measure="l2")


def test_encoded_form_is_plain_json():
    data = encode(_index())
    again = json.loads(json.dumps(data))
    assert again == data
    assert data["_path"] == "pinnacle.components.vector_index.VectorIndex"
    listener = data["indexing_listener"]
    assert listener["_path"] == "pinnacle.components.listener.Listener"
    model = listener["model"]
    assert model["_path"] == "pinnacle.ext.sentence_transformers.model.SentenceTransformer"
    assert model["preprocess"] == {"_ref": "callable", "path": "string:capwords"}
    assert model["postprocess"] == {"_ref": "callable", "path": f"{__name__}:shout"}
    assert model["preferred_devices"] == {"_ref": "tuple", "items": ["cpu", "mps"]}
    assert "object" not in model  # the loaded native model is never encoded


def test_round_trip_keeps_fields_and_uuid():
    index = _index()
    back = decode(json.loads(json.dumps(encode(index))))
    assert type(back) is type(index)
    assert back.uuid == index.uuid
    assert back.measure == "l2"
    listener = back.indexing_listener
    assert isinstance(listener, pinnacle.Listener) and listener.uuid == index.indexing_listener.uuid
    model = listener.model
    assert isinstance(model, SentenceTransformer)
    assert model.preprocess is string.capwords
    assert model.postprocess is shout
    assert model.preferred_devices == ("cpu", "mps") and isinstance(model.preferred_devices, tuple)
    assert model.predict_kwargs == {"batch_size": 4, "nested": {"a": [1, 2.5, None, True], "t": (1, "x")}}
    assert model.datatype == pinnacle.Vector(384, "float32")
    assert model.model == "/models/minilm"


def test_refs_mode_names_children_by_uuid():
    index = _index()
    data = encode(index, refs=True)
    ref = data["indexing_listener"]
    assert ref["_ref"] == "component" and ref["type"] == "Listener"
    assert ref["identifier"] == "docs-emb" and ref["uuid"] == index.indexing_listener.uuid
    with pytest.raises(ConfigError, match="db.load"):
        decode(data)
    loaded = decode(data, load_component=lambda r: index.indexing_listener if r["uuid"] == ref["uuid"] else None)
    assert loaded.indexing_listener is index.indexing_listener


def test_default_device_stays_default_and_explicit_stays_explicit():
    default = decode(encode(Model("m")))
    assert default.device is DEFAULT_DEVICE or type(default.device) is type(DEFAULT_DEVICE)
    explicit = decode(encode(Model("m", device="cpu")))
    assert explicit.device == "cpu" and type(explicit.device) is str


def _lambda_model():
    return SentenceTransformer(identifier="minilm", model="/models/minilm", preprocess=lambda x: x.lower())


def _nested_model():
    def strip(x):
        return x.strip()

    return SentenceTransformer(identifier="minilm", model="/models/minilm", preprocess=strip)


@pytest.mark.parametrize("make, what", [(_lambda_model, "<lambda>"), (_nested_model, "strip")])
def test_unstorable_callables_refused_with_help(make, what):
    with pytest.raises(ConfigError) as info:
        encode(make())
    message = str(info.value)
    assert what in message
    assert "def" in message and "module" in message  # says what to do instead
    assert "minilm" in message  # names the component


@pytest.mark.parametrize("make", [_lambda_model, _nested_model])
def test_apply_refuses_lambdas_and_writes_nothing(sqlite_db, make):
    sqlite_db["docs"].insert([{"text": "hello"}])
    listener = pinnacle.Listener("docs-emb", model=make(), key="text", select=sqlite_db["docs"])
    with pytest.raises(ConfigError, match="lambda|nested"):
        sqlite_db.apply(listener)
    assert sqlite_db.show() == []
    assert not sqlite_db.backend.has_table("_outputs__docs-emb")
    assert sqlite_db["docs"].insert([{"text": "still fine"}])  # no trigger left behind


def test_main_module_callables_refused():
    def fn(x):
        return x

    fn.__module__ = "__main__"
    fn.__qualname__ = "fn"
    with pytest.raises(ConfigError, match="__main__"):
        callable_path(fn)


def test_callable_path_and_import():
    assert callable_path(textwrap.dedent) == "textwrap:dedent"
    assert import_callable("textwrap:dedent") is textwrap.dedent
    with pytest.raises(ConfigError, match="cannot import"):
        import_callable("textwrap:no_such_function")
    with pytest.raises(ConfigError, match="not callable"):
        import_callable("string:ascii_letters")


def test_decode_refuses_non_components():
    with pytest.raises(ConfigError, match="not a pinnacle Component"):
        decode({"_path": "subprocess.Popen", "args": ["true"]})
    with pytest.raises(ConfigError, match="Cannot import"):
        decode({"_path": "no_such_module.Thing"})
    with pytest.raises(ConfigError, match="Unknown reference"):
        decode({"_ref": "pickle", "data": "..."})


def test_decode_rejects_unknown_fields():
    data = encode(Model("m"))
    data["no_such_field"] = 1
    with pytest.raises(ConfigError, match="no_such_field"):
        decode(data)


def test_unencodable_values_refused():
    with pytest.raises(ConfigError, match="cannot encode"):
        encode(Model("m", predict_kwargs={"x": object()}))
    with pytest.raises(ConfigError, match="keys must be strings"):
        encode(Model("m", predict_kwargs={1: "x"}))
