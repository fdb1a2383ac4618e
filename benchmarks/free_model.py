"""A model that costs nothing: it returns precomputed 384-d float32 vectors.

``framework_ceiling.py`` uses it to measure pinnacle's own cost: with this model, every
second a drain takes is spent in pinnacle and the database, none in the model. Its vectors
have the size of all-MiniLM-L6-v2's (384 float32, 1,536 bytes), so the database writes
as many bytes as with a real encoder.

:class:`PacedEmbedder` is the same model slowed to a given number of rows per second
without using the CPU (it sleeps, as a process waiting for its GPU does): it shows how much
of the database's time a drain hides behind the model.

They must import by name (``free_model.FreeEmbedder``) in Ray workers too: the benchmark puts
this folder on the workers' ``PYTHONPATH``.
"""

from __future__ import annotations

import dataclasses as dc
import time

import numpy as np

import pinnacle

DIM = 384
POOL = 1024

#: Distinct unit vectors, made once at import; rows get them in turn.
VECTORS = np.random.default_rng(0).standard_normal((POOL, DIM)).astype(np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
#: The same vectors as stored bytes, for the database-alone measurement.
VECTOR_BYTES = [v.tobytes() for v in VECTORS]
_ROWS = list(VECTORS)  # row views, handed out without copying


@dc.dataclass(kw_only=True, repr=False)
class FreeEmbedder(pinnacle.Model):
    """A precomputed 384-d float32 vector per input: microseconds per batch."""

    signature: str = "singleton"

    def predict(self, x: str) -> np.ndarray:
        return VECTORS[0]

    def predict_batches(self, inputs):
        n = len(inputs)
        if n <= POOL:
            return _ROWS[:n]
        return [_ROWS[i % POOL] for i in range(n)]

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(DIM)


@dc.dataclass(kw_only=True, repr=False)
class PacedEmbedder(FreeEmbedder):
    """:class:`FreeEmbedder` that takes ``1 / rows_per_s`` seconds per row, sleeping (the GIL
    released, as while a GPU computes): a model of a given speed that costs no CPU."""

    rows_per_s: float = 50_000.0

    def predict_batches(self, inputs):
        time.sleep(len(inputs) / self.rows_per_s)
        return super().predict_batches(inputs)
