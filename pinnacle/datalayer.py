"""The Datalayer: apply components to a database and keep their outputs current."""

from __future__ import annotations

import contextlib
import dataclasses as dc
import logging
import threading
import time
import typing as t
from pathlib import Path

import numpy as np

from pinnacle.backends.base import DataBackend, ListenerSpec
from pinnacle.backends.compute import load_compute
from pinnacle.backends.loader import load_backend
from pinnacle.base.artifacts import ArtifactRef, pack_directory_cached, sha256_of
from pinnacle.base.component import Component
from pinnacle.base.encoding import decode, encode
from pinnacle.base.identifiers import validate_column, validate_identifier, validate_table_name
from pinnacle import chains, unloadable
from pinnacle.components.listener import Listener
from pinnacle.components.model import Model
from pinnacle.components.vector_index import VectorIndex
from pinnacle.embedding.drain import Drainer, DrainStats, RetryPolicy
from pinnacle.embedding.jobs import latest_job
from pinnacle.embedding.runtime import ListenerRuntime, serving_key
from pinnacle.errors import ConfigError, NotFoundError, NotLoadableError, PinnacleError, StateError
from pinnacle.progress import progress_bar
from pinnacle.search import DatabaseIndex, LiveIndex, open_index
from pinnacle.table import Table

logger = logging.getLogger(__name__)

__all__ = ["Datalayer", "connect"]

TYPES = ("Model", "Listener", "VectorIndex")


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
        batch_rows: Rows per drain transaction.
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
        batch_rows: int = 1024,
        retry: RetryPolicy = RetryPolicy(),
        metadata_ttl: float = 5.0,
        compute: t.Any = None,
    ):
        self.backend = backend
        self.compute = load_compute(compute)
        self.batch_rows = batch_rows
        self.retry_policy = retry
        self.metadata_ttl = metadata_ttl
        self._lock = threading.RLock()
        self._loaded: dict[tuple[str, str], Component] = {}
        self._runtimes: dict[str, ListenerRuntime] = {}
        self._indexes: dict[str, t.Union[LiveIndex, DatabaseIndex]] = {}
        self._skipped = unloadable.Skipped(backend)  # components this process cannot load
        self._catalogue_at = -1e9

    def __repr__(self) -> str:
        return f"Datalayer({self.backend.safe_uri!r})"

    def __getitem__(self, table: str) -> Table:
        return Table(self, table)

    def close(self) -> None:
        self.backend.close()

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
        if not isinstance(component, Component):
            raise ConfigError(f"apply() takes a component (Model, Listener, VectorIndex), got {type(component).__name__}.")
        _check_names(component)  # checked at construction too, but fields may have changed since
        encode(component)  # refuse lambdas and other unstorable values before anything is written
        with self._lock:
            stored: list[tuple[Component, t.Optional[ListenerSpec]]] = []
            try:
                self._apply(component, stored)
            except BaseException:
                self._undo(stored)  # a failing parent leaves none of its new children behind
                raise
            self._catalogue_at = time.monotonic()
        if wait:
            for listener in _listeners_in(component):
                self.backfill(listener.identifier, show_progress_bar=show_progress_bar)
        return component

    def _apply(self, component: Component, stored: list) -> None:
        for child in component.children():
            self._apply(child, stored)
        record = self.backend.get_component(component.type_id, component.identifier)
        if record is not None and record["uuid"] == component.uuid:
            component.version = record["version"]
            self._restore_missing_artifacts(component, record)
            self._activate(component)
            return
        version = 0 if record is None else record["version"] + 1
        if isinstance(component, Listener) and record is not None:
            users = chains.downstream_of(self, component.identifier)
            if users:
                raise StateError(
                    f"Listener {component.identifier!r} changed, but Listener(s) {users} read its outputs table; "
                    f"a new version gets a new table. Remove them first (db.remove('Listener', {users[0]!r})), "
                    "apply this listener, then apply them again on db.outputs_table(...)."
                )
        if isinstance(component, Model) and component.datatype is None:
            component.datatype = _infer_datatype(component)
        component.version = version
        data = encode(component, refs=True)
        artifacts = self._store_artifacts(component)
        if artifacts:
            data["_artifacts"] = {name: ref.to_json() for name, ref in artifacts.items()}
        created = None
        if isinstance(component, Listener):
            # A new version gets storage of its own; the old one serves until it is complete.
            created = ListenerSpec.of(component)
            enqueued = self.backend.create_listener(created)
            logger.info("Listener %r version %d: %d row(s) to compute", component.identifier, version, enqueued)
        try:
            self.backend.put_component(component.type_id, component.identifier, version, component.uuid, data)
            if created is not None and record is None:
                self.backend.set_state(serving_key(component.identifier), str(version))
        except Exception:
            if created is not None:
                self.backend.drop_listener(created)
            component.version = None if record is None else record["version"]
            raise
        stored.append((component, created))
        logger.info("Applied %s %r version %d", component.type_id, component.identifier, version)
        self._activate(component)

    def _undo(self, stored: list[tuple[Component, t.Optional[ListenerSpec]]]) -> None:
        """Take back the versions one ``apply`` stored, newest first; earlier versions serve again."""
        undone = {(c.type_id, c.identifier) for c, _ in stored}
        for component, created in reversed(stored):
            type_id, identifier, version = component.type_id, component.identifier, component.version
            if set(self._referrers(type_id, identifier, version)) - undone:
                continue  # another process's apply took it up meanwhile: it stays
            try:
                if created is not None:
                    self.backend.drop_listener(created)
                    if version == 0:
                        self.backend.set_state(serving_key(identifier), None)
                self.backend.delete_component(type_id, identifier, version)
            except Exception:  # noqa: BLE001 - the original error is the one to raise
                logger.exception("Could not undo %s %r version %s after a failed apply", type_id, identifier, version)
            self._loaded.pop((type_id, identifier), None)
            if type_id == "Listener":
                self._runtimes.pop(identifier, None)
            elif type_id == "VectorIndex":
                self._indexes.pop(identifier, None)
            component.version = None if version == 0 else version - 1
            logger.info("Undid %s %r version %d (its parent failed to apply)", type_id, identifier, version)

    def _restore_missing_artifacts(self, component: Component, record: dict) -> None:
        """An identical re-apply stores again any artifact whose stored copy was deleted
        (the repair for a corrupt artifact: delete its copy, re-apply its component), and
        otherwise hands the stored artifacts to the new object."""
        stored = record["data"].get("_artifacts", {})
        if any(not self.backend.has_artifact(ref["sha256"]) for ref in stored.values()):
            self._store_artifacts(component)
        elif stored:  # the new object runs what is stored (an ONNX export is not made again)
            component.on_artifacts_loaded({n: ArtifactRef(r["sha256"], r["kind"], self.backend) for n, r in stored.items()})

    def _store_artifacts(self, component: Component) -> dict[str, ArtifactRef]:
        refs = {}
        for name, source in component.dump_artifacts().items():
            if isinstance(source, ArtifactRef):
                refs[name] = source
                continue
            kind = "dir" if isinstance(source, (str, Path)) else "bytes"
            sha, data = pack_directory_cached(source) if kind == "dir" else (sha256_of(bytes(source)), bytes(source))
            if not self.backend.has_artifact(sha):
                self.backend.put_artifact(sha, data)
            refs[name] = ArtifactRef(sha, kind, self.backend)
        if refs:
            component.on_artifacts_loaded(refs)
        return refs

    def _activate(self, component: Component) -> None:
        """Remember a stored component and start what it runs."""
        self._loaded[(component.type_id, component.identifier)] = component
        if isinstance(component, Listener):
            runtime = self._runtimes.get(component.identifier)
            serving = self._serving_version(component.identifier)
            if (
                runtime is None
                or runtime.latest.uuid != component.uuid
                or runtime.serving.version != serving
            ):
                self._runtimes[component.identifier] = self._make_runtime(component, serving)
        elif isinstance(component, VectorIndex):
            self._indexes.pop(component.identifier, None)  # rebuilt on next use

    def _serving_version(self, identifier: str) -> t.Optional[int]:
        value = self.backend.get_state(serving_key(identifier))
        return None if value is None else int(value)

    def _make_runtime(self, latest: Listener, serving_version: t.Optional[int]) -> ListenerRuntime:
        serving = latest
        if serving_version is not None and serving_version != latest.version:
            serving = self.load("Listener", latest.identifier, serving_version)
        return ListenerRuntime(
            self.backend, serving, latest, batch_rows=self.batch_rows, retry=self.retry_policy, on_commit=self._on_commit
        )

    def _on_commit(self, listener: Listener):
        spec = ListenerSpec.of(listener)

        def update_indexes(sources, vectors, removed, stamp):
            for live in list(self._indexes.values()):
                if live.spec == spec:
                    live.apply_commit(sources, vectors, removed, stamp)

        return update_indexes

    def load(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> Component:
        """The stored component (latest version unless ``version``).

        Example:
            >>> db.load("Listener", "docs-emb")
            Listener('docs-emb', version=0, uuid='...')
            >>> db.load("Listener", "docs-emb").key
            'text'
        """
        _check_type(type_id)
        cached = self._loaded.get((type_id, identifier))
        if cached is not None and (version is None or cached.version == version):
            if version is not None or self._is_latest(cached):
                return cached
        record = self.backend.get_component(type_id, identifier, version)
        if record is None:
            which = "" if version is None else f" version {version}"
            raise NotFoundError(f"No {type_id} {identifier!r}{which} in {self.backend.safe_uri}; db.show() lists what exists.")
        component = self._decode(record)
        if version is None or version == self._latest_version(type_id, identifier):
            self._activate(component)
        else:
            self._loaded.setdefault((type_id, identifier), component)
        return component

    def _is_latest(self, component: Component) -> bool:
        return component.version == self._latest_version(component.type_id, component.identifier)

    def _latest_version(self, type_id: str, identifier: str) -> t.Optional[int]:
        record = self.backend.get_component(type_id, identifier)
        return None if record is None else record["version"]

    def _decode(self, record: dict) -> Component:
        def load_child(ref: dict) -> Component:
            child = self.load(ref["type"], ref["identifier"], ref.get("version"))
            if child.uuid != ref["uuid"]:
                raise StateError(f"Stored {ref['type']} {ref['identifier']!r} does not match the uuid its parent refers to.")
            return child

        def load_artifact(ref: dict) -> ArtifactRef:
            if not self.backend.has_artifact(ref["sha256"]):
                raise NotLoadableError(f"Artifact {ref['sha256']} is missing", kind="artifact", path=ref["sha256"])
            return ArtifactRef(ref["sha256"], ref["kind"], self.backend)

        try:
            component = decode(record["data"], load_component=load_child, load_artifact=load_artifact)
        except NotLoadableError as exc:  # say which component, what it needs and why it fails here
            raise unloadable.explain(exc, record["type"], record["identifier"], record["version"], self.backend.safe_uri) from exc
        component.version = record["version"]
        return component

    def show(self, type_id: t.Optional[str] = None, identifier: t.Optional[str] = None) -> t.Any:
        """What is applied: all components, one type's identifiers, or one component's stored form.

        Example:
            >>> db.show()
            [{'type': 'Listener', 'identifier': 'docs-emb', 'version': 0, 'uuid': '...'}, ...]
            >>> db.show("VectorIndex")
            ['docs-idx']
        """
        if type_id is None:
            return self.backend.list_components()
        _check_type(type_id)
        if identifier is None:
            return [r["identifier"] for r in self.backend.list_components(type_id)]
        record = self.backend.get_component(type_id, identifier)
        if record is None:
            raise NotFoundError(f"No {type_id} {identifier!r}; db.show({type_id!r}) lists what exists.")
        return record

    def remove(self, type_id: t.Union[str, Component], identifier: t.Optional[str] = None, *, recursive: bool = False) -> None:
        """Remove a component; a listener takes its outputs with it.

        Raises :class:`StateError` while another component uses it, unless ``recursive``
        (then the users are removed too).

        Example:
            >>> db.remove("Listener", "docs-emb", recursive=True)  # and the index that searches it
            >>> db.show("Listener"), db.show("VectorIndex")
            ([], [])
        """
        if isinstance(type_id, Component):
            type_id, identifier = type_id.type_id, type_id.identifier
        _check_type(type_id)
        if identifier is None:
            raise ConfigError("remove() needs the component's identifier.")
        if self.backend.get_component(type_id, identifier) is None:
            raise NotFoundError(f"No {type_id} {identifier!r} to remove.")
        users = self._users_of(type_id, identifier)
        if users and not recursive:
            names = ", ".join(f"{t_} {i!r}" for t_, i in users)
            raise StateError(
                f"{type_id} {identifier!r} is used by {names}; remove those first or pass recursive=True."
            )
        with self._lock:
            for user_type, user_id in users:
                self.remove(user_type, user_id, recursive=True)
            if type_id == "Listener":  # from the stored records: the model class need not import here
                latest = self.backend.get_component(type_id, identifier)["version"]
                for version in range(latest + 1):
                    record = self.backend.get_component(type_id, identifier, version)
                    if record is not None:
                        self.backend.drop_listener(unloadable.spec_of_record(self.backend, record))
                self.backend.set_state(serving_key(identifier), None)
                self._runtimes.pop(identifier, None)
            if type_id == "VectorIndex":
                self._indexes.pop(identifier, None)
            self.backend.delete_component(type_id, identifier)
            self._loaded.pop((type_id, identifier), None)
            self._skipped.entries.pop((type_id, identifier), None)
        logger.info("Removed %s %r", type_id, identifier)

    def _users_of(self, type_id: str, identifier: str) -> list[tuple[str, str]]:
        users = []
        if type_id == "Listener":  # listeners reading its outputs table
            users.extend(("Listener", name) for name in chains.downstream_of(self, identifier))
        return users + self._referrers(type_id, identifier)

    def _referrers(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> list[tuple[str, str]]:
        """Stored components (latest versions) whose definition refers to the component."""
        found = []
        for row in self.backend.list_components():
            record = self.backend.get_component(row["type"], row["identifier"])
            if record is not None and _refers_to(record["data"], type_id, identifier, version):
                found.append((row["type"], row["identifier"]))
        return found

    # -- the embedding path ------------------------------------------------------------
    def _sync(self, force: bool = False) -> None:
        """Pick up listeners and indexes applied or removed by other processes (at most every ``metadata_ttl`` s)."""
        now = time.monotonic()
        if not force and now - self._catalogue_at < self.metadata_ttl:
            return
        with self._lock:
            self._catalogue_at = now
            current = {(r["type"], r["identifier"]): r for r in self.backend.list_components()}
            for key, row in current.items():
                if key[0] == "Model":
                    continue
                failed = self._skipped.entries.get(key)
                if failed is not None and failed.current(row) and not failed.due(now):
                    continue  # not loadable here: skipped (warned once), tried again later
                loaded = self._loaded.get(key)
                runtime = self._runtimes.get(key[1]) if key[0] == "Listener" else None
                try:
                    if loaded is None or loaded.uuid != row["uuid"] or loaded.version != row["version"]:
                        self.load(*key)
                    elif runtime is not None and runtime.serving.version != self._serving_version(key[1]):
                        self._activate(loaded)
                except NotLoadableError as exc:  # another service's component: the rest keeps working
                    self._skip_not_loadable(key, row, exc)
                    continue
                if self._skipped.entries.pop(key, None) is not None:
                    logger.info("%s %r is loadable here now", *key)
            for key in [k for k in self._skipped.entries if k not in current]:
                self._skipped.entries.pop(key)
            for ident in [i for i in self._runtimes if ("Listener", i) not in current]:
                self._runtimes.pop(ident)
                self._loaded.pop(("Listener", ident), None)
            for ident in [i for i in self._indexes if ("VectorIndex", i) not in current]:
                self._indexes.pop(ident)
                self._loaded.pop(("VectorIndex", ident), None)

    def _skip_not_loadable(self, key: tuple[str, str], row: dict, error: NotLoadableError) -> None:
        """Stop running a component this process cannot build, and say so once per process."""
        (self._runtimes if key[0] == "Listener" else self._indexes).pop(key[1], None)
        self._loaded.pop(key, None)
        self._skipped.add(key, row, error)

    @contextlib.contextmanager
    def _runs_here(self, runtime: ListenerRuntime, reraise: bool = False) -> t.Iterator[None]:
        """A model that needs a module this process lacks (its native library...) when it runs:
        its claimed rows went back to the queue; the listener is skipped here from now on."""
        try:
            yield
        except ImportError as exc:
            error = unloadable.cannot_run(exc, runtime.latest, self.backend.safe_uri)
            self._skip_not_loadable(("Listener", runtime.identifier), {"uuid": runtime.latest.uuid, "version": runtime.latest.version}, error)
            if reraise:
                raise error from exc

    def not_loadable(self) -> list[dict[str, t.Any]]:
        """The stored components this process cannot build (another service's model class, a
        function or an artifact not found here): ``type``, ``identifier``, ``version``, ``table``,
        ``kind`` (``class``, ``callable``, ``dependency``, ``artifact``), ``path``, ``missing`` (module), ``error``.

        They are skipped: their rows stay queued for a process that can load them.

        Example:
            >>> db.not_loadable()
            [{'type': 'Listener', 'identifier': 'ext-emb', ..., 'kind': 'class', 'path': 'null_model.NullEmbedder', ...}]
        """
        self._sync(force=True)
        return [entry.to_dict() for _, entry in sorted(self._skipped.entries.items())]

    def _runtime(self, listener_id: str) -> ListenerRuntime:
        self._sync()
        if listener_id not in self._runtimes:
            self._sync(force=True)
        try:
            return self._runtimes[listener_id]
        except KeyError:
            self._skipped.check("Listener", listener_id)
            raise NotFoundError(f"No Listener {listener_id!r}; db.show('Listener') lists them.") from None

    def _drainer(self, listener_id: str) -> Drainer:
        """The drainer of the version of ``listener_id`` that serves outputs."""
        return self._runtime(listener_id).serving_drainer()

    def _drain_table(self, table: str, ids: t.Sequence[t.Any]) -> None:
        self._sync()
        drained = []
        for runtime in list(self._runtimes.values()):
            if runtime.listens_to(table):
                with self._runs_here(runtime):
                    runtime.drain_sources(table, ids)
                    drained.append(runtime)
        chains.drain_downstream(self, drained)  # listeners reading their outputs (chunks -> vectors)
        self._skipped.wrote(table)  # listeners on it that this process cannot load: say once that rows wait

    def listeners(self) -> list[str]:
        """Identifiers of the applied listeners."""
        self._sync(force=True)
        return sorted(self._runtimes)

    def drain(self, listener: t.Optional[str] = None, *, show_progress_bar: t.Optional[bool] = None) -> DrainStats:
        """Compute everything due for ``listener`` (all listeners by default).

        A listener whose model changed is built beside the serving version; when its last
        row is computed it starts serving and the old outputs are dropped.

        Example:
            >>> ids = db["docs"].insert([{"text": "later"}], wait=False)
            >>> db.drain().outputs
            1
        """
        names = [listener] if listener else chains.upstream_first(self, self.listeners())
        total = DrainStats()
        if names:  # writes by other clients that no trigger saw (MongoDB)
            self.backend.capture_outside_writes([d.spec for n in names for d in self._runtime(n).drainers.values()])
        for name in names:
            runtime = self._runtime(name)
            with progress_bar(total=runtime.pending(), desc=name, unit="row", show=show_progress_bar) as bar, self._runs_here(runtime, reraise=bool(listener)):
                total.add(runtime.drain(progress=bar))
        return total

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
        return backend.backfill(self, self._runtime(listener), show_progress_bar=show_progress_bar, **options)

    def jobs(self, listener: t.Optional[str] = None) -> dict[str, dict[str, t.Any]]:
        """The latest bulk job of each listener (or of ``listener``): state, rows done/failed, times."""
        names = [listener] if listener else self.listeners()
        found = {name: latest_job(self.backend, name) for name in names}
        return {name: dc.asdict(job) for name, job in found.items() if job is not None}

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
        found = {name: self._runtime(name).status() for name in self.listeners()}
        found.update(self._skipped.statuses(self._serving_version))  # counted from the records, no model
        return dict(sorted(found.items()))

    def failures(self, listener: str, limit: int = 100) -> list[dict]:
        """The rows of ``listener`` that failed, newest first, with their errors.

        Example:
            >>> db.failures("docs-emb")[0]["message"]
            "Listener 'docs-emb', row '7' of 'docs': the text is missing (None)"
        """
        return self.backend.failures(self._drainer(listener).spec, limit)

    def retry(self, listener: str, *, wait: bool = True) -> int:
        """Put the failed rows of ``listener`` back in the queue (and compute them unless ``wait=False``).

        Returns how many rows were requeued.

        Example:
            >>> db.retry("docs-emb")  # after fixing the model or the rows
            1
        """
        count = self.backend.requeue_failed(self._drainer(listener).spec)
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
        drainer = self._drainer(listener)
        datatype = drainer.datatype
        if drainer.spec.flatten:
            return {s: [datatype.decode(x) for x in items] for s, items in self.backend.read_outputs(drainer.spec)}
        return {source: datatype.decode(data) for source, data in self.backend.read_outputs(drainer.spec)}

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
        return Table(self, self._drainer(listener).spec.outputs_table)

    # -- search -------------------------------------------------------------------------
    def like(
        self, table: str, query: t.Mapping[str, t.Any], *, vector_index: str, n: int = 10,
        filter: t.Optional[t.Mapping[str, t.Any]] = None,
    ) -> list[dict]:
        """Rows of ``table`` most similar to ``query`` by ``vector_index``, best first (see :meth:`Table.like`)."""
        live = self._live_index(vector_index)
        listener = live.listener
        parent = None
        if listener.select != table:  # an index over chunks of ``table``: hits map to parent rows
            parent = chains.parent_listener(self, listener, table, vector_index)
        query_listener = live.index.compatible_listener or listener  # the serving model's query side
        query = chains.parent_query(query_listener, parent, query)
        try:
            x = query_listener.model_input(query)
        except KeyError as exc:
            raise ConfigError(f"like(): the query needs the key {exc} of Listener {query_listener.identifier!r}.") from None
        vector = np.asarray(query_listener.model.predict_query(x), dtype=np.float32)
        if parent is not None:
            return chains.search_parents(self, live, vector, table, listener.select, n, filter)
        hits = live.search(vector, n, filter=filter)  # pre-filtering: in the database or in memory
        if not hits:
            return []
        rows = {r[self.backend.primary_key(table)]: r for r in self.backend.select(table, ids=[h[0] for h in hits])}
        out = []
        for source, score in hits:
            row = rows.get(source)
            if row is not None:
                out.append({**row, "_score": score})
        return out

    def _live_index(self, identifier: str) -> t.Union[LiveIndex, DatabaseIndex]:
        """The run-time index of ``identifier`` (in the database or in memory), over the serving
        version of its listener."""
        self._sync()
        live = self._indexes.get(identifier)
        index = self._loaded.get(("VectorIndex", identifier))
        if index is None:
            self._sync(force=True)
            index = self._loaded.get(("VectorIndex", identifier))
        if index is None:
            self._skipped.check("VectorIndex", identifier)
            raise NotFoundError(f"No VectorIndex {identifier!r}; db.show('VectorIndex') lists them.")
        serving = self._runtime(index.indexing_listener.identifier).serving
        if live is None or live.index is not index or live.listener is not serving:
            spec = ListenerSpec.of(serving)
            if spec.flatten or spec.text:
                raise ConfigError(
                    f"VectorIndex {identifier!r}: Listener {serving.identifier!r} stores "
                    f"{'lists of items' if spec.flatten else 'text'}, not vectors; index a listener that embeds them, "
                    f"e.g. Listener('{serving.identifier}-emb', model=..., key='_output', select=db.outputs_table({serving.identifier!r}))."
                )
            live = open_index(self.backend, index, serving)
            self._indexes[identifier] = live
        return live


def _infer_datatype(model: Model) -> t.Any:
    """``model.infer_datatype()`` (it loads the model); a failure names the model and the cause."""
    try:
        return model.infer_datatype()
    except PinnacleError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{type(model).__name__} {model.identifier!r}: could not load the model to find its output "
            f"dimension ({type(exc).__name__}: {exc}). Check the model name or path."
        ) from exc


def _check_names(component: Component) -> None:
    """Refuse a component tree holding an identifier, table or column name unsafe for SQL."""
    validate_identifier(component.identifier, f"{type(component).__name__} identifier")
    if isinstance(component, Listener):
        validate_table_name(component.select, "table name")
        for column in component.key_columns:
            validate_column(column, component.select)
    for child in component.children():
        _check_names(child)


def _check_type(type_id: str) -> None:
    if type_id not in TYPES:
        raise ConfigError(f"Unknown component type {type_id!r}; valid ones are {list(TYPES)}.")


def _listeners_in(component: Component) -> list[Listener]:
    found = [component] if isinstance(component, Listener) else []
    for child in component.children():
        found.extend(_listeners_in(child))
    return found


def _refers_to(data: t.Any, type_id: str, identifier: str, version: t.Optional[int] = None) -> bool:
    """Whether stored ``data`` refers to the component (to that ``version`` of it, if given)."""
    if isinstance(data, dict):
        if (
            data.get("_ref") == "component" and data.get("type") == type_id and data.get("identifier") == identifier
            and (version is None or data.get("version") == version)
        ):
            return True
        return any(_refers_to(v, type_id, identifier, version) for v in data.values())
    if isinstance(data, list):
        return any(_refers_to(v, type_id, identifier, version) for v in data)
    return False
