"""The runtime registry: the listeners this process runs, kept in step with the catalogue.

One :class:`~pinnacle.embedding.runtime.ListenerRuntime` per applied listener (its serving
version and the version being built). The registry picks up components other processes
applied or removed (at most every ``metadata_ttl`` seconds), drains listeners in chain
order, and answers the operational questions: status, failures, retry, outputs, jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses as dc
import logging
import time
import typing as t

from pinnacle import chains, unloadable
from pinnacle.backends.base import DataBackend, ListenerSpec
from pinnacle.catalogue import Catalogue
from pinnacle.components.listener import Listener
from pinnacle.embedding.drain import Drainer, DrainStats, OnCommit, RetryPolicy
from pinnacle.embedding.jobs import latest_job
from pinnacle.embedding.runtime import ListenerRuntime, serving_key
from pinnacle.errors import NotFoundError, NotLoadableError
from pinnacle.progress import progress_bar, reporting

logger = logging.getLogger("pinnacle.datalayer")

__all__ = ["Runtimes"]

#: Called after each commit of a listener version: ``(spec, sources, vectors, removed, stamp)``.
CommitHook = t.Callable[[ListenerSpec, list, list, list, float], None]


class Runtimes:
    """The listeners of one datalayer at run time.

    Args:
        catalogue: The stored components (the registry loads listeners from it).
        batch_rows: Rows per drain transaction.
        max_claim_rows: The most rows per transaction of a pipelined drain with a fast model.
        retry: How failing rows are retried before they are parked as failed.
        metadata_ttl: Seconds between checks for components applied by other processes.
        on_commit: Called after each commit (search keeps its in-memory indexes fresh with it).
    """

    def __init__(
        self, catalogue: Catalogue, *, batch_rows: int, retry: RetryPolicy, metadata_ttl: float, on_commit: CommitHook,
        max_claim_rows: t.Optional[int] = None,
    ):
        self.catalogue = catalogue
        self.backend: DataBackend = catalogue.backend
        self.batch_rows = batch_rows
        self.max_claim_rows = max_claim_rows or batch_rows
        self.retry_policy = retry
        self.metadata_ttl = metadata_ttl
        self._on_commit = on_commit
        self.running: dict[str, ListenerRuntime] = {}
        self.skipped = unloadable.Skipped(self.backend)  # components this process cannot load
        self._synced_at = -1e9

    # -- kept in step with the catalogue ------------------------------------------------------
    def activate(self, listener: Listener) -> None:
        """Run ``listener`` (a new runtime when its definition or serving version changed)."""
        runtime = self.running.get(listener.identifier)
        serving = self.serving_version(listener.identifier)
        if runtime is None or runtime.latest.uuid != listener.uuid or runtime.serving.version != serving:
            self.running[listener.identifier] = self._make_runtime(listener, serving)

    def forget(self, type_id: str, identifier: str) -> None:
        if type_id == "Listener":
            self.running.pop(identifier, None)
        self.skipped.entries.pop((type_id, identifier), None)

    def synced(self) -> None:
        """This process's own view is current (it just applied something)."""
        self._synced_at = time.monotonic()

    def serving_version(self, identifier: str) -> t.Optional[int]:
        value = self.backend.get_state(serving_key(identifier))
        return None if value is None else int(value)

    def _make_runtime(self, latest: Listener, serving_version: t.Optional[int]) -> ListenerRuntime:
        serving = latest
        if serving_version is not None and serving_version != latest.version:
            serving = t.cast(Listener, self.catalogue.load("Listener", latest.identifier, serving_version))
        return ListenerRuntime(
            self.backend, serving, latest, batch_rows=self.batch_rows, max_claim_rows=self.max_claim_rows,
            retry=self.retry_policy, on_commit=self._commit_hook,
        )

    def _commit_hook(self, listener: Listener) -> OnCommit:
        spec = ListenerSpec.of(listener)
        return lambda sources, vectors, removed, stamp, version=None: self._on_commit(spec, sources, vectors, removed, stamp, version)

    def sync(self, force: bool = False) -> None:
        """Pick up listeners and indexes applied or removed by other processes (at most every ``metadata_ttl`` s)."""
        now = time.monotonic()
        if not force and now - self._synced_at < self.metadata_ttl:
            return
        catalogue = self.catalogue
        with catalogue.lock:
            self._synced_at = now
            current = {(r["type"], r["identifier"]): r for r in self.backend.list_components()}
            for key, row in current.items():
                if key[0] == "Model":
                    continue
                failed = self.skipped.entries.get(key)
                if failed is not None and failed.current(row) and not failed.due(now):
                    continue  # not loadable here: skipped (warned once), tried again later
                loaded = catalogue.loaded.get(key)
                runtime = self.running.get(key[1]) if key[0] == "Listener" else None
                try:
                    if loaded is None or loaded.uuid != row["uuid"] or loaded.version != row["version"]:
                        catalogue.load(*key)
                    elif runtime is not None and runtime.serving.version != self.serving_version(key[1]):
                        catalogue.activate(loaded)
                except NotLoadableError as exc:  # another service's component: the rest keeps working
                    self.skip_not_loadable(key, row, exc)
                    continue
                if self.skipped.entries.pop(key, None) is not None:
                    logger.info("%s %r is loadable here now", *key)
            for key in [k for k in self.skipped.entries if k not in current]:
                self.skipped.entries.pop(key)
            for key in [k for k in catalogue.loaded if k[0] != "Model" and k not in current]:
                catalogue.forget(*key)

    def skip_not_loadable(self, key: tuple[str, str], row: dict, error: NotLoadableError) -> None:
        """Stop running a component this process cannot build, and say so once per process."""
        self.catalogue.forget(*key)
        self.skipped.add(key, row, error)

    @contextlib.contextmanager
    def runs_here(self, runtime: ListenerRuntime, reraise: bool = False) -> t.Iterator[None]:
        """A model that needs a module this process lacks (its native library...) when it runs:
        its claimed rows went back to the queue; the listener is skipped here from now on."""
        try:
            yield
        except ImportError as exc:
            error = unloadable.cannot_run(exc, runtime.latest, self.backend.safe_uri)
            row = {"uuid": runtime.latest.uuid, "version": runtime.latest.version}
            self.skip_not_loadable(("Listener", runtime.identifier), row, error)
            if reraise:
                raise error from exc

    # -- lookups ------------------------------------------------------------------------------
    def get(self, listener_id: str) -> ListenerRuntime:
        """The runtime of ``listener_id`` (an error naming why when it is not applied or not loadable)."""
        self.sync()
        if listener_id not in self.running:
            self.sync(force=True)
        try:
            return self.running[listener_id]
        except KeyError:
            self.skipped.check("Listener", listener_id)
            raise NotFoundError(f"No Listener {listener_id!r}; db.show('Listener') lists them.") from None

    def drainer(self, listener_id: str) -> Drainer:
        """The drainer of the version of ``listener_id`` that serves outputs."""
        return self.get(listener_id).serving_drainer()

    def names(self) -> list[str]:
        """Identifiers of the applied listeners this process runs."""
        self.sync(force=True)
        return sorted(self.running)

    def not_loadable(self) -> list[dict[str, t.Any]]:
        self.sync(force=True)
        return [entry.to_dict() for _, entry in sorted(self.skipped.entries.items())]

    # -- running ------------------------------------------------------------------------------
    def drain_table(self, table: str, ids: t.Sequence[t.Any]) -> None:
        """Compute the outputs of rows ``ids`` of ``table`` now, for every listener on it (and downstream)."""
        self.sync()
        drained = []
        for runtime in list(self.running.values()):
            if runtime.listens_to(table):
                with self.runs_here(runtime):
                    runtime.drain_sources(table, ids)
                    drained.append(runtime)
        chains.drain_downstream(self, drained)  # listeners reading their outputs (chunks -> vectors)
        self.skipped.wrote(table)  # listeners on it that this process cannot load: say once that rows wait

    def drain(
        self, listener: t.Optional[str] = None, *, show_progress_bar: t.Optional[bool] = None,
        on_batch: t.Optional[t.Callable[[int], None]] = None,
    ) -> DrainStats:
        names = [listener] if listener else chains.upstream_first(self, self.names())
        total = DrainStats()
        if names:  # writes by other clients that no trigger saw (MongoDB)
            self.backend.capture_outside_writes([d.spec for n in names for d in self.get(n).drainers.values()])
        for name in names:
            runtime = self.get(name)
            bar = progress_bar(total=runtime.pending(), desc=name, unit="row", show=show_progress_bar)
            with bar as progress, self.runs_here(runtime, reraise=bool(listener)):
                total.add(runtime.drain(progress=reporting(progress, on_batch)))
        return total

    def jobs(self, listener: t.Optional[str] = None) -> dict[str, dict[str, t.Any]]:
        names = [listener] if listener else self.names()
        found = {name: latest_job(self.backend, name) for name in names}
        return {name: dc.asdict(job) for name, job in found.items() if job is not None}

    def status(self) -> dict[str, dict[str, t.Any]]:
        found = {name: self.get(name).status() for name in self.names()}
        found.update(self.skipped.statuses(self.serving_version))  # counted from the records, no model
        return dict(sorted(found.items()))

    def failures(self, listener: str, limit: int = 100) -> list[dict]:
        return self.backend.failures(self.drainer(listener).spec, limit)

    def requeue_failed(self, listener: str) -> int:
        return self.backend.requeue_failed(self.drainer(listener).spec)

    def outputs(self, listener: str) -> dict[t.Any, t.Any]:
        drainer = self.drainer(listener)
        datatype = drainer.datatype
        if drainer.spec.flatten:
            return {s: [datatype.decode(x) for x in items] for s, items in self.backend.read_outputs(drainer.spec)}
        return {source: datatype.decode(data) for source, data in self.backend.read_outputs(drainer.spec)}
