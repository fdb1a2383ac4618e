"""The cheap deterministic model of the docstring examples (``model`` in their namespace).

Importable by name (``doctest_models``): components are stored by import path, and
``db.load`` imports the class again.
"""

from __future__ import annotations

import dataclasses as dc
import hashlib
import typing as t

import numpy as np

import pinnacle
from pinnacle.components.text_input import check_text


@dc.dataclass(kw_only=True, repr=False)
class HashEmbedder(pinnacle.Model):
    """A unit vector per text from the hashes of its words: no download, same text, same vector.

    Texts sharing words get similar vectors, so a search finds the row it was given.
    """

    signature: str = "singleton"
    dim: int = 384

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(self.dim)

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        return check_text(x, 10_000)

    def predict(self, x: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in x.lower().split():
            digest = hashlib.sha256(word.encode()).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dim] += 1.0 if digest[4] % 2 else -1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector
