"""TextEncoder: sentence embeddings from any transformers encoder (AutoModel + pooling)."""

from __future__ import annotations

import dataclasses as dc
import json
import logging
import threading
import typing as t
from pathlib import Path

import numpy as np

from pinnacle._deps import require
from pinnacle.base.artifacts import StoredFolder
from pinnacle.components.datatype import Vector
from pinnacle.components.model import Model, Signature
from pinnacle.components.text_input import check_text
from pinnacle.errors import ConfigError
from pinnacle.ext.transformers._hf import (
    NativeCache,
    chunks,
    read_json,
    save_pretrained,
    torch_module,
    transformers_module,
)

logger = logging.getLogger(__name__)

__all__ = ["TextEncoder", "POOLINGS", "BACKENDS"]

Pooling = t.Literal["mean", "cls"]
POOLINGS: tuple[str, ...] = t.get_args(Pooling)
Backend = t.Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = t.get_args(Backend)
_OPTION = {"omit_default": True}  # options added later: a default leaves the uuid as it was

_cache = NativeCache(size=4)


@dc.dataclass(frozen=True)
class _Settings:
    pooling: str
    normalize: bool
    max_length: int


@dc.dataclass(kw_only=True, repr=False)
class TextEncoder(Model):
    """One vector per text from a transformers encoder: tokenize, run ``AutoModel``, pool.

    With mean pooling and the model's own normalisation it gives the vectors of
    sentence-transformers for the same checkpoint. Settings left at ``None`` are read
    from the checkpoint's sentence-transformers files when it has them
    (``1_Pooling/config.json``, ``modules.json``, ``sentence_bert_config.json``). At
    apply, the tokenizer and weights are saved with ``save_pretrained`` (safetensors)
    into the database's artifact store, so ``db.load`` works where the folder is gone.

    Args:
        model: A local model folder or a model name (read from the local Hugging Face cache).
        pooling: ``'mean'`` (average of the token vectors, padding excluded) or ``'cls'``
            (the first token's vector). ``None``: the checkpoint's pooling, else ``'mean'``.
        normalize: Scale vectors to length 1. ``None``: as the checkpoint says (a
            ``Normalize`` module in ``modules.json``), else ``False``.
        max_length: Tokens kept per text. ``None``: ``max_seq_length`` of the checkpoint,
            else the tokenizer's limit (at most 512).
        batch_size: Texts per forward pass.
        query_prefix: Prepended to search queries (e.g. ``'query: '`` for E5 models).
        document_prefix: Prepended to rows (e.g. ``'passage: '``).
        backend: ``'torch'`` (default) or ``'onnx'``: the encoder is exported to ONNX once, at
            apply, stored with the weights, and run through ONNX Runtime by every process that
            loads it (no torch weights loaded there). Needs ``pinnacle[onnx]``.
        quantize: ``'int8'``: with ``backend='onnx'``, dynamic int8 quantization of the export
            for the CPU of the applying process.

    Example:
        >>> enc = TextEncoder("minilm", model="all-MiniLM-L6-v2", pooling="mean", normalize=True)
        >>> enc.signature, enc.batch_size
        ('singleton', 32)
    """

    max_input_chars: t.ClassVar[int] = 100_000
    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {"batch_size"}

    signature: Signature = "singleton"
    model: str
    pooling: t.Optional[Pooling] = None
    normalize: t.Optional[bool] = None
    max_length: t.Optional[int] = None
    batch_size: int = 32
    query_prefix: str = ""
    document_prefix: str = ""
    backend: Backend = dc.field(default="torch", metadata=_OPTION)
    quantize: t.Optional[t.Literal["int8"]] = dc.field(default=None, metadata=_OPTION)

    _weights: StoredFolder = dc.field(default_factory=StoredFolder, init=False, repr=False, compare=False)
    _onnx: StoredFolder = dc.field(default_factory=lambda: StoredFolder("onnx"), init=False, repr=False, compare=False)
    _lock: threading.Lock = dc.field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _native: t.Any = dc.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self, db=None, artifacts=None) -> None:
        owner = f"TextEncoder {self.identifier!r}"
        if isinstance(self.model, Path):
            self.model = str(self.model)
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"{owner}: model must be a model folder or name, got {self.model!r}.")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError(f"{owner}: pooling {self.pooling!r} is not valid; valid ones are {list(POOLINGS)}.")
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length <= 1):
            raise ConfigError(f"{owner}: max_length must be an integer above 1, got {self.max_length!r}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ConfigError(f"{owner}: batch_size must be a positive integer, got {self.batch_size!r}.")
        if self.backend not in BACKENDS:
            raise ConfigError(f"{owner}: backend {self.backend!r} is not valid; valid ones are {list(BACKENDS)}.")
        if self.quantize not in (None, "int8"):
            raise ConfigError(f"{owner}: quantize {self.quantize!r} is not valid; valid ones are [None, 'int8'].")
        if self.quantize is not None and self.backend != "onnx":
            raise ConfigError(f"{owner}: quantize={self.quantize!r} needs backend='onnx' (it quantizes the ONNX export).")
        super().__post_init__(db, artifacts)

    # -- loading ------------------------------------------------------------------------
    def _source(self) -> str:
        return str(self._weights.ref.path()) if self._weights.ref is not None else self.model

    @property
    def native(self) -> tuple[t.Any, t.Any, _Settings]:
        """``(tokenizer, model, settings)``, loaded on first use (once per process and device)."""
        if self._native is None:
            with self._lock:
                if self._native is None:
                    source, device = self._source(), self.resolved_device()
                    if self.backend == "onnx":
                        tokenizer, network = self._onnx_parts(source, device)
                    else:
                        tokenizer, network = self._torch_parts()
                    self._native = (tokenizer, network, self._settings(source, tokenizer, network))
        return self._native

    def _torch_parts(self) -> tuple[t.Any, t.Any]:
        source, device = self._source(), self.resolved_device()
        return _cache.get((source, device), lambda: _load(source, device))

    def _onnx_parts(self, source: str, device: str) -> tuple[t.Any, t.Any]:
        """The tokenizer and an :class:`~pinnacle.ext.onnx.module.OnnxModule` (no torch weights loaded
        unless the export has to be made here)."""
        from pinnacle.ext import onnx

        owner = f"TextEncoder {self.identifier!r}"
        require("onnxruntime", extra="onnx")

        def torch_parts() -> tuple[t.Any, t.Any]:
            tokenizer, network = self._torch_parts()
            return network, tokenizer

        def make(folder: str) -> None:
            onnx.build_onnx_folder(folder, source=source, torch_parts=torch_parts, owner=owner, quantize=self.quantize)

        def load() -> tuple[t.Any, t.Any]:
            from pinnacle.ext.onnx.module import onnx_module

            transformers = transformers_module()
            folder = self._onnx.folder(make, prefix="pinnacle-onnx-")
            module = onnx_module(folder, config=transformers.AutoConfig.from_pretrained(source), device=device, owner=owner)
            return transformers.AutoTokenizer.from_pretrained(source), module

        stored = self._onnx.ref.sha256 if self._onnx.ref is not None else f"unstored-{id(self)}"
        return _cache.get((source, device, "onnx", self.quantize, stored), load)

    def _settings(self, source: str, tokenizer: t.Any, network: t.Any) -> _Settings:
        modules = read_json(source, "modules.json") or []
        pooling = self.pooling
        if pooling is None:
            pooling = "mean"
            for module in modules:
                if module.get("type", "").endswith("Pooling"):
                    config = read_json(source, f"{module['path']}/config.json") or {}
                    if config.get("pooling_mode_cls_token") or config.get("pooling_mode") == "cls":
                        pooling = "cls"
        normalize = self.normalize
        if normalize is None:
            normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        max_length = self.max_length
        if max_length is None:
            max_length = (read_json(source, "sentence_bert_config.json") or {}).get("max_seq_length")
        if max_length is None:
            limits = [tokenizer.model_max_length, getattr(network.config, "max_position_embeddings", None), 512]
            max_length = min(int(x) for x in limits if isinstance(x, int) and x > 0)
        return _Settings(pooling, bool(normalize), int(max_length))

    # -- artifacts ----------------------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        """The tokenizer and weights (safetensors), saved with ``save_pretrained``."""
        out = self._weights.dump(self._save, prefix="pinnacle-hf-")
        if self.backend == "onnx":
            self.native  # noqa: B018 - loading the model makes (or finds) the export
            out.update(self._onnx.current())
        return out

    def _save(self, folder: str) -> None:
        settings = self.native[2]
        tokenizer, network = self._torch_parts()
        save_pretrained(tokenizer, folder)
        save_pretrained(network, folder)
        _write_st_settings(Path(folder), settings, network.config.hidden_size)

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._weights.adopt(artifacts)
        self._onnx.adopt(artifacts)

    # -- prediction ---------------------------------------------------------------------
    def encode(self, texts: t.Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), dim)`` float32 array.

        Args:
            texts: The texts (each stripped of surrounding whitespace, as sentence-transformers does).
            is_query: Use ``query_prefix`` instead of ``document_prefix``.
        """
        torch = torch_module()
        tokenizer, network, settings = self.native
        prefix = self.query_prefix if is_query else self.document_prefix
        device = network.device
        out = []
        for batch in chunks([prefix + str(x).strip() for x in texts], self.batch_size):
            features = tokenizer(
                list(batch), padding=True, truncation=True, max_length=settings.max_length, return_tensors="pt"
            )
            features = {k: v.to(device) for k, v in features.items()}
            with torch.inference_mode():
                hidden = network(**features).last_hidden_state
            if settings.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if settings.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.infer_datatype().dim), dtype=np.float32)
        return np.concatenate(out)

    def predict(self, x: str) -> np.ndarray:
        """The embedding of one text (the document side)."""
        return self.encode([x])[0]

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        """Embeddings of many texts (the document side), in batches of ``batch_size``."""
        return list(self.encode(list(inputs)))

    def predict_query(self, x: t.Any) -> np.ndarray:
        """The embedding of a search query (with ``query_prefix``)."""
        return self.encode([x], is_query=True)[0]

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        return check_text(x, self.max_input_chars)

    def infer_datatype(self) -> Vector:
        """``Vector(hidden_size, 'float32')`` from the model's config."""
        return Vector(int(self.native[1].config.hidden_size), "float32")

    @property
    def similarity_fn_name(self) -> str:
        return "cosine"


def _load(source: str, device: str) -> tuple[t.Any, t.Any]:
    transformers = transformers_module()
    logger.info("Loading transformers encoder %s on %s", source, device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    network = transformers.AutoModel.from_pretrained(source).to(device).eval()
    return tokenizer, network


def _write_st_settings(folder: Path, settings: _Settings, dim: int) -> None:
    """Record the resolved settings as sentence-transformers files, so the folder reloads the same."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    files = {
        "modules.json": modules,
        "1_Pooling/config.json": pooling,
        "sentence_bert_config.json": {"max_seq_length": settings.max_length, "do_lower_case": False},
    }
    for name, content in files.items():
        with open(folder / name, "w", encoding="utf8") as fh:
            json.dump(content, fh, indent=2)
