"""A cheap model for the tests of components another service's process cannot import.

``Words`` is importable here (the suite puts this folder on ``sys.path``); the tests
write a second module into a temporary folder, importable only while that folder is
on the path: what a model class, a ``preprocess`` function or an artifact of another
service looks like to a process that does not have it.
"""

from __future__ import annotations

import dataclasses as dc
import hashlib
import importlib
import typing as t

import numpy as np

import pinnacle

DIM = 8


def words_vector(text: str, shift: float = 0.0) -> np.ndarray:
    """The reference vector of ``Words`` for ``text``: a hash of its words, summed."""
    vector = np.zeros(DIM, dtype=np.float32)
    for word in text.split():
        digest = hashlib.sha256(word.encode("utf-8")).digest()[:DIM]
        vector += np.frombuffer(digest, dtype=np.uint8).astype(np.float32) / 255.0
    return vector + shift


@dc.dataclass(kw_only=True, repr=False)
class Words(pinnacle.Model):
    """A deterministic bag-of-words embedding, with an optional ``preprocess`` function and
    optional ``weights`` kept as a bytes artifact (the vector is shifted by their length)."""

    uuid_excludes: t.ClassVar[frozenset[str]] = pinnacle.Model.uuid_excludes | {"weights"}

    signature: str = "singleton"
    preprocess: t.Optional[t.Callable] = None
    weights: t.Optional[bytes] = dc.field(default=None, metadata={"encode": False})
    _ref: t.Any = dc.field(default=None, init=False, repr=False, compare=False)

    def predict(self, x: str) -> np.ndarray:
        text = self.preprocess(x) if self.preprocess is not None else x
        if self.weights is None and self._ref is not None:
            self.weights = self._ref.read_bytes()
        return words_vector(text, float(len(self.weights or b"")))

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(DIM)

    def dump_artifacts(self) -> dict[str, t.Any]:
        if self._ref is not None:
            return {"weights": self._ref}
        return {"weights": self.weights} if self.weights is not None else {}

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._ref = artifacts.get("weights", self._ref)


@dc.dataclass(kw_only=True, repr=False)
class NeedsLibrary(Words):
    """``Words`` that imports the module named ``library`` when it runs, as a model imports its
    native library (torch, onnxruntime...) on first use."""

    library: str = "pinnacle_test_native_library"

    def predict_batches(self, inputs):
        importlib.import_module(self.library)
        return super().predict_batches(inputs)
