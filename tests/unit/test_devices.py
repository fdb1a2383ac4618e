"""Device choice: the first available of preferred_devices, unless device is set."""

from __future__ import annotations

import pytest

from pinnacle.components import devices
from pinnacle.components.devices import DEFAULT_DEVICE, choose_device
from pinnacle.components.model import Model


@pytest.fixture
def only(monkeypatch):
    """``only("cuda", "cpu")`` makes exactly those devices look available."""

    def set_available(*names):
        monkeypatch.setattr(devices, "device_available", lambda d: d.split(":")[0] in names)

    return set_available


def test_default_device_is_cpu_string():
    assert DEFAULT_DEVICE == "cpu" and isinstance(DEFAULT_DEVICE, str)
    assert Model("m").device == "cpu"
    assert Model("m").preferred_devices == ("cuda", "mps", "cpu")


def test_cpu_always_available():
    assert devices.device_available("cpu")
    assert not devices.device_available("tpu")


def test_default_takes_first_available(only):
    only("cuda", "mps", "cpu")
    assert choose_device(DEFAULT_DEVICE, ("cuda", "mps", "cpu")) == "cuda"
    only("mps", "cpu")
    assert choose_device(DEFAULT_DEVICE, ("cuda", "mps", "cpu")) == "mps"
    only("cpu")
    assert choose_device(DEFAULT_DEVICE, ("cuda", "mps", "cpu")) == "cpu"
    only()
    assert choose_device(DEFAULT_DEVICE, ("cuda",)) == "cpu"


def test_explicit_device_wins(only):
    only("cuda", "cpu")
    assert choose_device("cpu", ("cuda", "cpu")) == "cpu"  # an explicit 'cpu' is not the default
    assert choose_device("cuda:1", ("cpu",)) == "cuda:1"
    assert Model("m", device="cpu").resolved_device() == "cpu"
    assert Model("m").resolved_device() == "cuda"
    assert Model("m", preferred_devices=("mps", "cpu")).resolved_device() == "cpu"


def test_empty_preferred_devices_uses_device(only):
    only("cuda")
    assert choose_device(DEFAULT_DEVICE, ()) == "cpu"


def test_no_gpu_here_resolves_to_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert Model("m").resolved_device() in ("cpu", "mps")
