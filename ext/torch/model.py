"""TorchModel: any ``torch.nn.Module`` as a pinnacle model, its weights kept as safetensors."""

from __future__ import annotations

import dataclasses as dc
import hashlib
import importlib
import io
import logging
import os
import threading
import typing as t

import numpy as np

from pinnacle._deps import require
from pinnacle.base.artifacts import ArtifactRef
from pinnacle.components.model import Model, Signature
from pinnacle.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["TorchModel", "ALLOW_PICKLE_ENV"]

#: Environment variable a process must set to ``1`` to load a module stored with ``pickle_module=True``.
ALLOW_PICKLE_ENV = "PINNACLE_ALLOW_PICKLE"


def _torch() -> t.Any:
    return require("torch", extra="torch")


@dc.dataclass(kw_only=True, repr=False)
class TorchModel(Model):
    """Run a ``torch.nn.Module`` over rows: preprocess each input, collate a batch, forward, split.

    The module is rebuilt as ``module_class(**module_kwargs)`` and its ``state_dict``
    is stored as a safetensors artifact at apply, so nothing is unpickled on load.
    ``module_class`` and the callables are stored by import path: define them at the
    top level of an importable module (lambdas are refused at apply).

    Per batch of ``batch_size`` inputs: ``preprocess(x)`` for each input, then
    ``collate(list)`` (default ``torch.utils.data.default_collate``), then the module's
    forward pass under ``torch.inference_mode`` on the model's device, then the output
    is split along its first dimension and ``postprocess(item)`` is applied to each item
    (default: a float32 numpy array).

    Args:
        module_class: The ``nn.Module`` subclass (or its import path ``'pkg.mod:Class'``).
        module_kwargs: Keyword arguments that rebuild the module (JSON values).
        object: A built module to use (its class becomes ``module_class``); its weights are
            stored at apply.
        preprocess: Function applied to each input (e.g. text -> tensor).
        collate: Function turning a list of preprocessed inputs into the forward's input.
        postprocess: Function applied to each item of the output.
        batch_size: Inputs per forward pass.
        pickle_module: UNSAFE, off by default. Store the whole module with ``torch.save``
            (pickle) instead of class + kwargs + safetensors, for modules that cannot be
            rebuilt from their class. Loading it runs arbitrary code from the database, so
            a process loads it only when ``PINNACLE_ALLOW_PICKLE=1`` is set: use it only on
            a database no one untrusted can write to.

    Example:
        >>> m = TorchModel("mlp", module_class="torch.nn:Linear", module_kwargs={"in_features": 4, "out_features": 2})
        >>> m.module_class.__name__, m.batch_size
        ('Linear', 32)
    """

    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {"object", "batch_size"}

    signature: Signature = "singleton"
    module_class: t.Any = None
    module_kwargs: dict = dc.field(default_factory=dict)
    object: t.Any = dc.field(default=None, metadata={"encode": False})
    preprocess: t.Optional[t.Callable] = None
    collate: t.Optional[t.Callable] = None
    postprocess: t.Optional[t.Callable] = None
    batch_size: int = 32
    pickle_module: bool = False

    _state: t.Optional[ArtifactRef] = dc.field(default=None, init=False, repr=False, compare=False)
    _pickled: t.Optional[ArtifactRef] = dc.field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = dc.field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _on: t.Optional[str] = dc.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self, db=None, artifacts=None) -> None:
        owner = f"TorchModel {self.identifier!r}"
        if isinstance(self.module_class, str):
            self.module_class = _import_class(self.module_class, owner)
        if self.module_class is None and self.object is not None:
            self.module_class = type(self.object)
        if self.module_class is None:
            raise ConfigError(f"{owner}: give module_class= (an nn.Module subclass or 'pkg.mod:Class') or object=.")
        if not isinstance(self.module_class, type):
            raise ConfigError(f"{owner}: module_class must be a class, got {self.module_class!r}.")
        if self.object is not None and not isinstance(self.object, self.module_class):
            raise ConfigError(f"{owner}: object is a {type(self.object).__name__}, not a {self.module_class.__name__}.")
        if not isinstance(self.module_kwargs, dict):
            raise ConfigError(f"{owner}: module_kwargs must be a dict.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ConfigError(f"{owner}: batch_size must be a positive integer, got {self.batch_size!r}.")
        if not isinstance(self.pickle_module, bool):
            raise ConfigError(f"{owner}: pickle_module must be True or False.")
        super().__post_init__(db, artifacts)

    def definition(self) -> dict[str, t.Any]:
        """Fields that define outputs, plus a hash of the given module's weights."""
        out = super().definition()
        if self.object is not None:
            out["weights_sha256"] = _weights_hash(self.object)
        return out

    # -- loading ------------------------------------------------------------------------
    @property
    def native(self) -> t.Any:
        """The ``nn.Module`` in eval mode on the model's device (built or loaded on first use)."""
        if self.object is None:
            with self._lock:
                if self.object is None:
                    self.object = self._load()
        device = self.resolved_device()
        if self._on != device:
            self.object.to(device).eval()
            self._on = device
        return self.object

    def _load(self) -> t.Any:
        torch = _torch()
        if self._pickled is not None:
            if os.environ.get(ALLOW_PICKLE_ENV) != "1":
                raise ConfigError(
                    f"TorchModel {self.identifier!r} is stored pickled (pickle_module=True). Unpickling runs code "
                    f"from the database; set {ALLOW_PICKLE_ENV}=1 in this process only if you trust everyone "
                    "who can write to it."
                )
            logger.warning(
                "TorchModel %r: unpickling its module (pickle_module=True); this runs code stored in the database.",
                self.identifier,
            )
            return torch.load(io.BytesIO(self._pickled.read_bytes()), map_location="cpu", weights_only=False)
        module = self.module_class(**self.module_kwargs)
        if self._state is not None:
            safetensors_torch = require("safetensors.torch", extra="torch")
            module.load_state_dict(safetensors_torch.load(self._state.read_bytes()))
        return module

    # -- artifacts ----------------------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        """``state_dict`` as safetensors bytes (or the pickled module when ``pickle_module``)."""
        if self._pickled is not None:
            return {"module": self._pickled}
        if self._state is not None and not self.pickle_module:
            return {"state_dict": self._state}
        module = self.native
        if self.pickle_module:
            buf = io.BytesIO()
            _torch().save(module, buf)
            return {"module": buf.getvalue()}
        data = _state_bytes(module)
        self._check_rebuild(data)
        return {"state_dict": data}

    def _check_rebuild(self, data: bytes) -> None:
        """Refuse at apply a module that ``module_class(**module_kwargs)`` cannot take the weights of."""
        safetensors_torch = require("safetensors.torch", extra="torch")
        try:
            self.module_class(**self.module_kwargs).load_state_dict(safetensors_torch.load(data))
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot be rebuilt"
            raise ConfigError(
                f"TorchModel {self.identifier!r}: {self.module_class.__name__}(**module_kwargs) cannot be rebuilt "
                f"with the module's weights ({type(exc).__name__}: {exc}). Pass the module_kwargs that build it, "
                "or pickle_module=True (unsafe: loading runs pickled code)."
            ) from exc

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        state, pickled = artifacts.get("state_dict"), artifacts.get("module")
        if isinstance(state, ArtifactRef):
            self._state = state
        if isinstance(pickled, ArtifactRef):
            if not self.pickle_module:
                raise ConfigError(
                    f"TorchModel {self.identifier!r}: the stored module is pickled but pickle_module is False; "
                    "refusing to unpickle it."
                )
            self._pickled = pickled

    # -- prediction ---------------------------------------------------------------------
    def predict(self, x: t.Any) -> t.Any:
        """The output for one input."""
        return self.predict_batches([x])[0]

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[t.Any]:
        """Outputs for many inputs, ``batch_size`` per forward pass."""
        torch = _torch()
        module = self.native
        device = self.resolved_device()
        collate = self.collate or torch.utils.data.default_collate
        outputs: list[t.Any] = []
        for start in range(0, len(inputs), self.batch_size):
            items = [self.preprocess(x) if self.preprocess is not None else x for x in inputs[start : start + self.batch_size]]
            batch = _to_device(collate(items), device, torch)
            with torch.inference_mode():
                result = module(batch)
            parts = _split(result, len(items), self.identifier, torch)
            outputs.extend(self.postprocess(p) if self.postprocess is not None else _to_numpy(p, torch) for p in parts)
        return outputs


def _import_class(path: str, owner: str) -> type:
    module_name, sep, qualname = path.partition(":")
    if not sep:
        module_name, _, qualname = path.rpartition(".")
    try:
        obj: t.Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{owner}: cannot import module_class {path!r}: {exc}") from exc
    return obj


def _state_bytes(module: t.Any) -> bytes:
    """The module's ``state_dict`` as safetensors bytes (shared tensors copied apart)."""
    safetensors_torch = require("safetensors.torch", extra="torch")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    return safetensors_torch.save(state)


def _weights_hash(module: t.Any) -> str:
    """sha256 of the names, dtypes, shapes and bytes of a module's state_dict."""
    torch = _torch()
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _to_device(batch: t.Any, device: str, torch: t.Any) -> t.Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, torch) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, torch) for v in batch)
    return batch


def _split(result: t.Any, n: int, identifier: str, torch: t.Any) -> list[t.Any]:
    """One item per input from the batch output (a tensor, or a tuple/dict of tensors)."""
    if isinstance(result, torch.Tensor):
        parts: list[t.Any] = list(result.unbind(0))
    elif isinstance(result, dict):
        columns = {k: _split(v, n, identifier, torch) for k, v in result.items()}
        parts = [{k: v[i] for k, v in columns.items()} for i in range(n)]
    elif isinstance(result, (list, tuple)) and result and all(isinstance(v, torch.Tensor) for v in result):
        columns = [_split(v, n, identifier, torch) for v in result]
        parts = [tuple(c[i] for c in columns) for i in range(n)]
    else:
        raise TypeError(
            f"TorchModel {identifier!r}: forward returned {type(result).__name__}; return a tensor batched "
            "along dimension 0 (or a tuple/dict of them)."
        )
    if len(parts) != n:
        raise ValueError(f"TorchModel {identifier!r}: {n} inputs gave {len(parts)} outputs along dimension 0.")
    return parts


def _to_numpy(item: t.Any, torch: t.Any) -> t.Any:
    if isinstance(item, torch.Tensor):
        return item.detach().to("cpu").float().numpy()
    if isinstance(item, dict):
        return {k: _to_numpy(v, torch) for k, v in item.items()}
    if isinstance(item, tuple):
        return tuple(_to_numpy(v, torch) for v in item)
    return np.asarray(item)
