"""A tiny deterministic model for the CLI tests (importable by worker subprocesses too)."""

from __future__ import annotations

import dataclasses as dc
import os
import time

import numpy as np

import pinnacle


@dc.dataclass(kw_only=True, repr=False)
class Letters(pinnacle.Model):
    """Counts of the letters a-z: fast, no download, similar texts get similar vectors."""

    signature: str = "singleton"

    def predict(self, x: str) -> np.ndarray:
        vector = np.zeros(26, dtype=np.float32)
        for ch in x.lower():
            if "a" <= ch <= "z":
                vector[ord(ch) - ord("a")] += 1.0
        return vector

    def validate_input(self, x):
        if not isinstance(x, str) or not x.strip():
            return "expected non-empty text"
        return None

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(26)


@dc.dataclass(kw_only=True, repr=False)
class Slow(Letters):
    """Letters that takes its time: touches ``$CLI_TEST_MARKER`` (if set) when a batch starts, then sleeps 2 s."""

    def predict_batches(self, inputs):
        marker = os.environ.get("CLI_TEST_MARKER")
        if marker:
            with open(marker, "a") as fh:
                fh.write(f"{len(inputs)}\n")
        time.sleep(2.0)
        return [self.predict(x) for x in inputs]
