"""A cheap deterministic model for benchmarks that measure pinnacle, not a model.

It must import by name in Ray workers too: the benchmarks put this folder on the
workers' ``PYTHONPATH`` (``runtime_env``).
"""

from __future__ import annotations

import dataclasses as dc
import hashlib

import numpy as np

import pinnacle

DIM = 32


@dc.dataclass(kw_only=True, repr=False)
class HashEmbedder(pinnacle.Model):
    """A 32-dim float32 vector from the sha256 of the text: microseconds per row."""

    signature: str = "singleton"

    def predict(self, x: str) -> np.ndarray:
        digest = hashlib.sha256(x.encode()).digest()
        return (np.frombuffer(digest, dtype=np.uint8).astype(np.float32) - 127.5) / 127.5

    def validate_input(self, x):
        return None if isinstance(x, str) and x.strip() else "expected non-empty text"

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(DIM)


class ComputeOnlyWorker:
    """Ray actor body for the write-path measurement: predicts, returns the results, writes nothing.

    The "return vectors to a writer" design: the driver claims a chunk, this worker
    computes its :class:`~pinnacle.backends.base.WorkResult` (encoded vectors) and the
    driver commits it. Compared in ``ray_backfill.py --write-path`` with workers that
    commit themselves (the design pinnacle uses).
    """

    def __init__(self, uri: str, listener: str, version: int):
        from pinnacle.embedding.drain import Drainer

        db = pinnacle.connect(uri)
        self._drainer = Drainer(db.backend, db.load("Listener", listener, version))

    def compute(self, items):
        """``(WorkResult, CPU seconds)`` of one claimed chunk."""
        import time

        cpu = time.process_time()
        result, _ = self._drainer._compute(items)
        return result, time.process_time() - cpu
