"""The contracts a data backend is made of, one store per job.

A backend is one object implementing the three required stores (:class:`TableStore`,
:class:`MetadataStore`, :class:`ListenerStore`: see :class:`~pinnacle.backends.base.DataBackend`)
and, optionally, :class:`SearchStore` (the database searches vectors itself) and
:class:`JobStore` (bulk jobs stream its queue from other processes). Optional capabilities
are declared one way only, by ``DataBackend.capabilities``: by default the names of the
optional stores the class derives from, narrowed by a backend whose database lacks one
(SQLite has no vector search; an in-memory database cannot be shared with workers).
``DataBackend.supports("search")`` answers.

Every driver error leaves a store's methods as :class:`~pinnacle.errors.BackendError`
(the driver's exception in ``.orig``).
"""

from __future__ import annotations

import abc
import typing as t

from pinnacle.backends.work import Claim, ListenerSpec

__all__ = ["TableStore", "MetadataStore", "ListenerStore", "SearchStore", "JobStore", "DatabaseSearch", "OPTIONAL_STORES"]

Row = dict[str, t.Any]
Where = t.Optional[t.Mapping[str, t.Any]]


class TableStore(abc.ABC):
    """The user's tables (collections): rows by id, equality filters, created on first insert."""

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


class MetadataStore(abc.ABC):
    """Component records (every version), small state values, and content-addressed artifacts."""

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

    @abc.abstractmethod
    def put_artifact(self, sha256: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def get_artifact(self, sha256: str) -> bytes: ...

    @abc.abstractmethod
    def has_artifact(self, sha256: str) -> bool: ...


class ListenerStore(abc.ABC):
    """Each listener version's storage (outputs, queue, failed rows) and its change capture.

    The exactly-once promise lives here: :meth:`claim_work` hands rows to one worker, and
    its :class:`~pinnacle.backends.work.Claim` commits outputs and removes queue rows in one
    transaction.
    """

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
    def outputs_version(self, spec: ListenerSpec) -> t.Hashable:
        """A cheap change check: a value that differs after any commit that changed the outputs
        (SQL: a token replaced by each such commit; MongoDB: ``(count, latest update time)``).

        A claim whose commit can say which version it replaced sets ``claim.outputs_version``
        to ``(old, new)``: an index that had seen ``old`` is then at ``new`` with that commit."""

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


class SearchStore(abc.ABC):
    """Optional: nearest-neighbour search run by the database over a listener's outputs."""

    @abc.abstractmethod
    def database_search(
        self, spec: ListenerSpec, measure: str, index: t.Optional[str] = None,
        options: t.Optional[t.Mapping[str, int]] = None,
    ) -> t.Optional[DatabaseSearch]:
        """A :class:`DatabaseSearch` over ``spec``'s outputs, or ``None`` when this database cannot
        search them itself (then the core keeps an in-memory index). ``index`` names an
        approximate index to use (``"hnsw"``, ``"ivfflat"``), ``None`` means exact search.
        """


class JobStore(abc.ABC):
    """Optional: what a bulk job run by other processes needs (Ray): a paged queue and a shareable URI."""

    @abc.abstractmethod
    def pending_sources(self, spec: ListenerSpec, after: t.Optional[int] = None, limit: int = 1000) -> list[tuple[int, t.Any]]:
        """``(queue id, source)`` of due queue entries with ids above ``after``, by id, at most ``limit``.

        Keyset pagination: pass the last id of one page as ``after`` of the next, so a bulk
        job streams the queue without holding it. A source may appear on several pages.
        """
        ...

    @abc.abstractmethod
    def worker_uri(self) -> str:
        """A URI other processes (bulk-job workers) connect with: it carries the credentials,
        so it is passed privately and never logged. Unlike :attr:`safe_uri` it is not masked.

        Only called when ``"jobs"`` is in the backend's capabilities.
        """
        ...


#: Capability name -> the optional store that provides it.
OPTIONAL_STORES: dict[str, type] = {"search": SearchStore, "jobs": JobStore}
