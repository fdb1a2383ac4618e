"""The VectorIndex component: nearest-neighbour search over a listener's outputs."""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle.base.component import Component
from pinnacle.components.listener import Listener
from pinnacle.errors import ConfigError

__all__ = ["VectorIndex", "MEASURES"]

Measure = t.Literal["cosine", "dot", "l2", "maxsim"]
MEASURES: tuple[str, ...] = t.get_args(Measure)


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

    Example:
        >>> from pinnacle.components.model import Model
        >>> l = Listener("docs-emb", model=Model("m"), key="text", select="docs")
        >>> VectorIndex("docs-idx", indexing_listener=l).measure
        'cosine'
    """

    type_id: t.ClassVar[str] = "VectorIndex"

    indexing_listener: Listener
    compatible_listener: t.Optional[Listener] = None
    measure: Measure = "cosine"
    candidates: t.Optional[int] = dc.field(default=None, metadata={"omit_default": True})

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
        super().__post_init__(db)
