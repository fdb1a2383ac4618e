"""The VectorIndex component: nearest-neighbour search over a listener's outputs."""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle.base.component import Component
from pinnacle.components.listener import Listener
from pinnacle.errors import ConfigError

__all__ = ["VectorIndex", "MEASURES", "INDEXES", "INDEX_OPTIONS"]

Measure = t.Literal["cosine", "dot", "l2", "maxsim"]
MEASURES: tuple[str, ...] = t.get_args(Measure)
Index = t.Literal["hnsw", "ivfflat"]
INDEXES: tuple[str, ...] = t.get_args(Index)
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

    Example:
        >>> from pinnacle.components.model import Model
        >>> l = Listener("docs-emb", model=Model("m"), key="text", select="docs")
        >>> VectorIndex("docs-idx", indexing_listener=l).measure
        'cosine'
        >>> VectorIndex("docs-idx", indexing_listener=l, index="hnsw", index_options={"ef_search": 100}).options()
        {'m': 16, 'ef_construction': 64, 'ef_search': 100}
    """

    type_id: t.ClassVar[str] = "VectorIndex"

    indexing_listener: Listener
    compatible_listener: t.Optional[Listener] = None
    measure: Measure = "cosine"
    candidates: t.Optional[int] = dc.field(default=None, metadata={"omit_default": True})
    index: t.Optional[Index] = dc.field(default=None, metadata={"omit_default": True})
    index_options: t.Optional[dict] = dc.field(default=None, metadata={"omit_default": True})

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
        super().__post_init__(db)

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
