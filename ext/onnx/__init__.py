"""ONNX Runtime for the transformers-based models (``SentenceTransformer``, ``TextEncoder``).

A model component with ``backend="onnx"`` exports its encoder once, at apply, with
``torch.onnx`` (optionally quantized to int8 for the CPU it is applied on), stores the
file with its artifacts, and runs it through ONNX Runtime in every process that loads it.
Nothing here imports torch or onnxruntime until an export or a session is made.

Example:
    >>> from pinnacle.ext.onnx import QUANTIZATIONS
    >>> QUANTIZATIONS
    ('int8',)
"""

from pinnacle.ext.onnx.export import (
    MANIFEST,
    QUANTIZATIONS,
    Int8Variant,
    OnnxExportError,
    build_onnx_folder,
    export_encoder,
    int8_variant_for_this_cpu,
    quantize_int8,
)
from pinnacle.ext.onnx.runtime import OnnxSession, onnx_file, providers_for

__all__ = [
    "MANIFEST",
    "QUANTIZATIONS",
    "Int8Variant",
    "OnnxExportError",
    "OnnxSession",
    "build_onnx_folder",
    "export_encoder",
    "int8_variant_for_this_cpu",
    "onnx_file",
    "providers_for",
    "quantize_int8",
]
