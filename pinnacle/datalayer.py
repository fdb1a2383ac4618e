"""The Datalayer: apply components to a database and keep their outputs current.

It is a facade over three collaborators with one job each:

- :class:`~pinnacle.catalogue.Catalogue`: stored components, versions and artifacts;
- :class:`~pinnacle.runtimes.Runtimes`: the listeners this process runs (sync with other
  processes, drain, backfill, status);
- :class:`~pinnacle.search.Search`: ``like()`` and the run-time form of each VectorIndex.
"""

from __future__ import annotations

import typing as t

from pinnacle.backends.base import DataBackend
from pinnacle.backends.compute import load_compute
from pinnacle.backends.loader import load_backend
from pinnacle.base.component import Component
from pinnacle.catalogue import Catalogue, listeners_in
from pinnacle.components.listener import Listener
from pinnacle.components.vector_index import VectorIndex
from pinnacle.embedding.drain import DEFAULT_BATCH_ROWS, MAX_CLAIM_ROWS, DrainStats, RetryPolicy
from pinnacle.runtimes import Runtimes
from pinnacle.search import Search
from pinnacle.table import Table

__all__ = ["Datalayer", "connect"]


def connect(uri: t.Optional[str] = None, **options: t.Any) -> "Datalayer":
    """Connect to a database; with no URI, an embedded SQLite file ``./pinnacle.db``.

    Args:
        uri: ``sqlite:///docs.db``, ``postgresql://user@host/db``, ``mysql://root@host/db``...
        **options: ``batch_rows``, ``retry`` (:class:`RetryPolicy`), ``metadata_ttl`` and
            ``compute`` (``"local"``, ``"ray"``, ``"ray://host:port"``: see :meth:`Datalayer.backfill`)
            for the datalayer; the rest go to the backend.

    Example:
        >>> import pinnacle
        >>> db = pinnacle.connect("sqlite://")
        >>> db["docs"].insert([{"_id": "a", "text": "hello"}])
        ['a']
    """
    layer_options = {k: options.pop(k) for k in ("batch_rows", "retry", "metadata_ttl", "compute") if k in options}
    return Datalayer(load_backend(uri, **options), **layer_options)


class Datalayer:
    """Applies components and runs them against one database.

    Args:
        backend: The data backend (see :func:`connect`).
        batch_rows: Rows per drain transaction. Not given: 1,024, and a drain of a long queue
            claims up to 8,192 at once when the model is fast enough to make that worth it
            (:class:`~pinnacle.embedding.drain.ClaimSize`); given: exactly that many.
        retry: How failing rows are retried before they are parked as failed.
        metadata_ttl: Seconds between checks for components applied by other processes.
        compute: Who computes bulk work (backfills): ``"local"`` (this process, the default),
            ``"ray"`` (a local Ray cluster started on demand, or ``$RAY_ADDRESS``) or
            ``"ray://host:port"`` (an existing cluster).
    """

    def __init__(
        self,
        backend: DataBackend,
        *,
        batch_rows: t.Optional[int] = None,
        retry: RetryPolicy = RetryPolicy(),
        metadata_ttl: float = 5.0,
        compute: t.Any = None,
    ):
        self.backend = backend
        self.compute = load_compute(compute)
        self.catalogue = Catalogue(backend, on_activate=self._activated, on_forget=self._forgotten)
        self.runtimes = Runtimes(
            self.catalogue, batch_rows=batch_rows or DEFAULT_BATCH_ROWS,
            max_claim_rows=MAX_CLAIM_ROWS if batch_rows is None else batch_rows, retry=retry, metadata_ttl=metadata_ttl,
            on_commit=lambda *commit: self.search.apply_commit(*commit),
        )
        self.search = Search(self.catalogue, self.runtimes)

    @property
    def batch_rows(self) -> int:
        return self.runtimes.batch_rows

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.runtimes.retry_policy

    def __repr__(self) -> str:
        return f"Datalayer({self.backend.safe_uri!r})"

    def __getitem__(self, table: str) -> Table:
        return Table(self, table)

    def close(self) -> None:
        self.backend.close()

    def _activated(self, component: Component) -> None:
        if isinstance(component, Listener):
            self.runtimes.activate(component)
        elif isinstance(component, VectorIndex):
            self.search.activate(component)  # rebuilt on next use; its full-text index made or replaced

    def _forgotten(self, type_id: str, identifier: str) -> None:
        self.runtimes.forget(type_id, identifier)
        if type_id == "VectorIndex":
            self.search.forget(identifier)

    # -- components ----------------------------------------------------------------
    def apply(self, component: Component, *, wait: bool = True, show_progress_bar: t.Optional[bool] = None) -> Component:
        """Store ``component`` (and its children) and start it. Identical re-applies do nothing.

        A listener starts change capture on its table and computes the outputs of existing
        rows before this returns (unless ``wait=False``).

        Example:
            >>> db.apply(pinnacle.Listener("topic-emb", model=model, key="topic", select="docs"))
            Listener('topic-emb', version=0, uuid='...')
            >>> len(db.outputs("topic-emb"))  # every existing row already has its output
            7
        """
        self.catalogue.apply(component)
        self.runtimes.synced()
        if wait:
            for listener in listeners_in(component):
                self.backfill(listener.identifier, show_progress_bar=show_progress_bar)
        return component

    def load(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> Component:
        """The stored component (latest version unless ``version``).

        Example:
            >>> db.load("Listener", "docs-emb")
            Listener('docs-emb', version=0, uuid='...')
            >>> db.load("Listener", "docs-emb").key
            'text'
        """
        return self.catalogue.load(type_id, identifier, version)

    def show(self, type_id: t.Optional[str] = None, identifier: t.Optional[str] = None) -> t.Any:
        """What is applied: all components, one type's identifiers, or one component's stored form.

        Example:
            >>> db.show()
            [{'type': 'Listener', 'identifier': 'docs-emb', 'version': 0, 'uuid': '...'}, ...]
            >>> db.show("VectorIndex")
            ['docs-idx']
        """
        return self.catalogue.show(type_id, identifier)

    def remove(self, type_id: t.Union[str, Component], identifier: t.Optional[str] = None, *, recursive: bool = False) -> None:
        """Remove a component; a listener takes its outputs with it.

        Raises :class:`StateError` while another component uses it, unless ``recursive``
        (then the users are removed too).

        Example:
            >>> db.remove("Listener", "docs-emb", recursive=True)  # and the index that searches it
            >>> db.show("Listener"), db.show("VectorIndex")
            ([], [])
        """
        self.catalogue.remove(type_id, identifier, recursive=recursive)

    def not_loadable(self) -> list[dict[str, t.Any]]:
        """The stored components this process cannot build (another service's model class, a
        function or an artifact not found here): ``type``, ``identifier``, ``version``, ``table``,
        ``kind`` (``class``, ``callable``, ``dependency``, ``artifact``), ``path``, ``missing`` (module), ``error``.

        They are skipped: their rows stay queued for a process that can load them.

        Example:
            >>> db.not_loadable()
            [{'type': 'Listener', 'identifier': 'ext-emb', ..., 'kind': 'class', 'path': 'null_model.NullEmbedder', ...}]
        """
        return self.runtimes.not_loadable()

    # -- running listeners ---------------------------------------------------------------
    def listeners(self) -> list[str]:
        """Identifiers of the applied listeners."""
        return self.runtimes.names()

    def drain(
        self, listener: t.Optional[str] = None, *, show_progress_bar: t.Optional[bool] = None,
        on_batch: t.Optional[t.Callable[[int], None]] = None,
    ) -> DrainStats:
        """Compute everything due for ``listener`` (all listeners by default).

        A listener whose model changed is built beside the serving version; when its last
        row is computed it starts serving and the old outputs are dropped. ``on_batch`` is
        called with the row count of each batch once it has committed (in the thread that
        committed it), so a caller sees progress even if a later batch then fails.

        Example:
            >>> ids = db["docs"].insert([{"text": "later"}], wait=False)
            >>> db.drain().outputs
            1
        """
        return self.runtimes.drain(listener, show_progress_bar=show_progress_bar, on_batch=on_batch)

    def backfill(
        self, listener: str, *, compute: t.Any = None, show_progress_bar: t.Optional[bool] = None, **options: t.Any
    ) -> DrainStats:
        """Compute every pending row of ``listener`` with a compute backend (stability: beta).

        ``compute="local"`` is :meth:`drain`. ``compute="ray"`` runs a bulk job on Ray: chunks
        of pending rows go to a pool of actors that each load the model once and commit
        through the same exactly-once path; the job's status is kept in the database
        (:meth:`jobs`). An interrupted job leaves the remaining rows queued: run it again.

        Args:
            listener: The listener's identifier.
            compute: Overrides the datalayer's ``compute`` for this call.
            show_progress_bar: A tqdm bar while it runs (default: on at INFO logging).
            **options: Compute options overriding the model's ``compute_kwargs``
                (Ray: ``num_actors``, ``num_cpus``, ``num_gpus``, ``chunk_rows``...).

        Example:
            >>> ids = db["docs"].insert([{"text": "later"}], wait=False)
            >>> db.backfill("docs-emb")  # compute="local": a drain
            DrainStats(rows=1, outputs=1, ...)
            >>> db.backfill("docs-emb", compute="ray", num_actors=2)  # doctest: +SKIP
            DrainStats(rows=20000, outputs=20000, ...)
        """
        backend = self.compute if compute is None else load_compute(compute)
        for capability in sorted(backend.needs):
            self.backend.require(capability, f"backfill({listener!r}, compute={backend.name!r})")
        return backend.backfill(self.runtimes, self.runtimes.get(listener), show_progress_bar=show_progress_bar, **options)

    def jobs(self, listener: t.Optional[str] = None) -> dict[str, dict[str, t.Any]]:
        """The latest bulk job of each listener (or of ``listener``): state, rows done/failed, times."""
        return self.runtimes.jobs(listener)

    def status(self) -> dict[str, dict[str, t.Any]]:
        """Exact counts per listener: ``pending`` (queued rows), ``in_flight`` (of those, being
        computed by a live worker now), ``retrying``, ``failed``, ``outputs``.

        While a changed listener is being built, ``building`` holds the new version's counts.
        A listener this process cannot load (another service's model class...) is counted
        from its stored records, with ``loadable: False`` and the reason in ``error``.

        Example:
            >>> db.status()
            {'docs-emb': {'pending': 0, 'in_flight': 0, 'retrying': 0, 'failed': 1, 'outputs': 6, 'version': 0}}
        """
        return self.runtimes.status()

    def failures(self, listener: str, limit: int = 100) -> list[dict]:
        """The rows of ``listener`` that failed, newest first, with their errors.

        Example:
            >>> db.failures("docs-emb")[0]["message"]
            "Listener 'docs-emb', row '7' of 'docs': the text is missing (None)"
        """
        return self.runtimes.failures(listener, limit)

    def retry(self, listener: str, *, wait: bool = True) -> int:
        """Put the failed rows of ``listener`` back in the queue (and compute them unless ``wait=False``).

        Returns how many rows were requeued.

        Example:
            >>> db.retry("docs-emb")  # after fixing the model or the rows
            1
        """
        count = self.runtimes.requeue_failed(listener)
        if wait and count:
            self.drain(listener)
        return count

    def outputs(self, listener: str) -> dict[t.Any, t.Any]:
        """``{source id: output}`` for every row of ``listener``'s table that has one; for a
        flattened listener (e.g. a :class:`~pinnacle.TextChunker`) the output is the list of items.

        Example:
            >>> db.outputs("docs-emb")["1"].shape
            (384,)
        """
        return self.runtimes.outputs(listener)

    def outputs_table(self, listener: str) -> Table:
        """The table holding ``listener``'s outputs (``_source``, ``_output``...).

        It can be the ``select`` of another listener (a chain): on a flattened listener's
        table each item is a row (``_id`` ``"<source>/<position>"``, ``_source``, ``_position``).

        Example:
            >>> chunker = pinnacle.TextChunker("chunker", size=16, overlap=0)
            >>> chunks = db.apply(pinnacle.Listener("chunks", model=chunker, key="text", select="docs"))
            >>> db.outputs_table("chunks").get("2/0")["_output"]
            'the telescope'
            >>> emb = db.apply(pinnacle.Listener("chunk-emb", model=model, key="_output",
            ...                                  select=db.outputs_table("chunks")))
            >>> db.outputs("chunk-emb")["2/0"].shape
            (384,)
        """
        return Table(self, self.runtimes.drainer(listener).spec.outputs_table)

    # -- search -------------------------------------------------------------------------
    def like(
        self, table: str, query: t.Mapping[str, t.Any], *, vector_index: str, n: int = 10,
        filter: t.Optional[t.Mapping[str, t.Any]] = None, **options: t.Any,
    ) -> list[dict]:
        """Rows of ``table`` most similar to ``query`` by ``vector_index``, best first; ``options``:
        ``mode``, ``rerank``, ``candidates``, ``rrf_k``, ``weights`` (see :meth:`Table.like`)."""
        return self.search.like(table, query, vector_index=vector_index, n=n, filter=filter, **options)
