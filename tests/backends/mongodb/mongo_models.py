"""A tiny deterministic model for the MongoDB plugin tests (no download, milliseconds)."""

from __future__ import annotations

import dataclasses as dc

import numpy as np

import pinnacle


@dc.dataclass(kw_only=True, repr=False)
class Letters(pinnacle.Model):
    """Counts of the letters a-z."""

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


def letters(text: str) -> np.ndarray:
    return Letters(identifier="reference").predict(text)
