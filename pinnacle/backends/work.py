"""The data types of the embedding path that cross the backend boundary.

:class:`ListenerSpec` names a listener version's storage; a :class:`Claim` holds the
:class:`WorkItem` rows one worker took from a queue; a :class:`WorkResult` is what the
drain decided for them, committed in one transaction.
"""

from __future__ import annotations

import abc
import dataclasses as dc
import typing as t

__all__ = ["ListenerSpec", "WorkItem", "Failure", "WorkResult", "Claim", "OUTPUTS_PREFIX"]

Row = dict[str, t.Any]

#: The outputs table of listener ``L`` is ``_outputs__L`` (``_outputs__L__v1``... for later versions).
OUTPUTS_PREFIX = "_outputs__"


@dc.dataclass(frozen=True)
class ListenerSpec:
    """What the backend needs to know of a listener: names and the shape of its outputs, no model.

    ``flatten``: the model returns a list per row and each item is an output of its own
    (SQL: one row per item, ``_id = "<source>/<position>"``, indexed ``_source``).
    ``text``: outputs are ``str`` (a text column), not bytes.
    ``dim``/``dtype``: for single-vector outputs (:class:`~pinnacle.components.datatype.Vector`),
    their length (``None`` until known) and dtype; ``dtype`` is ``""`` for other outputs.
    A backend may store such vectors natively (PostgreSQL with pgvector).
    """

    identifier: str
    table: str
    key_columns: tuple[str, ...]
    model_uuid: str = ""
    version: int = 0
    flatten: bool = False
    text: bool = False
    dim: t.Optional[int] = None
    dtype: str = ""

    @classmethod
    def of(cls, listener: t.Any) -> "ListenerSpec":
        """The spec of a :class:`~pinnacle.components.listener.Listener` (at its version)."""
        from pinnacle.components.datatype import Text, Vector

        model = listener.model
        datatype = model.datatype
        if isinstance(datatype, int) and not isinstance(datatype, bool):
            datatype = Vector(datatype)
        single = isinstance(datatype, Vector) and not model.flatten
        return cls(
            listener.identifier, listener.select, listener.key_columns, model.uuid, listener.version or 0,
            flatten=bool(model.flatten), text=isinstance(model.datatype, Text),
            dim=datatype.dim if single else None, dtype=datatype.dtype if single else "",
        )

    @property
    def storage_name(self) -> str:
        """Name of this listener version's storage: ``docs-emb``, then ``docs-emb__v1``..."""
        return self.identifier if self.version == 0 else f"{self.identifier}__v{self.version}"

    @property
    def outputs_table(self) -> str:
        return f"{OUTPUTS_PREFIX}{self.storage_name}"

    @staticmethod
    def is_outputs_table(table: str) -> bool:
        """Whether ``table`` is some listener's outputs table (by its name)."""
        return table.startswith(OUTPUTS_PREFIX)

    @staticmethod
    def outputs_table_of(table: str, identifier: str) -> bool:
        """Whether ``table`` is the outputs table of some version of listener ``identifier``."""
        base = f"{OUTPUTS_PREFIX}{identifier}"
        return table == base or (table.startswith(base + "__v") and table[len(base) + 3 :].isdigit())

    @property
    def queue_table(self) -> str:
        return f"_queue__{self.storage_name}"

    @property
    def failed_table(self) -> str:
        return f"_failed__{self.storage_name}"


@dc.dataclass
class WorkItem:
    """One source row to (re)compute: its queue entries and its current values (or ``None`` if deleted)."""

    source: t.Any
    queue_ids: list[int]
    attempts: int
    row: t.Optional[Row]


@dc.dataclass
class Failure:
    """Why a row could not be computed."""

    error_type: str
    message: str
    attempts: int


@dc.dataclass
class WorkResult:
    """What a drain decided for a batch of :class:`WorkItem`, committed in one transaction."""

    #: ``(source, data)``; for a flattened listener ``data`` is the list of the row's items.
    outputs: list[tuple[t.Any, t.Any]] = dc.field(default_factory=list)
    gone: list[t.Any] = dc.field(default_factory=list)
    retry: list[tuple[t.Any, int, float]] = dc.field(default_factory=list)  # source, attempts, not_before
    failed: list[tuple[t.Any, Failure]] = dc.field(default_factory=list)


class Claim(abc.ABC):
    """Rows taken from a listener's queue by one worker.

    ``items`` are the claimed rows. :meth:`commit` stores a :class:`WorkResult` in one
    transaction and returns the sources it committed (those whose queue entries still
    existed) and the ``_updated_at`` stamp written; :meth:`release` gives the rows back.
    """

    items: list[WorkItem]

    @abc.abstractmethod
    def commit(self, result: WorkResult) -> tuple[set, float]: ...

    @abc.abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.release()
