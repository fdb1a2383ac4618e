"""What a data backend provides to the core: tables, metadata, artifacts and the change queue.

A plugin (``pinnacle.plugins.<name>``) implements :class:`DataBackend` and exposes
``connect(uri, **options) -> DataBackend``. The core never imports a driver.
"""

from __future__ import annotations

import abc
import dataclasses as dc
import typing as t

__all__ = ["DataBackend", "Claim", "ListenerSpec", "WorkItem", "WorkResult", "Failure", "DatabaseSearch"]

Row = dict[str, t.Any]
Where = t.Optional[t.Mapping[str, t.Any]]


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
        return f"_outputs__{self.storage_name}"

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


class DatabaseSearch(abc.ABC):
    """Nearest-neighbour search run by the database itself (e.g. pgvector): no in-memory copy.

    Scores are higher-is-better, as for the in-memory searchers: cosine similarity, dot
    product, or the negated L2 distance.
    """

    @abc.abstractmethod
    def search(
        self, vector: t.Any, n: int, *, within: t.Optional[t.Collection[t.Any]] = None, filter: Where = None,
    ) -> list[tuple[t.Any, float]]:
        """The ``n`` best ``(source, score)``, among the outputs whose source is in ``within``
        and whose source row matches ``filter`` (pre-filtering: ``n`` whenever ``n`` match)."""


class DataBackend(abc.ABC):
    """Abstract data backend. Every method is one short transaction unless it says otherwise."""

    #: Printable URI with any password masked.
    safe_uri: str = ""

    # -- tables ---------------------------------------------------------------------
    @abc.abstractmethod
    def insert(self, table: str, rows: t.Sequence[Row]) -> list[t.Any]:
        """Insert rows (creating the table on first use) and return their ids."""

    @abc.abstractmethod
    def select(
        self, table: str, where: Where = None, *, ids: t.Optional[t.Sequence[t.Any]] = None,
        columns: t.Optional[t.Sequence[str]] = None, limit: t.Optional[int] = None,
    ) -> list[Row]:
        """Rows matching ``where`` (column equality, list = any of) and/or ``ids``."""

    @abc.abstractmethod
    def update(self, table: str, where: Where, values: t.Mapping[str, t.Any]) -> int: ...

    @abc.abstractmethod
    def delete(self, table: str, where: Where) -> int: ...

    @abc.abstractmethod
    def count(self, table: str, where: Where = None) -> int: ...

    @abc.abstractmethod
    def primary_key(self, table: str) -> str: ...

    def ids(self, table: str, where: Where = None) -> list[t.Any]:
        """The ids (primary key values) of the rows of ``table`` matching ``where``."""
        pk = self.primary_key(table)
        return [r[pk] for r in self.select(table, where, columns=[pk])]

    @abc.abstractmethod
    def has_table(self, table: str) -> bool: ...

    @abc.abstractmethod
    def columns(self, table: str) -> list[str]: ...

    @abc.abstractmethod
    def list_tables(self) -> list[str]:
        """User tables (not pinnacle's own)."""

    # -- metadata ---------------------------------------------------------------------
    @abc.abstractmethod
    def put_component(self, type_id: str, identifier: str, version: int, uuid: str, data: dict) -> None: ...

    @abc.abstractmethod
    def get_component(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> t.Optional[dict]:
        """The stored record ``{"type", "identifier", "version", "uuid", "data"}`` (latest version by default)."""

    @abc.abstractmethod
    def list_components(self, type_id: t.Optional[str] = None) -> list[dict]:
        """Latest version of each component: ``{"type", "identifier", "version", "uuid"}``."""

    @abc.abstractmethod
    def delete_component(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> None:
        """Delete every version of a component, or only ``version``."""

    @abc.abstractmethod
    def get_state(self, key: str) -> t.Optional[str]:
        """A small value pinnacle keeps beside the components (e.g. a listener's serving version)."""

    @abc.abstractmethod
    def set_state(self, key: str, value: t.Optional[str]) -> None:
        """Set (or with ``None`` delete) a value read by :meth:`get_state`."""

    # -- artifacts --------------------------------------------------------------------
    @abc.abstractmethod
    def put_artifact(self, sha256: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def get_artifact(self, sha256: str) -> bytes: ...

    @abc.abstractmethod
    def has_artifact(self, sha256: str) -> bool: ...

    # -- the embedding path -------------------------------------------------------------
    @abc.abstractmethod
    def create_listener(self, spec: ListenerSpec) -> int:
        """Create the outputs/queue/failed storage of one listener version and its change
        capture, and enqueue the rows that have no output yet. Returns how many were enqueued.
        """

    @abc.abstractmethod
    def drop_listener(self, spec: ListenerSpec) -> None: ...

    @abc.abstractmethod
    def claim_work(self, spec: ListenerSpec, limit: int, sources: t.Optional[t.Sequence[t.Any]] = None) -> "Claim":
        """Claim up to ``limit`` due source rows (only ``sources`` if given).

        Use it as a context manager: what is not committed is released on exit.
        """

    @abc.abstractmethod
    def read_outputs(self, spec: ListenerSpec, sources: t.Optional[t.Sequence[t.Any]] = None) -> t.Iterator[tuple[t.Any, t.Any]]:
        """``(source, data)`` of the outputs; for a flattened listener ``data`` is the list of items, in order."""

    @abc.abstractmethod
    def output_stamps(self, spec: ListenerSpec) -> t.Iterator[tuple[t.Any, float]]:
        """``(source, updated_at)`` of every output, without the vectors."""

    @abc.abstractmethod
    def outputs_version(self, spec: ListenerSpec) -> tuple[int, float]:
        """``(count, latest update time)`` of the outputs: a cheap change check."""

    @abc.abstractmethod
    def queue_status(self, spec: ListenerSpec) -> dict[str, int]:
        """Exact counts: ``pending`` (rows queued), ``in_flight`` (of those, claimed by a live
        worker now), ``retrying`` (waiting for a retry's backoff), ``failed``, ``outputs``."""

    @abc.abstractmethod
    def failures(self, spec: ListenerSpec, limit: int = 100) -> list[Row]: ...

    @abc.abstractmethod
    def requeue_failed(self, spec: ListenerSpec) -> int: ...

    def capture_outside_writes(self, specs: t.Sequence[ListenerSpec]) -> int:
        """Queue rows written by other clients that change capture has not queued; returns how many.

        ``Datalayer.drain`` (and so ``pinnacle worker``) calls it before draining. The default
        does nothing: SQL triggers see every write. MongoDB reads its change stream and runs a
        reconcile pass.
        """
        return 0

    # -- search in the database (optional) ------------------------------------------------
    def database_search(
        self, spec: ListenerSpec, measure: str, index: t.Optional[str] = None,
        options: t.Optional[t.Mapping[str, int]] = None,
    ) -> t.Optional[DatabaseSearch]:
        """A :class:`DatabaseSearch` over ``spec``'s outputs, or ``None`` when this database cannot
        search them itself (then the core keeps an in-memory index). ``index`` names an
        approximate index to use (``"hnsw"``, ``"ivfflat"``), ``None`` means exact search.
        """
        return None

    # -- bulk jobs (optional) ------------------------------------------------------------
    def pending_sources(self, spec: ListenerSpec, after: t.Optional[int] = None, limit: int = 1000) -> list[tuple[int, t.Any]]:
        """``(queue id, source)`` of due queue entries with ids above ``after``, by id, at most ``limit``.

        Keyset pagination: pass the last id of one page as ``after`` of the next, so a bulk
        job streams the queue without holding it. A source may appear on several pages.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support bulk jobs (pending_sources).")

    def worker_uri(self) -> str:
        """A URI other processes (bulk-job workers) connect with: it carries the credentials,
        so it is passed privately and never logged. Unlike :attr:`safe_uri` it is not masked.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be shared with worker processes.")

    def close(self) -> None:
        """Release connections."""
