"""The catalogue: stored components, their versions and artifacts.

It stores a component tree (children first), takes back what one ``apply`` stored when a
later step fails, decodes stored records into components, and removes them. It knows
nothing of running them: when a component becomes current here (``activate``) or goes
away (``forget``) it tells the hooks it was given (the runtime registry and search).
"""

from __future__ import annotations

import logging
import threading
import typing as t
from pathlib import Path

from pinnacle import chains, unloadable
from pinnacle.backends.base import DataBackend, ListenerSpec
from pinnacle.base.artifacts import ArtifactRef, pack_directory_cached, sha256_of
from pinnacle.base.component import Component
from pinnacle.base.encoding import decode, encode
from pinnacle.base.identifiers import validate_column, validate_identifier, validate_table_name
from pinnacle.components.listener import Listener
from pinnacle.components.model import Model
from pinnacle.embedding.runtime import serving_key
from pinnacle.errors import ConfigError, NotFoundError, NotLoadableError, PinnacleError, StateError

logger = logging.getLogger("pinnacle.datalayer")

__all__ = ["Catalogue", "TYPES", "check_type", "listeners_in"]

TYPES = ("Model", "Listener", "VectorIndex")

Hook = t.Callable[..., None]


class Catalogue:
    """Components stored in one database, and the ones this process has built from them.

    Args:
        backend: Where records and artifacts are stored.
        on_activate: Called with a component that became current in this process.
        on_forget: Called with ``(type_id, identifier)`` of a component this process dropped.
    """

    def __init__(self, backend: DataBackend, *, on_activate: Hook, on_forget: Hook):
        self.backend = backend
        self.lock = threading.RLock()
        self.loaded: dict[tuple[str, str], Component] = {}
        self._on_activate = on_activate
        self._on_forget = on_forget

    # -- storing -------------------------------------------------------------------------
    def apply(self, component: Component) -> None:
        """Store ``component`` and its children (new versions where they changed) and activate them.

        Nothing is left half-applied: when a step fails, the versions stored by this call are
        taken back, newest first.
        """
        if not isinstance(component, Component):
            raise ConfigError(f"apply() takes a component (Model, Listener, VectorIndex), got {type(component).__name__}.")
        check_names(component)  # checked at construction too, but fields may have changed since
        encode(component)  # refuse lambdas and other unstorable values before anything is written
        with self.lock:
            stored: list[tuple[Component, t.Optional[ListenerSpec]]] = []
            try:
                self._apply(component, stored)
            except BaseException:
                self._undo(stored)  # a failing parent leaves none of its new children behind
                raise

    def _apply(self, component: Component, stored: list) -> None:
        for child in component.children():
            self._apply(child, stored)
        record = self.backend.get_component(component.type_id, component.identifier)
        if record is not None and record["uuid"] == component.uuid:
            component.version = record["version"]
            self._restore_missing_artifacts(component, record)
            self.activate(component)
            return
        version = 0 if record is None else record["version"] + 1
        if isinstance(component, Listener) and record is not None:
            users = chains.downstream_of(self.backend, component.identifier)
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
        self.activate(component)

    def _undo(self, stored: list[tuple[Component, t.Optional[ListenerSpec]]]) -> None:
        """Take back the versions one ``apply`` stored, newest first; earlier versions serve again."""
        undone = {(c.type_id, c.identifier) for c, _ in stored}
        for component, created in reversed(stored):
            type_id, identifier, version = component.type_id, component.identifier, component.version
            if set(self.referrers(type_id, identifier, version)) - undone:
                continue  # another process's apply took it up meanwhile: it stays
            try:
                if created is not None:
                    self.backend.drop_listener(created)
                    if version == 0:
                        self.backend.set_state(serving_key(identifier), None)
                self.backend.delete_component(type_id, identifier, version)
            except Exception:  # noqa: BLE001 - the original error is the one to raise
                logger.exception("Could not undo %s %r version %s after a failed apply", type_id, identifier, version)
            self.forget(type_id, identifier)
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

    # -- what this process has built ------------------------------------------------------
    def activate(self, component: Component) -> None:
        """Remember a stored component as current here and start what it runs."""
        self.loaded[(component.type_id, component.identifier)] = component
        self._on_activate(component)

    def forget(self, type_id: str, identifier: str) -> None:
        """Drop what this process built of a component (it was removed, or cannot load here)."""
        self.loaded.pop((type_id, identifier), None)
        self._on_forget(type_id, identifier)

    # -- reading -------------------------------------------------------------------------
    def load(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> Component:
        """The stored component (latest version unless ``version``); see :meth:`Datalayer.load`."""
        check_type(type_id)
        cached = self.loaded.get((type_id, identifier))
        if cached is not None and (version is None or cached.version == version):
            if version is not None or self._is_latest(cached):
                return cached
        record = self.backend.get_component(type_id, identifier, version)
        if record is None:
            which = "" if version is None else f" version {version}"
            raise NotFoundError(f"No {type_id} {identifier!r}{which} in {self.backend.safe_uri}; db.show() lists what exists.")
        component = self._decode(record)
        if version is None or version == self.latest_version(type_id, identifier):
            self.activate(component)
        else:
            self.loaded.setdefault((type_id, identifier), component)
        return component

    def _is_latest(self, component: Component) -> bool:
        return component.version == self.latest_version(component.type_id, component.identifier)

    def latest_version(self, type_id: str, identifier: str) -> t.Optional[int]:
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
        """All records, one type's identifiers, or one component's stored form; see :meth:`Datalayer.show`."""
        if type_id is None:
            return self.backend.list_components()
        check_type(type_id)
        if identifier is None:
            return [r["identifier"] for r in self.backend.list_components(type_id)]
        record = self.backend.get_component(type_id, identifier)
        if record is None:
            raise NotFoundError(f"No {type_id} {identifier!r}; db.show({type_id!r}) lists what exists.")
        return record

    # -- removing ------------------------------------------------------------------------
    def remove(self, type_id: t.Union[str, Component], identifier: t.Optional[str] = None, *, recursive: bool = False) -> None:
        """Remove a component (and, with ``recursive``, its users); see :meth:`Datalayer.remove`."""
        if isinstance(type_id, Component):
            type_id, identifier = type_id.type_id, type_id.identifier
        check_type(type_id)
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
        with self.lock:
            for user_type, user_id in users:
                self.remove(user_type, user_id, recursive=True)
            if type_id == "Listener":  # from the stored records: the model class need not import here
                latest = self.backend.get_component(type_id, identifier)["version"]
                for version in range(latest + 1):
                    record = self.backend.get_component(type_id, identifier, version)
                    if record is not None:
                        self.backend.drop_listener(unloadable.spec_of_record(self.backend, record))
                self.backend.set_state(serving_key(identifier), None)
            self.backend.delete_component(type_id, identifier)
            self.forget(type_id, identifier)
        logger.info("Removed %s %r", type_id, identifier)

    def _users_of(self, type_id: str, identifier: str) -> list[tuple[str, str]]:
        users = []
        if type_id == "Listener":  # listeners reading its outputs table
            users.extend(("Listener", name) for name in chains.downstream_of(self.backend, identifier))
        return users + self.referrers(type_id, identifier)

    def referrers(self, type_id: str, identifier: str, version: t.Optional[int] = None) -> list[tuple[str, str]]:
        """Stored components (latest versions) whose definition refers to the component."""
        found = []
        for row in self.backend.list_components():
            record = self.backend.get_component(row["type"], row["identifier"])
            if record is not None and _refers_to(record["data"], type_id, identifier, version):
                found.append((row["type"], row["identifier"]))
        return found


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


def check_names(component: Component) -> None:
    """Refuse a component tree holding an identifier, table or column name unsafe for SQL."""
    validate_identifier(component.identifier, f"{type(component).__name__} identifier")
    if isinstance(component, Listener):
        validate_table_name(component.select, "table name")
        for column in component.key_columns:
            validate_column(column, component.select)
    for child in component.children():
        check_names(child)


def check_type(type_id: str) -> None:
    """Refuse a component type that is not one of :data:`TYPES`."""
    if type_id not in TYPES:
        raise ConfigError(f"Unknown component type {type_id!r}; valid ones are {list(TYPES)}.")


def listeners_in(component: Component) -> list[Listener]:
    """The listeners of a component tree, the component itself first."""
    found = [component] if isinstance(component, Listener) else []
    for child in component.children():
        found.extend(listeners_in(child))
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
