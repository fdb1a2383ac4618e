"""Run an ONNX export: read and check its folder, open an ONNX Runtime session over it."""

from __future__ import annotations

import json
import logging
import typing as t
from pathlib import Path

import numpy as np

from pinnacle._deps import require
from pinnacle.base.artifacts import IntegrityError
from pinnacle.ext.onnx.export import MANIFEST, OnnxExportError, file_sha256

logger = logging.getLogger(__name__)

__all__ = ["OnnxSession", "onnx_file", "providers_for"]


def onnx_file(folder: str | Path, *, owner: str) -> tuple[Path, dict]:
    """The ONNX file of an export folder and its manifest, checked against its sha256.

    Raises:
        IntegrityError: The file's bytes do not hash to the sha256 its manifest records.
        OnnxExportError: The folder has no manifest or no file.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf8"))
        path = folder / manifest["file"]
    except (OSError, ValueError, KeyError) as exc:
        raise OnnxExportError(f"{owner}: {folder} is not an ONNX export folder ({type(exc).__name__}: {exc}).") from exc
    if not path.is_file():
        raise OnnxExportError(f"{owner}: the ONNX file {path} named by {folder / MANIFEST} is missing.")
    found = file_sha256(path)
    if found != manifest.get("sha256"):
        raise IntegrityError(
            f"{owner}: the stored ONNX file {path} does not match its sha256 (recorded {manifest.get('sha256')}, "
            f"found {found}): it was altered after the export. Delete {folder} to unpack the stored copy again; "
            "if the stored copy is bad too, remove and re-apply the model to export it again."
        )
    return path, manifest


def providers_for(device: str, provider: t.Optional[str] = None) -> list[str]:
    """ONNX Runtime execution providers for a pinnacle device (``provider`` wins when given).

    Example:
        >>> providers_for("cpu")
        ['CPUExecutionProvider']
    """
    if provider:
        return [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]
    if device.startswith("cuda"):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxSession:
    """An ONNX Runtime session over an encoder export: token arrays in, ``last_hidden_state`` out.

    Args:
        path: The ``.onnx`` file.
        providers: Execution providers, in order of preference (see :func:`providers_for`).
        owner: The component, for messages.

    Example:
        >>> session = OnnxSession(path, providers=["CPUExecutionProvider"], owner="m")  # path: an encoder's model.onnx
        >>> ids = np.array([[101, 2023, 2003, 1037, 6251, 102, 0], [101, 2178, 2028, 102, 0, 0, 0]])
        >>> session.last_hidden_state({"input_ids": ids, "attention_mask": (ids > 0).astype(int)}).shape
        (2, 7, 384)
    """

    def __init__(self, path: str | Path, *, providers: t.Sequence[str], owner: str):
        ort = require("onnxruntime", extra="onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available]
        if not chosen:
            raise OnnxExportError(f"{owner}: none of the ONNX Runtime providers {list(providers)} is available here ({sorted(available)}).")
        logger.debug("%s: ONNX Runtime session over %s on %s", owner, path, chosen)
        self._session = ort.InferenceSession(str(path), options, providers=chosen)
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]

    def last_hidden_state(self, features: t.Mapping[str, t.Any]) -> np.ndarray:
        """The token vectors, ``(batch, sequence, hidden)`` float32, for tokenizer outputs."""
        ids = np.asarray(features["input_ids"], dtype=np.int64)
        feeds = {}
        for name in self.input_names:
            value = features.get(name)
            if value is None and name == "token_type_ids":
                value = np.zeros_like(ids)  # one segment, as the tokenizer would give
            feeds[name] = np.asarray(value, dtype=np.int64)
        return self._session.run([self._output], feeds)[0]
