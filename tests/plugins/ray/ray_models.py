"""Tiny deterministic models for the Ray tests (importable by name in the Ray workers too:
the tests put this folder on the workers' PYTHONPATH)."""

from __future__ import annotations

import dataclasses as dc
import time

import numpy as np

import pinnacle


@dc.dataclass(kw_only=True, repr=False)
class SlowLetters(pinnacle.Model):
    """Counts of the letters a-z, taking ``delay`` seconds per row: a job long enough to interrupt."""

    signature: str = "singleton"
    delay: float = 0.0

    def predict(self, x: str) -> np.ndarray:
        return self.predict_batches([x])[0]

    def predict_batches(self, inputs):
        if self.delay:
            time.sleep(self.delay * len(inputs))
        out = []
        for x in inputs:
            vector = np.zeros(26, dtype=np.float32)
            for ch in x.lower():
                if "a" <= ch <= "z":
                    vector[ord(ch) - ord("a")] += 1.0
            out.append(vector)
        return out

    def validate_input(self, x):
        return None if isinstance(x, str) and x.strip() else "expected non-empty text"

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(26)
