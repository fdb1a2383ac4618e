"""Models for the reliability tests.

They live in an importable module because components are stored by import path: worker
processes started by the tests load them back from the database. ``HashEmbed`` is a
cheap, deterministic stand-in for an embedding model (a vector derived from the text's
sha256), so tests of the exactly-once machinery run thousands of rows in seconds;
``CountingSentenceTransformer`` is the real model with the same bookkeeping.

Environment variables (read at call time, so they never enter a component's uuid):

* ``PINNACLE_TEST_PREDICT_LOG``: a folder; each process appends every input it predicts
  to ``<folder>/<pid>.log`` (one line per input), so a test can tell which process
  computed which rows.
* ``PINNACLE_TEST_BATCH_SLEEP``: seconds to sleep per ``predict_batches`` call, so a
  drain lasts long enough to be killed half-way.
"""

from __future__ import annotations

import dataclasses as dc
import hashlib
import os
import time
import typing as t

import numpy as np

from pinnacle.components.datatype import Vector
from pinnacle.components.model import Model, Signature
from pinnacle.ext.sentence_transformers import SentenceTransformer

__all__ = ["hash_vector", "HashEmbed", "Flaky", "Boom", "WeightedHash", "CountingSentenceTransformer", "read_predict_logs"]

#: ``Flaky`` fails on inputs containing "BOOM" unless this is True or ``PINNACLE_TEST_FLAKY_FIXED=1``
#: (as if the model had been fixed).
FIXED = False
#: ``Flaky``: input -> ``(monotonic time, batch size)`` of every predict_batches call that saw it.
CALLS: dict[str, list[tuple[float, int]]] = {}


def hash_vector(text: str, dim: int = 16) -> np.ndarray:
    """A deterministic float32 vector for ``text`` (the reference for ``HashEmbed``)."""
    data = b""
    counter = 0
    while len(data) < dim:
        data += hashlib.sha256(f"{counter}:{text}".encode("utf-8")).digest()
        counter += 1
    raw = np.frombuffer(data[:dim], dtype=np.uint8).astype(np.float32)
    return (raw - 127.5) / 127.5


def _log_inputs(inputs: t.Sequence[t.Any]) -> None:
    folder = os.environ.get("PINNACLE_TEST_PREDICT_LOG")
    if not folder:
        return
    lines = "".join(f"{x}\n" for x in inputs)
    with open(os.path.join(folder, f"{os.getpid()}.log"), "a", encoding="utf-8") as fh:
        fh.write(lines)


def _batch_sleep() -> None:
    delay = float(os.environ.get("PINNACLE_TEST_BATCH_SLEEP") or 0)
    if delay > 0:
        time.sleep(delay)


def read_predict_logs(folder: str | os.PathLike) -> dict[str, list[str]]:
    """``{pid: [inputs predicted by that process, in order]}`` from a predict-log folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".log"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                out[name[:-4]] = [line.rstrip("\n") for line in fh if line.endswith("\n")]
    return out


@dc.dataclass(kw_only=True, repr=False)
class HashEmbed(Model):
    """A cheap deterministic "embedding": ``hash_vector(text, dim)``."""

    signature: Signature = "singleton"
    dim: int = 16

    def infer_datatype(self) -> Vector:
        return Vector(self.dim)

    def predict(self, x: str) -> np.ndarray:
        return self.predict_batches([x])[0]

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        _batch_sleep()
        _log_inputs(inputs)
        return [hash_vector(x, self.dim) for x in inputs]

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        if not isinstance(x, str):
            return f"expected text (str) but got {type(x).__name__}"
        if not x.strip():
            return "the text is empty"
        return None


class Boom(RuntimeError):
    """What ``Flaky`` raises."""


@dc.dataclass(kw_only=True, repr=False)
class Flaky(HashEmbed):
    """``HashEmbed`` that raises :class:`Boom` for any batch holding an input with "BOOM"."""

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        now = time.monotonic()
        for x in inputs:
            CALLS.setdefault(x, []).append((now, len(inputs)))
        bad = [x for x in inputs if "BOOM" in x]
        fixed = FIXED or os.environ.get("PINNACLE_TEST_FLAKY_FIXED") == "1"
        if bad and not fixed:
            raise Boom(f"the model cannot embed {bad[0]!r}")
        return super().predict_batches(inputs)


@dc.dataclass(kw_only=True, repr=False)
class WeightedHash(HashEmbed):
    """``HashEmbed`` whose vectors are shifted by stored "weights": a model with a bytes artifact."""

    uuid_excludes: t.ClassVar[frozenset[str]] = HashEmbed.uuid_excludes | {"weights"}

    weights: t.Optional[bytes] = dc.field(default=None, metadata={"encode": False})
    _ref: t.Any = dc.field(default=None, init=False, repr=False, compare=False)

    def dump_artifacts(self) -> dict[str, t.Any]:
        if self._ref is not None:
            return {"weights": self._ref}
        return {"weights": self.weights} if self.weights is not None else {}

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._ref = artifacts.get("weights", self._ref)

    def load_weights(self) -> bytes:
        """The weights: read from the artifact store (and checked) when loaded from a database."""
        if self.weights is None and self._ref is not None:
            self.weights = self._ref.read_bytes()
        return self.weights or b""

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        shift = float(len(self.load_weights()) % 7)
        return [v + shift for v in super().predict_batches(inputs)]


@dc.dataclass(kw_only=True, repr=False)
class CountingSentenceTransformer(SentenceTransformer):
    """The real sentence-transformers model, logging its inputs like ``HashEmbed``."""

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[t.Any]:
        _log_inputs(inputs)
        return super().predict_batches(inputs)
