"""Pipeline: a ``transformers.pipeline`` (any task) as a pinnacle model."""

from __future__ import annotations

import dataclasses as dc
import logging
import threading
import typing as t
from pathlib import Path

import numpy as np

from pinnacle.base.artifacts import StoredFolder
from pinnacle.components.datatype import MultiVector, Vector
from pinnacle.components.model import Model, Signature
from pinnacle.errors import ConfigError
from pinnacle.ext.transformers._hf import NativeCache, save_pretrained, transformers_module

logger = logging.getLogger(__name__)

__all__ = ["Pipeline", "mean_pool"]

_cache = NativeCache(size=4)


def mean_pool(tokens: np.ndarray) -> np.ndarray:
    """Average of token vectors: a ``postprocess`` turning feature-extraction output into one vector.

    Example:
        >>> mean_pool(np.array([[1.0, 3.0], [3.0, 5.0]])).tolist()
        [2.0, 4.0]
    """
    return np.asarray(tokens, dtype=np.float32).mean(axis=0)


@dc.dataclass(kw_only=True, repr=False)
class Pipeline(Model):
    """Run a ``transformers.pipeline`` over rows: one pipeline output per input.

    ``feature-extraction`` outputs are returned as ``(tokens, hidden_size)`` float32
    arrays and stored as :class:`~pinnacle.components.datatype.MultiVector` (search
    them with ``measure='maxsim'``), or as one vector with ``postprocess=mean_pool``.
    Other tasks need a ``postprocess`` returning a vector (and a ``datatype``) to be
    stored by a listener; ``predict`` works for any task. At apply, the pipeline's
    model and tokenizer are saved with ``save_pretrained`` (safetensors) into the
    artifact store.

    Args:
        task: The pipeline task, e.g. ``'feature-extraction'``, ``'text-classification'``.
        model: A local model folder or a model name (read from the local Hugging Face cache).
        pipeline_kwargs: Extra keyword arguments for ``transformers.pipeline(...)``.
        preprocess: Function applied to each input before the pipeline.
        postprocess: Function applied to each pipeline output.
        batch_size: Inputs per pipeline call.

    Example:
        >>> p = Pipeline("feat", task="feature-extraction", model="all-MiniLM-L6-v2", postprocess=mean_pool)
        >>> p.task, p.batch_size
        ('feature-extraction', 8)
    """

    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {"batch_size"}

    signature: Signature = "singleton"
    task: str
    model: str
    pipeline_kwargs: dict = dc.field(default_factory=dict)
    preprocess: t.Optional[t.Callable] = None
    postprocess: t.Optional[t.Callable] = None
    batch_size: int = 8

    _weights: StoredFolder = dc.field(default_factory=StoredFolder, init=False, repr=False, compare=False)
    _lock: threading.Lock = dc.field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self, db=None, artifacts=None) -> None:
        owner = f"Pipeline {self.identifier!r}"
        if isinstance(self.model, Path):
            self.model = str(self.model)
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(f"{owner}: task must be a pipeline task name such as 'feature-extraction'.")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"{owner}: model must be a model folder or name, got {self.model!r}.")
        if not isinstance(self.pipeline_kwargs, dict):
            raise ConfigError(f"{owner}: pipeline_kwargs must be a dict.")
        for name in ("device", "task", "model"):
            if name in self.pipeline_kwargs:
                raise ConfigError(f"{owner}: set {name!r} on the component, not in pipeline_kwargs.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ConfigError(f"{owner}: batch_size must be a positive integer, got {self.batch_size!r}.")
        super().__post_init__(db, artifacts)

    # -- loading ------------------------------------------------------------------------
    @property
    def native(self) -> t.Any:
        """The loaded ``transformers`` pipeline (once per process, device and options)."""
        source = str(self._weights.ref.path()) if self._weights.ref is not None else self.model
        device = self.resolved_device()
        key = (self.task, source, device, repr(sorted(self.pipeline_kwargs.items())))
        return _cache.get(key, lambda: self._load(source, device))

    def _load(self, source: str, device: str) -> t.Any:
        transformers = transformers_module()
        logger.info("Loading transformers pipeline %r from %s on %s", self.task, source, device)
        return transformers.pipeline(self.task, model=source, device=device, **self.pipeline_kwargs)

    # -- artifacts ----------------------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        """The pipeline's model and tokenizer (safetensors), saved with ``save_pretrained``."""
        return self._weights.dump(lambda folder: save_pretrained(self.native, folder), prefix="pinnacle-pipeline-")

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._weights.adopt(artifacts)

    # -- prediction ---------------------------------------------------------------------
    def _finish(self, output: t.Any, x: t.Any) -> t.Any:
        if self.task == "feature-extraction":
            output = np.asarray(output, dtype=np.float32)
            if output.ndim == 3 and output.shape[0] == 1:  # (1, tokens, hidden) for one input
                output = output[0]
            output = self._unpad(output, x)
        return self.postprocess(output) if self.postprocess is not None else output

    def _unpad(self, tokens: np.ndarray, x: t.Any) -> np.ndarray:
        """Drop the padding a batched feature-extraction call leaves on shorter inputs."""
        tokenizer = getattr(self.native, "tokenizer", None)
        if self.batch_size == 1 or tokenizer is None or not isinstance(x, str) or tokens.ndim != 2:
            return tokens
        n = len(tokenizer(x, **self.predict_kwargs.get("tokenize_kwargs", {}))["input_ids"])
        if n >= tokens.shape[0]:
            return tokens
        return tokens[-n:] if getattr(tokenizer, "padding_side", "right") == "left" else tokens[:n]

    def predict(self, x: t.Any) -> t.Any:
        """The pipeline's output for one input (after ``preprocess`` / ``postprocess``)."""
        return self.predict_batches([x])[0]

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[t.Any]:
        """Outputs for many inputs, ``batch_size`` at a time."""
        if not inputs:
            return []
        xs = [self.preprocess(x) if self.preprocess is not None else x for x in inputs]
        outputs = self.native(xs, batch_size=self.batch_size, **self.predict_kwargs)
        if len(outputs) != len(xs):
            raise RuntimeError(f"Pipeline {self.identifier!r}: {len(xs)} inputs gave {len(outputs)} outputs.")
        return [self._finish(o, x) for o, x in zip(outputs, xs)]

    def infer_datatype(self) -> Vector | MultiVector:
        """Feature extraction: token vectors (``MultiVector``), or one vector after ``postprocess``.

        Raises:
            ConfigError: another task without ``postprocess``: its outputs are not vectors.
        """
        if self.postprocess is not None:
            return Vector(None, "float32")
        if self.task == "feature-extraction":
            return MultiVector(int(self.native.model.config.hidden_size), "float32")
        raise ConfigError(
            f"Pipeline {self.identifier!r}: outputs of task {self.task!r} are not vectors, so a listener "
            "cannot store them. Pass a postprocess that returns a vector and datatype=Vector(dim)."
        )
