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


def embed_without_export(uri: str, model_identifier: str, texts: list) -> dict:
    """Load a model from the database and embed ``texts`` with exporting to ONNX made impossible:
    what a Ray worker does when the export is stored (run as a Ray task by the ONNX test)."""
    import pinnacle.ext.onnx.export as export

    def refuse(*args, **kwargs):
        raise AssertionError("a Ray worker exported the model again")

    export.export_encoder = export.build_onnx_folder = refuse
    db = pinnacle.connect(uri)
    try:
        model = db.load("Model", model_identifier)
        return {"runs": type(model.native[0].auto_model).__name__, "vectors": np.stack(model.predict_batches(texts))}
    finally:
        db.close()
