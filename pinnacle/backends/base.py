"""What a data backend provides to the core: tables, metadata, artifacts and the change queue.

A plugin (``pinnacle.plugins.<name>``) implements :class:`DataBackend` and exposes
``connect(uri, **options) -> DataBackend``. The core never imports a driver. The contracts
are in :mod:`pinnacle.backends.stores` (one store per job) and the data types of the
embedding path in :mod:`pinnacle.backends.work`; both are re-exported here.
"""

from __future__ import annotations

import typing as t

from pinnacle.backends.stores import (
    OPTIONAL_STORES,
    DatabaseSearch,
    JobStore,
    ListenerStore,
    MetadataStore,
    SearchStore,
    TableStore,
)
from pinnacle.backends.work import Claim, Failure, ListenerSpec, WorkItem, WorkResult
from pinnacle.errors import ConfigError

__all__ = [
    "DataBackend", "TableStore", "MetadataStore", "ListenerStore", "SearchStore", "JobStore",
    "Claim", "ListenerSpec", "WorkItem", "WorkResult", "Failure", "DatabaseSearch",
]

Row = dict[str, t.Any]
Where = t.Optional[t.Mapping[str, t.Any]]


class DataBackend(TableStore, MetadataStore, ListenerStore):
    """A database as the core sees it: the three required stores, and any optional ones the
    class derives from (:class:`SearchStore`, :class:`JobStore`).

    Every method is one short transaction unless it says otherwise.

    Example:
        >>> import pinnacle
        >>> backend = pinnacle.connect("sqlite://").backend
        >>> sorted(backend.capabilities)  # in memory: no workers; SQLite: no vector search
        []
        >>> backend.supports("jobs")
        False
    """

    #: Printable URI with any password masked.
    safe_uri: str = ""

    @property
    def capabilities(self) -> frozenset[str]:
        """The optional stores this database provides (``"search"``, ``"jobs"``).

        By default those the class derives from; a backend whose database lacks one
        narrows it (the only place an optional capability is declared).
        """
        return frozenset(name for name, store in OPTIONAL_STORES.items() if isinstance(self, store))

    def supports(self, capability: str) -> bool:
        """Whether ``capability`` (``"search"`` or ``"jobs"``) is in :attr:`capabilities`."""
        if capability not in OPTIONAL_STORES:
            raise ConfigError(f"Unknown backend capability {capability!r}; known ones are {sorted(OPTIONAL_STORES)}.")
        return capability in self.capabilities

    def require(self, capability: str, needed_by: str) -> None:
        """Raise a :class:`ConfigError` naming ``needed_by`` when ``capability`` is missing."""
        if not self.supports(capability):
            store = OPTIONAL_STORES[capability].__name__
            why = {"search": "vector search in the database", "jobs": "a database other processes can open (not an in-memory one)"}[capability]
            raise ConfigError(f"{needed_by} needs {why} ({store}); {self.safe_uri} does not provide it.")

    def close(self) -> None:
        """Release connections."""
