"""``OnnxModule``: an ONNX Runtime session in the place of a transformers ``AutoModel``.

Imports torch: loaded only by components that run the ONNX backend.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutput

from pinnacle.ext.onnx.runtime import OnnxSession, onnx_file, providers_for

__all__ = ["OnnxModule", "onnx_module"]


class OnnxModule(torch.nn.Module):
    """Called like the ``AutoModel`` it replaces (token tensors in, ``last_hidden_state`` out),
    so sentence-transformers' pipeline (prompts, pooling, normalisation, precision) and
    pinnacle's own pooling run on top of it unchanged. It holds no weights.

    Args:
        session: The session over the exported file.
        config: The transformers config of the exported model (hidden size, etc.).
    """

    def __init__(self, session: OnnxSession, config: t.Any):
        super().__init__()
        self.session = session
        self.config = config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # outputs come back as CPU tensors, whatever the provider

    def forward(self, input_ids: torch.Tensor, attention_mask: t.Optional[torch.Tensor] = None,
                token_type_ids: t.Optional[torch.Tensor] = None, **_: t.Any) -> BaseModelOutput:
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        arrays = {k: v.detach().cpu().numpy() for k, v in features.items() if v is not None}
        return BaseModelOutput(last_hidden_state=torch.from_numpy(self.session.last_hidden_state(arrays)))


def onnx_module(folder: str | Path, *, config: t.Any, device: str, owner: str, provider: t.Optional[str] = None) -> OnnxModule:
    """An :class:`OnnxModule` over an export folder: its file checked against the sha256, a session opened."""
    path, _ = onnx_file(folder, owner=owner)
    return OnnxModule(OnnxSession(path, providers=providers_for(device, provider), owner=owner), config)
