"""The SentenceTransformer component (fields and defaults of pinnacledb's)."""

from __future__ import annotations

import dataclasses as dc
import importlib.util
import json
import logging
import os
import threading
import typing as t
from pathlib import Path

import numpy as np

from pinnacle._deps import require
from pinnacle.base.artifacts import StoredFolder
from pinnacle.base.component import class_path
from pinnacle.components.datatype import Vector
from pinnacle.components.model import Model, Signature
from pinnacle.components.text_input import check_text
from pinnacle.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = ["SentenceTransformer", "BACKENDS"]

Backend = t.Literal["torch", "onnx", "openvino"]
#: Inference backends (sentence-transformers' ``backend``).
BACKENDS: tuple[str, ...] = t.get_args(Backend)
#: ``model_kwargs`` that choose where or whether to export, not what the vectors are.
_MODEL_KWARGS_EXECUTION_ONLY = frozenset({"provider", "export"})
#: ``model_kwargs`` pinnacle reads itself for the ONNX backend (not passed to transformers).
_ONNX_MODEL_KWARGS = frozenset({"provider", "export", "file_name"})
_OPTION = {"omit_default": True}  # options added after seed 000: a default leaves the uuid as it was

#: Precisions ``encode`` accepts, and the dtype and width each stores.
ALLOWED_PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
#: ``encode`` options that change how the work is done, not the vectors.
_EXECUTION_ONLY = frozenset({"batch_size", "show_progress_bar", "chunk_size", "device", "pool"})
#: Precisions whose output depends on the rest of the batch: refused for listeners.
_BATCH_DEPENDENT_PRECISIONS = ("int8", "uint8")
_PRECISION_DTYPE = {"float32": "float32", "int8": "int8", "uint8": "uint8", "binary": "int8", "ubinary": "uint8"}

_native_cache: dict[tuple, t.Any] = {}
_native_lock = threading.Lock()
_NATIVE_CACHE_SIZE = 4


@dc.dataclass(kw_only=True, repr=False)
class SentenceTransformer(Model):
    """A model for sentence embeddings using ``sentence-transformers``.

    The native model loads lazily (once per process and device) on the first
    available of ``preferred_devices`` unless ``device`` is set. ``predict_kwargs``
    reach ``encode``: ``batch_size``, ``normalize_embeddings``, ``prompt_name`` /
    ``prompt``, ``precision``, ``truncate_dim``. Rows go through the document side
    (``encode_document``), search queries through the query side (``encode_query``),
    unless ``predict_kwargs`` names a prompt. A model given by local path (or as
    ``object``) is saved into the database's artifact store at apply, so
    ``db.load`` works where the original files are gone.

    Args:
        object: A loaded ``sentence_transformers.SentenceTransformer`` to use.
        model: The model name, e.g. ``'all-MiniLM-L6-v2'``, or a local folder.
        preprocess: Function applied to each input before ``encode``.
        postprocess: Function applied to each output vector.
        backend: ``'torch'`` (default), ``'onnx'`` (ONNX Runtime: the encoder is exported once
            at apply, stored with the model's artifacts and run by every worker; needs
            ``pinnacle[onnx]``) or ``'openvino'`` (sentence-transformers' own, needs
            ``optimum-intel``).
        quantize: ``'int8'``: with ``backend='onnx'``, dynamic int8 quantization of the export,
            tuned for the CPU of the process that applies it (faster, vectors slightly different).
        model_kwargs: Passed to the model's ``from_pretrained`` (e.g. ``torch_dtype``); for
            ``'onnx'`` also ``file_name`` (an ``.onnx`` file of the model folder to run instead of
            exporting), ``provider`` (an ONNX Runtime execution provider) and ``export`` (export
            even when the folder has a file).
        tokenizer_kwargs: Passed to the tokenizer's ``from_pretrained``.
        config_kwargs: Passed to the config's ``from_pretrained``.
        prompts: Named prompts, e.g. ``{"query": "query: ", "document": "passage: "}``.
        default_prompt_name: The prompt used when ``encode`` names none.
        truncate_dim: Keep this many leading dimensions of each vector.
        trust_remote_code: Allow model code from the model's repository to run.
        revision: The branch, tag or commit of a hub model.
        cache_folder: Where hub models are cached.
        local_files_only: Never download: use the local cache only.

    Options that change the vectors (``backend``, ``quantize``, ``model_kwargs``,
    ``tokenizer_kwargs``, ``config_kwargs``, ``prompts``, ``default_prompt_name``,
    ``truncate_dim``, ``revision``) are part of the uuid, so changing one is a new version;
    ``trust_remote_code``, ``cache_folder``, ``local_files_only`` and the ``provider`` and
    ``export`` model options are not.

    Example:
        >>> m = SentenceTransformer(identifier="minilm", model="all-MiniLM-L6-v2",
        ...                         predict_kwargs={"normalize_embeddings": True})
        >>> m.predict_kwargs["normalize_embeddings"]
        True
        >>> fast = SentenceTransformer(identifier="minilm-int8", model="all-MiniLM-L6-v2",
        ...                            backend="onnx", quantize="int8")
        >>> fast.uuid != m.uuid
        True
    """

    #: Inputs longer than this many characters are refused as a mistake (the model
    #: reads a few hundred tokens; encoding megabytes of text only wastes time).
    max_input_chars: t.ClassVar[int] = 100_000
    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {
        "object", "trust_remote_code", "cache_folder", "local_files_only"
    }

    signature: Signature = "singleton"
    object: t.Any = dc.field(default=None, metadata={"encode": False})
    model: t.Optional[str] = None
    preprocess: t.Optional[t.Callable] = None
    postprocess: t.Optional[t.Callable] = None
    backend: Backend = dc.field(default="torch", metadata=_OPTION)
    quantize: t.Optional[t.Literal["int8"]] = dc.field(default=None, metadata=_OPTION)
    model_kwargs: t.Optional[dict] = dc.field(default=None, metadata=_OPTION)
    tokenizer_kwargs: t.Optional[dict] = dc.field(default=None, metadata=_OPTION)
    config_kwargs: t.Optional[dict] = dc.field(default=None, metadata=_OPTION)
    prompts: t.Optional[dict] = dc.field(default=None, metadata=_OPTION)
    default_prompt_name: t.Optional[str] = dc.field(default=None, metadata=_OPTION)
    truncate_dim: t.Optional[int] = dc.field(default=None, metadata=_OPTION)
    trust_remote_code: bool = dc.field(default=False, metadata=_OPTION)
    revision: t.Optional[str] = dc.field(default=None, metadata=_OPTION)
    cache_folder: t.Optional[str] = dc.field(default=None, metadata=_OPTION)
    local_files_only: bool = dc.field(default=False, metadata=_OPTION)

    _weights: StoredFolder = dc.field(default_factory=StoredFolder, init=False, repr=False, compare=False)
    _onnx: StoredFolder = dc.field(default_factory=lambda: StoredFolder("onnx"), init=False, repr=False, compare=False)
    _lock: threading.Lock = dc.field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self, db=None, artifacts=None) -> None:
        if self.model is None and self.object is None:
            raise ConfigError(f"SentenceTransformer {self.identifier!r}: give model= (a name or folder) or object=.")
        if isinstance(self.model, Path):
            self.model = str(self.model)
        precision = self.predict_kwargs.get("precision", "float32")
        if precision not in ALLOWED_PRECISIONS:
            raise ConfigError(
                f"SentenceTransformer {self.identifier!r}: precision {precision!r} is not valid; "
                f"valid ones are {list(ALLOWED_PRECISIONS)}."
            )
        if precision in _BATCH_DEPENDENT_PRECISIONS:
            raise ConfigError(
                f"SentenceTransformer {self.identifier!r}: precision {precision!r} takes its quantization "
                "ranges from each encode call's own batch, so a row's stored vector would depend on which "
                "rows it was embedded with (and a single row cannot be encoded at all). Use 'binary' or "
                "'ubinary' (batch-independent), or 'float32'."
            )
        self._check_loading_options()
        super().__post_init__(db, artifacts)

    def _check_loading_options(self) -> None:
        owner = f"SentenceTransformer {self.identifier!r}"
        if self.backend not in BACKENDS:
            raise ConfigError(f"{owner}: backend {self.backend!r} is not valid; valid ones are {list(BACKENDS)}.")
        if self.quantize is not None and self.quantize != "int8":
            raise ConfigError(f"{owner}: quantize {self.quantize!r} is not valid; valid ones are [None, 'int8'].")
        if self.quantize is not None and self.backend != "onnx":
            raise ConfigError(f"{owner}: quantize={self.quantize!r} needs backend='onnx' (it quantizes the ONNX export).")
        if self.backend != "torch" and self.object is not None:
            raise ConfigError(
                f"{owner}: backend={self.backend!r} needs model= (a name or folder), not object=; save the object "
                "with object.save(folder) and pass that folder."
            )
        for name in ("model_kwargs", "tokenizer_kwargs", "config_kwargs", "prompts"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{owner}: {name} must be a dict or None, got {type(value).__name__}.")
        if self.prompts and not all(isinstance(v, str) for v in self.prompts.values()):
            raise ConfigError(f"{owner}: prompts must map names to strings, got {self.prompts!r}.")
        if self.default_prompt_name is not None and self.default_prompt_name not in (self.prompts or {}):
            raise ConfigError(
                f"{owner}: default_prompt_name {self.default_prompt_name!r} is not one of prompts {sorted(self.prompts or {})}."
            )
        dim = self.truncate_dim
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise ConfigError(f"{owner}: truncate_dim must be a positive integer or None, got {dim!r}.")

    def definition(self) -> dict[str, t.Any]:
        out = super().definition()
        # How the work is batched does not change the vectors: not part of the identity.
        out["predict_kwargs"] = {k: v for k, v in out["predict_kwargs"].items() if k not in _EXECUTION_ONLY}
        if self.object is not None and self.model is None:
            out["object"] = class_path(type(self.object))
        if self.model_kwargs is not None:
            kept = {k: v for k, v in out.pop("model_kwargs").items() if k not in _MODEL_KWARGS_EXECUTION_ONLY}
            if kept:
                out["model_kwargs"] = kept
        return out

    # -- loading ------------------------------------------------------------------------
    @property
    def native(self) -> t.Any:
        """The loaded ``sentence_transformers.SentenceTransformer`` (loaded on first use)."""
        if self.object is None:
            with self._lock:
                if self.object is None:
                    self.object = self._load()
        return self.object

    def _source(self) -> str:
        if self._weights.ref is not None:
            return str(self._weights.ref.path())
        assert self.model is not None
        return self.model

    def _load_options(self) -> dict[str, t.Any]:
        """Keyword arguments of ``sentence_transformers.SentenceTransformer`` from the fields."""
        options: dict[str, t.Any] = {
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "truncate_dim": self.truncate_dim,
            "trust_remote_code": self.trust_remote_code,
            "revision": self.revision,
            "cache_folder": self.cache_folder,
            "local_files_only": self.local_files_only,
            "model_kwargs": self.model_kwargs,
            "tokenizer_kwargs": self.tokenizer_kwargs,
            "config_kwargs": self.config_kwargs,
        }
        if self.backend == "onnx":  # pinnacle runs ONNX itself: sentence-transformers loads torch
            options["model_kwargs"] = {k: v for k, v in (self.model_kwargs or {}).items() if k not in _ONNX_MODEL_KWARGS}
        elif self.backend == "openvino":
            options["backend"] = "openvino"
        return {k: v for k, v in options.items() if v not in (None, False, {})}

    def _load(self) -> t.Any:
        st = require("sentence_transformers", extra="sentence-transformers")
        source, device, options = self._source(), self.resolved_device(), self._load_options()
        stored = self._onnx.ref.sha256 if self._onnx.ref is not None else None
        onnx_key = None if self.backend != "onnx" else (stored or f"unstored-{id(self)}")
        key = (source, device, self.backend, json.dumps(options, sort_keys=True, default=str), onnx_key)
        with _native_lock:
            found = _native_cache.get(key)
            if found is not None:
                return found
        if self.backend == "openvino" and importlib.util.find_spec("optimum") is None:
            raise MissingDependencyError(
                f"SentenceTransformer {self.identifier!r}: backend='openvino' needs optimum-intel, which is not "
                "installed. Install it with: pip install 'sentence-transformers[openvino]' (or use backend='onnx')."
            )
        logger.info("Loading sentence-transformers model %s on %s (%s)", source, device, self.backend)
        native = st.SentenceTransformer(source, device=device, **options)
        if self.backend == "onnx":
            self._run_through_onnx(native, source, device)
        with _native_lock:
            if len(_native_cache) >= _NATIVE_CACHE_SIZE:
                _native_cache.pop(next(iter(_native_cache)))
            _native_cache[key] = native
        return native

    def _run_through_onnx(self, native: t.Any, source: str, device: str) -> None:
        """Put an ONNX Runtime session in the place of the transformer's torch model."""
        require("onnxruntime", extra="onnx")
        from pinnacle.ext.onnx import build_onnx_folder
        from pinnacle.ext.onnx.module import onnx_module

        owner = f"SentenceTransformer {self.identifier!r}"
        transformer = native[0]
        attribute = "model" if isinstance(getattr(type(transformer), "auto_model", None), property) else "auto_model"
        network = getattr(transformer, attribute)
        kwargs = self.model_kwargs or {}

        def make(folder: str) -> None:
            build_onnx_folder(
                folder, source=source, torch_parts=lambda: (network, transformer.tokenizer), owner=owner,
                file_name=kwargs.get("file_name"), quantize=self.quantize, export=bool(kwargs.get("export")),
            )

        folder = self._onnx.folder(make, prefix="pinnacle-onnx-")
        module = onnx_module(folder, config=network.config, device=device, owner=owner, provider=kwargs.get("provider"))
        setattr(transformer, attribute, module)

    # -- artifacts ----------------------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        """The model folder (unless a hub name) and, for ``backend='onnx'``, the ONNX export."""
        out = self._dump_weights()
        if self.backend == "onnx":
            self.native  # noqa: B018 - loading the model makes (or finds) the export
            out.update(self._onnx.current())
        return out

    def _dump_weights(self) -> dict[str, t.Any]:
        if self._weights.ref is None and self.model is not None:
            if not os.path.isdir(self.model):
                return {}  # a hub name: loaded by name wherever the model runs
            return {"model": Path(self.model)}
        return self._weights.dump(self.object.save, prefix="pinnacle-st-")

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._weights.adopt(artifacts)
        self._onnx.adopt(artifacts)

    # -- prediction ---------------------------------------------------------------------
    def _encode_kwargs(self) -> dict[str, t.Any]:
        kwargs = {"batch_size": 32, "show_progress_bar": False, "convert_to_numpy": True}
        kwargs.update(self.predict_kwargs)
        return kwargs

    def _encode(self, texts: list[str], side: str) -> np.ndarray:
        native = self.native
        kwargs = self._encode_kwargs()
        named = "prompt" in kwargs or "prompt_name" in kwargs
        method = getattr(native, f"encode_{side}", None)
        if named or method is None:
            method = native.encode
        return method(texts, **kwargs)

    def _prepare(self, x: t.Any) -> t.Any:
        return self.preprocess(x) if self.preprocess is not None else x

    def _finish(self, vector: np.ndarray) -> t.Any:
        return self.postprocess(vector) if self.postprocess is not None else vector

    def predict(self, x: str) -> t.Any:
        """The embedding of one text.

        Example:
            >>> model.predict("a sentence").shape
            (384,)
        """
        return self.predict_batches([x])[0]

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[t.Any]:
        """Embeddings of many texts (the document side), one ``encode`` call."""
        texts = [self._prepare(x) for x in inputs]
        vectors = self._encode(texts, "document")
        return [self._finish(v) for v in vectors]

    def predict_query(self, x: t.Any) -> t.Any:
        """The embedding of a search query (the query side)."""
        return self._finish(self._encode([self._prepare(x)], "query")[0])

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        try:
            text = self._prepare(x)
        except Exception as exc:  # noqa: BLE001 - reported as the row's failure
            return f"preprocess failed: {type(exc).__name__}: {exc}"
        return check_text(text, self.max_input_chars)

    # -- metadata -----------------------------------------------------------------------
    def infer_datatype(self) -> Vector:
        """Dimension from the model (after ``truncate_dim``), dtype from ``precision``."""
        native = self.native
        getter = getattr(native, "get_embedding_dimension", None) or native.get_sentence_embedding_dimension
        dim = int(getter())
        truncate = self.predict_kwargs.get("truncate_dim") or self.truncate_dim or getattr(native, "truncate_dim", None)
        if truncate:
            dim = min(dim, int(truncate))
        precision = self.predict_kwargs.get("precision", "float32")
        if precision in ("binary", "ubinary"):
            dim = -(-dim // 8)
        return Vector(dim, _PRECISION_DTYPE[precision])

    @property
    def similarity_fn_name(self) -> t.Optional[str]:
        return getattr(self.native, "similarity_fn_name", None)
