"""TorchModel: class + kwargs + safetensors state_dict round trip; pickling only on explicit opt-in."""

from __future__ import annotations

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from pinnacle.ext.torch import TorchModel  # noqa: E402
from pinnacle.ext.torch.model import ALLOW_PICKLE_ENV  # noqa: E402

FEATURES = 6
BATCHES: list[int] = []  # batch sizes seen by TinyNet.forward


class TinyNet(torch.nn.Module):
    """A small MLP; its kwargs rebuild it."""

    def __init__(self, features: int, hidden: int, out: int):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(features, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, out))

    def forward(self, x):
        BATCHES.append(x.shape[0])
        return self.layers(x)


class Unrebuildable(TinyNet):
    """Its constructor takes a callable, which module_kwargs cannot hold."""

    def __init__(self, make):
        super().__init__(*make())


def featurize(text: str):
    """Text to a fixed-size float tensor (counts), the preprocess step."""
    return torch.tensor(
        [len(text), text.count(" "), text.count("e"), text.count("a"), sum(c.isupper() for c in text), len(set(text))],
        dtype=torch.float32,
    ) / 10.0


def stack_batch(items):
    """A custom collate: stack the tensors."""
    return torch.stack(items)


def as_list(vector):
    """A postprocess: the numpy vector, rounded."""
    return np.round(vector.numpy(), 6)


def _net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(FEATURES, 8, 3).eval()


def _expected(net, texts):
    with torch.no_grad():
        return net(torch.stack([featurize(t) for t in texts])).numpy()


TEXTS = ["alpha beta", "Gamma delta epsilon", "e", "A much longer sentence with Capitals", "zz"]


def test_batches_preprocess_collate_postprocess():
    net = _net()
    model = TorchModel("tiny", object=net, module_kwargs={"features": FEATURES, "hidden": 8, "out": 3},
                       preprocess=featurize, collate=stack_batch, batch_size=2)
    assert model.module_class is TinyNet and model.resolved_device() == "cpu"
    BATCHES.clear()
    out = model.predict_batches(TEXTS)
    assert BATCHES == [2, 2, 1]
    np.testing.assert_allclose(np.stack(out), _expected(net, TEXTS), atol=1e-6)
    post = TorchModel("tiny2", object=net, module_kwargs={"features": FEATURES, "hidden": 8, "out": 3},
                      preprocess=featurize, postprocess=as_list)
    np.testing.assert_allclose(post.predict(TEXTS[0]), np.round(_expected(net, TEXTS[:1])[0], 6))
    assert next(model.native.parameters()).device.type == "cpu"


def test_uuid_follows_the_weights():
    kwargs = {"features": FEATURES, "hidden": 8, "out": 3}
    a = TorchModel("t", object=_net(0), module_kwargs=kwargs, preprocess=featurize)
    b = TorchModel("t", object=_net(0), module_kwargs=kwargs, preprocess=featurize)
    c = TorchModel("t", object=_net(1), module_kwargs=kwargs, preprocess=featurize)
    assert a.uuid == b.uuid != c.uuid
    assert TorchModel("t", module_class=TinyNet, module_kwargs=kwargs, batch_size=5).uuid == TorchModel(
        "t", module_class="test_torch_model:TinyNet", module_kwargs=kwargs
    ).uuid


def test_round_trip_through_the_artifact_store(connect, artifact_files):
    db = connect()
    db["docs"].insert([{"_id": str(i), "text": t} for i, t in enumerate(TEXTS)])
    net = _net(3)
    model = TorchModel("tiny", object=net, module_kwargs={"features": FEATURES, "hidden": 8, "out": 3},
                       preprocess=featurize, datatype=3)
    db.apply(pinnacle.Listener("docs-tiny", model=model, key="text", select=db["docs"]))
    outputs = db.outputs("docs-tiny")
    np.testing.assert_allclose(np.stack([outputs[str(i)] for i in range(len(TEXTS))]), _expected(net, TEXTS), atol=1e-6)

    # The weights are a safetensors state_dict, not a pickle.
    state = safetensors_torch.load(model._state.read_bytes())
    assert set(state) == set(net.state_dict())

    # A new Datalayer rebuilds TinyNet(**module_kwargs) and loads the weights.
    other = connect()
    loaded = other.load("Model", "tiny")
    assert isinstance(loaded, TorchModel) and loaded.object is None and loaded.module_class is TinyNet
    np.testing.assert_allclose(np.stack(loaded.predict_batches(TEXTS)), _expected(net, TEXTS), atol=1e-6)
    other["docs"].insert([{"_id": "new", "text": "brand new row"}])
    np.testing.assert_allclose(other.outputs("docs-tiny")["new"], _expected(net, ["brand new row"])[0], atol=1e-6)


def test_pickling_is_refused_by_default(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'pickle.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": "1", "text": "hello"}])
    kwargs = {"features": FEATURES, "hidden": 8, "out": 3}
    with pytest.raises(ConfigError, match="lambda"):
        db.apply(pinnacle.Listener(
            "l", model=TorchModel("lam", object=_net(), module_kwargs=kwargs, preprocess=lambda x: featurize(x)),
            key="text", select="docs",
        ))
    # A module its class cannot rebuild: refused at apply, naming the opt-in.
    odd = TorchModel("odd", object=Unrebuildable(_shape), preprocess=featurize)
    with pytest.raises(ConfigError, match="pickle_module=True"):
        db.apply(odd)
    assert db.show("Model") == []  # nothing half-applied

    # Opting in stores a pickle; loading it needs a second, per-process opt-in.
    net = Unrebuildable(_shape)
    db.apply(TorchModel("pickled", object=net, preprocess=featurize, pickle_module=True))
    db.close()
    with torch.no_grad():
        want = net(featurize("hello")[None])[0].numpy()
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    other = pinnacle.connect(uri)
    with pytest.raises(ConfigError, match=ALLOW_PICKLE_ENV):
        other.load("Model", "pickled").predict("hello")
    other.close()
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    other = pinnacle.connect(uri)
    np.testing.assert_allclose(other.load("Model", "pickled").predict("hello"), want, atol=1e-6)
    other.close()


def _shape():
    return FEATURES, 4, 2


def test_definition_is_checked():
    with pytest.raises(ConfigError, match="module_class"):
        TorchModel("t")
    with pytest.raises(ConfigError, match="cannot import"):
        TorchModel("t", module_class="no.such:Thing")
    with pytest.raises(ConfigError, match="batch_size"):
        TorchModel("t", module_class=TinyNet, batch_size=0)
    with pytest.raises(ConfigError, match="not a TinyNet"):
        TorchModel("t", module_class=TinyNet, object=torch.nn.Linear(2, 2))


def test_bad_forward_output_is_explained():
    model = TorchModel("t", module_class="torch.nn:Identity", preprocess=featurize)
    assert model.predict("abc").shape == (FEATURES,)
    odd = TorchModel("odd", module_class=_Echo, preprocess=featurize, postprocess=as_list,
                     collate=_as_string)
    with pytest.raises(TypeError, match="forward returned str"):
        odd.predict("abc")


class _Echo(torch.nn.Module):
    def forward(self, x):
        return x


def _as_string(items):
    return "not a tensor"
