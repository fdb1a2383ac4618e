"""The SentenceTransformer component (fields and defaults of pinnacledb's)."""

from __future__ import annotations

import dataclasses as dc
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
from pinnacle.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["SentenceTransformer"]

#: Precisions ``encode`` accepts, and the dtype and width each stores.
ALLOWED_PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
#: ``encode`` options that change how the work is done, not the vectors.
_EXECUTION_ONLY = frozenset({"batch_size", "show_progress_bar", "chunk_size", "device", "pool"})
#: Precisions whose output depends on the rest of the batch: refused for listeners.
_BATCH_DEPENDENT_PRECISIONS = ("int8", "uint8")
_PRECISION_DTYPE = {"float32": "float32", "int8": "int8", "uint8": "uint8", "binary": "int8", "ubinary": "uint8"}

_native_cache: dict[tuple[str, str, bool], t.Any] = {}
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

    Example:
        >>> m = SentenceTransformer(identifier="minilm", model="all-MiniLM-L6-v2",
        ...                         predict_kwargs={"normalize_embeddings": True})
        >>> m.predict_kwargs["normalize_embeddings"]
        True
    """

    #: Inputs longer than this many characters are refused as a mistake (the model
    #: reads a few hundred tokens; encoding megabytes of text only wastes time).
    max_input_chars: t.ClassVar[int] = 100_000
    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {"object"}

    signature: Signature = "singleton"
    object: t.Any = dc.field(default=None, metadata={"encode": False})
    model: t.Optional[str] = None
    preprocess: t.Optional[t.Callable] = None
    postprocess: t.Optional[t.Callable] = None

    _weights: StoredFolder = dc.field(default_factory=StoredFolder, init=False, repr=False, compare=False)
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
        super().__post_init__(db, artifacts)

    def definition(self) -> dict[str, t.Any]:
        out = super().definition()
        # How the work is batched does not change the vectors: not part of the identity.
        out["predict_kwargs"] = {k: v for k, v in out["predict_kwargs"].items() if k not in _EXECUTION_ONLY}
        if self.object is not None and self.model is None:
            out["object"] = class_path(type(self.object))
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

    def _load(self) -> t.Any:
        st = require("sentence_transformers", extra="sentence-transformers")
        source, device = self._source(), self.resolved_device()
        key = (source, device)
        with _native_lock:
            found = _native_cache.get(key)
            if found is not None:
                return found
        logger.info("Loading sentence-transformers model %s on %s", source, device)
        native = st.SentenceTransformer(source, device=device)
        with _native_lock:
            if len(_native_cache) >= _NATIVE_CACHE_SIZE:
                _native_cache.pop(next(iter(_native_cache)))
            _native_cache[key] = native
        return native

    # -- artifacts ----------------------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        if self._weights.ref is None and self.model is not None:
            if not os.path.isdir(self.model):
                return {}  # a hub name: loaded by name wherever the model runs
            return {"model": Path(self.model)}
        return self._weights.dump(self.object.save, prefix="pinnacle-st-")

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._weights.adopt(artifacts)

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
            >>> model.predict("a sentence").shape  # doctest: +SKIP
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
        truncate = self.predict_kwargs.get("truncate_dim") or getattr(native, "truncate_dim", None)
        if truncate:
            dim = min(dim, int(truncate))
        precision = self.predict_kwargs.get("precision", "float32")
        if precision in ("binary", "ubinary"):
            dim = -(-dim // 8)
        return Vector(dim, _PRECISION_DTYPE[precision])

    @property
    def similarity_fn_name(self) -> t.Optional[str]:
        return getattr(self.native, "similarity_fn_name", None)
