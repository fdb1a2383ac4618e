"""The ColBERT component: one matrix of token vectors per row, searched with MaxSim."""

from __future__ import annotations

import dataclasses as dc
import json
import logging
import threading
import typing as t
from pathlib import Path

import numpy as np

from pinnacle.backends.maxsim import maxsim_scores
from pinnacle.base.artifacts import StoredFolder
from pinnacle.components.datatype import MultiVector
from pinnacle.components.model import Model, Signature
from pinnacle.components.text_input import check_text
from pinnacle.errors import ConfigError
from pinnacle.ext.colbert.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from pinnacle.ext.colbert.encoding import DEFAULT_SKIPLIST, Settings, encode_texts, skiplist_ids
from pinnacle.ext.transformers._hf import NativeCache, read_json

logger = logging.getLogger(__name__)

__all__ = ["ColBERT"]

_cache = NativeCache(size=2)


@dc.dataclass(kw_only=True, repr=False)
class ColBERT(Model):
    """A late-interaction (ColBERT) model: text to one L2-normalised vector per token.

    Parameter names and defaults follow PyLate's ``models.ColBERT``; settings left at
    ``None`` come from the checkpoint's ``config_sentence_transformers.json``, else
    PyLate's defaults. A checkpoint without a projection (a plain transformers or
    sentence-transformers model, e.g. all-MiniLM-L6-v2) gets a new
    ``hidden -> embedding_size`` linear layer initialised from ``seed``, and the prefix
    tokens are added to its vocabulary. Rows are encoded as documents, search queries
    as queries (``predict_query``), and outputs are stored as a
    :class:`~pinnacle.components.datatype.MultiVector`: search them with
    ``VectorIndex(measure="maxsim")``. At apply, the checkpoint is saved in PyLate's
    layout (safetensors) into the database's artifact store.

    Args:
        model_name_or_path: A checkpoint folder (PyLate, sentence-transformers or
            transformers) or a model name in the local Hugging Face cache.
        embedding_size: Size of the token vectors. ``None``: the checkpoint's projection,
            or 128 for a new one.
        bias: Whether a new projection has a bias.
        query_prefix: Token inserted after ``[CLS]`` in queries (``None``: ``'[Q] '``).
        document_prefix: Token inserted after ``[CLS]`` in documents (``None``: ``'[D] '``).
        add_special_tokens: Insert the prefix tokens at all.
        query_length: Tokens per query: shorter queries are padded with ``[MASK]`` tokens
            (query expansion), longer ones truncated (``None``: 32).
        document_length: Maximum tokens per document (``None``: 180).
        attend_to_expansion_tokens: Let the query tokens attend to the ``[MASK]`` padding
            (``None``: ``False``, as in the original ColBERT).
        skiplist_words: Tokens dropped from stored document vectors (they still give
            context while encoding). ``None``: every ASCII punctuation character.
        pool_factor: Keep about ``1 / pool_factor`` of each document's vectors by
            hierarchical clustering (1 keeps all).
        protected_tokens: Leading document vectors never pooled (``[CLS]``).
        batch_size: Texts per forward pass.
        seed: Seeds the new projection and new prefix-token embeddings.
        model_kwargs: Passed to ``AutoModel.from_pretrained``.
        tokenizer_kwargs: Passed to ``AutoTokenizer.from_pretrained``.
        config_kwargs: Passed to ``AutoConfig.from_pretrained``.
        trust_remote_code: Allow model code from the checkpoint (only for checkpoints you trust).

    Example:
        >>> m = ColBERT("colbert", model_name_or_path="all-MiniLM-L6-v2")
        >>> m.similarity_fn_name, m.signature
        ('MaxSim', 'singleton')
    """

    max_input_chars: t.ClassVar[int] = 100_000
    uuid_excludes: t.ClassVar[frozenset[str]] = Model.uuid_excludes | {"batch_size"}

    signature: Signature = "singleton"
    model_name_or_path: str
    embedding_size: t.Optional[int] = None
    bias: bool = False
    query_prefix: t.Optional[str] = None
    document_prefix: t.Optional[str] = None
    add_special_tokens: bool = True
    query_length: t.Optional[int] = None
    document_length: t.Optional[int] = None
    attend_to_expansion_tokens: t.Optional[bool] = None
    skiplist_words: t.Optional[list] = None
    pool_factor: int = 1
    protected_tokens: int = 1
    batch_size: int = 32
    seed: int = 0
    model_kwargs: dict = dc.field(default_factory=dict)
    tokenizer_kwargs: dict = dc.field(default_factory=dict)
    config_kwargs: dict = dc.field(default_factory=dict)
    trust_remote_code: bool = False

    _weights: StoredFolder = dc.field(default_factory=StoredFolder, init=False, repr=False, compare=False)
    _native: t.Any = dc.field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = dc.field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self, db=None, artifacts=None) -> None:
        owner = f"ColBERT {self.identifier!r}"
        if isinstance(self.model_name_or_path, Path):
            self.model_name_or_path = str(self.model_name_or_path)
        if not isinstance(self.model_name_or_path, str) or not self.model_name_or_path:
            raise ConfigError(f"{owner}: model_name_or_path must be a checkpoint folder or model name.")
        for name, low in (("embedding_size", 1), ("query_length", 2), ("document_length", 2)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"{owner}: {name} must be an integer of at least {low} or None, got {value!r}.")
        for name, low in (("pool_factor", 1), ("protected_tokens", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{owner}: {name} must be an integer of at least {low}, got {value!r}.")
        if isinstance(self.skiplist_words, tuple):
            self.skiplist_words = list(self.skiplist_words)
        if self.skiplist_words is not None and not all(isinstance(w, str) for w in self.skiplist_words):
            raise ConfigError(f"{owner}: skiplist_words must be a list of strings.")
        for name in ("model_kwargs", "tokenizer_kwargs", "config_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{owner}: {name} must be a dict.")
        super().__post_init__(db, artifacts)

    # -- loading ------------------------------------------------------------------------
    def _source(self) -> str:
        return str(self._weights.ref.path()) if self._weights.ref is not None else self.model_name_or_path

    def _settings(self, config: dict) -> Settings:
        def pick(name: str, default: t.Any) -> t.Any:
            value = getattr(self, name)
            if value is None:
                value = config.get(name)
            return default if value is None else value

        return Settings(
            query_prefix=pick("query_prefix", "[Q] "),
            document_prefix=pick("document_prefix", "[D] "),
            query_length=int(pick("query_length", 32)),
            document_length=int(pick("document_length", 180)),
            attend_to_expansion_tokens=bool(pick("attend_to_expansion_tokens", False))
            and bool(config.get("do_query_expansion", True)),
            skiplist_words=tuple(pick("skiplist_words", DEFAULT_SKIPLIST)),
            do_query_expansion=bool(config.get("do_query_expansion", True)),
            add_special_tokens=self.add_special_tokens,
        )

    @property
    def native(self) -> tuple[Checkpoint, Settings, list[int]]:
        """``(checkpoint, settings, skiplist token ids)``, loaded on first use (once per process and device)."""
        if self._native is None:
            with self._lock:
                if self._native is None:
                    self._native = self._load()
        return self._native

    def _load(self) -> tuple[Checkpoint, Settings, list[int]]:
        source, device = self._source(), self.resolved_device()
        settings = self._settings(read_json(source, "config_sentence_transformers.json") or {})
        prefixes = (settings.query_prefix, settings.document_prefix) if self.add_special_tokens else ()
        options = {
            "embedding_size": self.embedding_size,
            "bias": self.bias,
            "seed": self.seed,
            "prefixes": prefixes,
            "model_kwargs": self.model_kwargs,
            "tokenizer_kwargs": self.tokenizer_kwargs,
            "config_kwargs": self.config_kwargs,
            "trust_remote_code": self.trust_remote_code,
        }
        key = (source, device, json.dumps(options, sort_keys=True, default=str))

        def load() -> Checkpoint:
            logger.info("Loading ColBERT model %s on %s", source, device)
            checkpoint = load_checkpoint(source, **options)
            checkpoint.transformer.to(device).eval()
            checkpoint.projection.to(device).eval()
            return checkpoint

        checkpoint = _cache.get(key, load)
        return checkpoint, settings, skiplist_ids(checkpoint.tokenizer, settings.skiplist_words)

    # -- encoding -----------------------------------------------------------------------
    def encode(
        self,
        sentences: t.Union[str, t.Sequence[str]],
        *,
        is_query: bool = True,
        batch_size: t.Optional[int] = None,
        pool_factor: t.Optional[int] = None,
        protected_tokens: t.Optional[int] = None,
        normalize_embeddings: bool = True,
    ) -> t.Union[np.ndarray, list[np.ndarray]]:
        """Token vectors of one text or of many (as in PyLate).

        Tip: documents are encoded ``batch_size`` at a time; a larger batch is faster on
        a GPU, a smaller one uses less memory.

        Args:
            sentences: A text, or a list of texts.
            is_query: Encode as queries (``[Q]`` prefix, padded to ``query_length`` with
                ``[MASK]``) rather than documents (``[D]`` prefix, skiplist removed, pooled).
            batch_size: Texts per forward pass (default: the component's ``batch_size``).
            pool_factor: Document pooling factor (default: the component's).
            protected_tokens: Leading document vectors never pooled (default: the component's).
            normalize_embeddings: L2-normalise each token vector.

        Returns:
            A float32 ``(tokens, embedding_size)`` array for one text, a list of them for a list.
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        checkpoint, settings, skip = self.native
        out = encode_texts(
            checkpoint,
            settings,
            texts,
            is_query=is_query,
            batch_size=batch_size or self.batch_size,
            skip_ids=skip,
            normalize=normalize_embeddings,
            pool_factor=self.pool_factor if pool_factor is None else pool_factor,
            protected_tokens=self.protected_tokens if protected_tokens is None else protected_tokens,
        )
        return out[0] if single else out

    def predict(self, x: str) -> np.ndarray:
        """Token vectors of one row (the document side)."""
        return self.encode(x, is_query=False)

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[np.ndarray]:
        """Token vectors of many rows (documents), ``batch_size`` per forward pass."""
        return self.encode(list(inputs), is_query=False)

    def predict_query(self, x: t.Any) -> np.ndarray:
        """Token vectors of a search query: always ``query_length`` of them."""
        return self.encode(x, is_query=True)

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        return check_text(x, self.max_input_chars)

    def similarity(self, queries: t.Sequence[np.ndarray], documents: t.Sequence[np.ndarray]) -> np.ndarray:
        """MaxSim scores, ``(len(queries), len(documents))``.

        Example:
            >>> q = m.encode(["a question"], is_query=True)
            >>> m.similarity(q, m.encode(["doc one", "doc two"], is_query=False)).shape
            (1, 2)
        """
        return maxsim_scores(queries, documents)

    @property
    def similarity_fn_name(self) -> str:
        return "MaxSim"

    def infer_datatype(self) -> MultiVector:
        """``MultiVector(embedding_size, 'float32')``."""
        return MultiVector(self.native[0].embedding_size, "float32")

    # -- checkpoints and artifacts --------------------------------------------------------
    def save_pretrained(self, path: t.Union[str, Path]) -> None:
        """Write the model to ``path`` in PyLate's layout (loadable by PyLate and by this class)."""
        checkpoint, settings, _ = self.native
        save_checkpoint(checkpoint, path, settings.to_config())

    def dump_artifacts(self) -> dict[str, t.Any]:
        """The checkpoint folder (PyLate layout, safetensors)."""
        return self._weights.dump(self.save_pretrained, prefix="pinnacle-colbert-")

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        self._weights.adopt(artifacts)
