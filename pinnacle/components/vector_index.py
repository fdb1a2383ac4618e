"""The VectorIndex component: nearest-neighbour search over a listener's outputs."""

from __future__ import annotations

import dataclasses as dc
import re
import typing as t

from pinnacle.base.component import Component
from pinnacle.components.listener import Listener
from pinnacle.errors import ConfigError

__all__ = ["VectorIndex", "MEASURES", "INDEXES", "INDEX_OPTIONS"]

Measure = t.Literal["cosine", "dot", "l2", "maxsim"]
MEASURES: tuple[str, ...] = t.get_args(Measure)
Index = t.Literal["hnsw", "ivfflat"]
INDEXES: tuple[str, ...] = t.get_args(Index)
#: A full-text language reaches SQL (PostgreSQL's ``'english'::regconfig``): a plain name only.
_LANGUAGE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: The options of each approximate index, with their defaults (all positive integers).
#: ``lists=None``: rows / 1000 (at least 10), fixed when the index is built.
INDEX_OPTIONS: dict[str, dict[str, t.Optional[int]]] = {
    "hnsw": {"m": 16, "ef_construction": 64, "ef_search": 40},
    "ivfflat": {"lists": None, "probes": 10},
}


@dc.dataclass(kw_only=True, repr=False)
class VectorIndex(Component):
    """Search the outputs of ``indexing_listener`` by similarity to a query.

    Args:
        indexing_listener: The listener whose outputs are searched.
        compatible_listener: Another listener whose model embeds queries into the same space.
        measure: ``'cosine'`` (default), ``'dot'``, ``'l2'``, or ``'maxsim'`` for multi-vector
            outputs (ColBERT late interaction: per query vector, the best dot product with
            any of the row's vectors, summed).
        candidates: ``'maxsim'`` only: first keep the ``candidates`` rows whose mean vector
            is closest to the query's, then score those exactly. ``None`` (default) scores
            every row exactly.
        index: ``None`` (default): exact search. ``'hnsw'``: an approximate HNSW graph, in
            PostgreSQL (pgvector) when the outputs are pgvector columns, else in memory
            (``pip install 'pinnacle[ann]'``). ``'ivfflat'``: pgvector's IVFFlat (PostgreSQL only).
            See docs/search.md.
        index_options: Options of ``index``: ``hnsw``: ``m``, ``ef_construction``,
            ``ef_search``; ``ivfflat``: ``lists``, ``probes`` (see :data:`INDEX_OPTIONS`).
        full_text: Also index the listener's key column as text, in the database's own
            full-text engine (SQLite FTS5, PostgreSQL ``tsvector`` + GIN, MySQL/MariaDB
            ``FULLTEXT``, a MongoDB text index), created by ``apply()`` and kept current by the
            database: ``like(..., mode="text")`` and ``mode="hybrid"`` use it (docs/search.md).
        full_text_language: The language of the text (stemming, stop words): a PostgreSQL
            text search configuration (``'english'`` when ``None``; ``'simple'``: none) or a
            MongoDB ``default_language``. SQLite and MySQL/MariaDB tokenize without one.

    Example:
        >>> from pinnacle.components.model import Model
        >>> l = Listener("docs-emb", model=Model("m"), key="text", select="docs")
        >>> VectorIndex("docs-idx", indexing_listener=l).measure
        'cosine'
        >>> VectorIndex("docs-idx", indexing_listener=l, index="hnsw", index_options={"ef_search": 100}).options()
        {'m': 16, 'ef_construction': 64, 'ef_search': 100}
        >>> VectorIndex("docs-idx", indexing_listener=l, full_text=True).full_text
        True
    """

    type_id: t.ClassVar[str] = "VectorIndex"

    indexing_listener: Listener
    compatible_listener: t.Optional[Listener] = None
    measure: Measure = "cosine"
    candidates: t.Optional[int] = dc.field(default=None, metadata={"omit_default": True})
    index: t.Optional[Index] = dc.field(default=None, metadata={"omit_default": True})
    index_options: t.Optional[dict] = dc.field(default=None, metadata={"omit_default": True})
    full_text: bool = dc.field(default=False, metadata={"omit_default": True})
    full_text_language: t.Optional[str] = dc.field(default=None, metadata={"omit_default": True})

    def __post_init__(self, db=None) -> None:
        if not isinstance(self.indexing_listener, Listener):
            raise ConfigError(f"VectorIndex {self.identifier!r}: indexing_listener must be a Listener.")
        if self.measure not in MEASURES:
            raise ConfigError(
                f"VectorIndex {self.identifier!r}: measure {self.measure!r} is not valid; valid ones are {list(MEASURES)}."
            )
        if self.candidates is not None:
            if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates <= 0:
                raise ConfigError(
                    f"VectorIndex {self.identifier!r}: candidates must be a positive integer or None, "
                    f"got {self.candidates!r}."
                )
            if self.measure != "maxsim":
                raise ConfigError(
                    f"VectorIndex {self.identifier!r}: candidates applies to measure='maxsim' only "
                    f"(measure is {self.measure!r}); remove it or use measure='maxsim'."
                )
        self._check_index()
        self._check_full_text()
        super().__post_init__(db)

    def _check_full_text(self) -> None:
        name = f"VectorIndex {self.identifier!r}"
        if not isinstance(self.full_text, bool):
            raise ConfigError(f"{name}: full_text must be True or False, got {self.full_text!r}.")
        language = self.full_text_language
        if language is not None:
            if not self.full_text:
                raise ConfigError(f"{name}: full_text_language applies with full_text=True only.")
            if not isinstance(language, str) or not _LANGUAGE.match(language):
                raise ConfigError(
                    f"{name}: full_text_language {language!r} is not valid: a name of lowercase letters, "
                    "digits and '_' (e.g. 'english', 'simple')."
                )
        if self.full_text and not isinstance(self.indexing_listener.key, str):
            raise ConfigError(
                f"{name}: full_text indexes one text column, but Listener {self.indexing_listener.identifier!r} "
                f"reads {self.indexing_listener.key!r}; use a listener whose key is one column."
            )

    def _check_index(self) -> None:
        name = f"VectorIndex {self.identifier!r}"
        if self.index is None:
            if self.index_options:
                raise ConfigError(f"{name}: index_options need an index; set index to one of {list(INDEXES)}.")
            return
        if self.index not in INDEXES:
            raise ConfigError(f"{name}: index {self.index!r} is not valid; valid ones are {list(INDEXES)} or None (exact).")
        if self.measure == "maxsim":
            raise ConfigError(f"{name}: index={self.index!r} does not apply to measure='maxsim'; use candidates instead.")
        options = self.index_options or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{name}: index_options must be a dict, got {type(options).__name__}.")
        valid = INDEX_OPTIONS[self.index]
        for key, value in options.items():
            if key not in valid:
                raise ConfigError(f"{name}: {self.index} has no option {key!r}; valid ones are {list(valid)}.")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name}: index option {key!r} must be a positive integer, got {value!r}.")

    def options(self) -> dict[str, t.Optional[int]]:
        """``index``'s options: the defaults of :data:`INDEX_OPTIONS` updated by ``index_options``."""
        if self.index is None:
            return {}
        return {**INDEX_OPTIONS[self.index], **(self.index_options or {})}
