"""Stored components this process cannot build, and what still works around them.

Services that share a database rarely share their code: an ingest service applies a
listener whose model class lives in its own module, and a search API without that module
connects to the same database. Such a component is *not loadable here*: its class or a
callable it names does not import, or an artifact it needs is not in the artifact store.
The datalayer then skips it, with one warning per process, and everything else keeps
working: writes (the triggers, or MongoDB's write path, still queue its rows), reads,
apply, remove (from the stored records alone), status (its counts, read from the records)
and search of other indexes. A process that can load it computes its queued rows.
"""

from __future__ import annotations

import dataclasses as dc
import logging
import threading
import time
import typing as t

from pinnacle.backends.base import DataBackend, ListenerSpec
from pinnacle.base.encoding import decode
from pinnacle.errors import NotLoadableError

logger = logging.getLogger("pinnacle.datalayer")

__all__ = ["NotLoadable", "Skipped", "explain", "cannot_run", "spec_of_record", "listener_status", "warn_once", "RETRY_S"]

#: Seconds before a process tries again to load a component it could not (a module
#: installed meanwhile); a changed record (new version) is tried at once.
RETRY_S = 30.0

_warned: set[tuple] = set()
_warned_lock = threading.Lock()


def warn_once(key: tuple, message: str, *args: t.Any) -> bool:
    """Log ``message`` as a warning the first time this process sees ``key``; True if logged."""
    with _warned_lock:
        if key in _warned:
            return False
        _warned.add(key)
    logger.warning(message, *args)
    return True


def explain(error: NotLoadableError, type_id: str, identifier: str, version: t.Optional[int], where: str) -> NotLoadableError:
    """``error`` restated for the component being loaded: which one, what it needs, why it fails here.

    Example:
        >>> e = NotLoadableError("x", kind="class", path="null_model.Null", missing="null_model",
        ...                      cause="No module named 'null_model'", component="Model 'null'")
        >>> str(explain(e, "Listener", "emb", 0, "sqlite://"))  # doctest: +NORMALIZE_WHITESPACE
        "Listener 'emb' (version 0) cannot be loaded in this process: its Model 'null' has class
        'null_model.Null', which does not import here (No module named 'null_model'); install module
        'null_model' here to load it."
    """
    own = f"{type_id} {identifier!r}"
    inner = error.component or own
    if error.kind == "class":
        what = f"its class {error.path!r}" if inner == own else f"its {inner} has class {error.path!r},"
        why = f"which does not import here ({error.cause})" if inner != own else f"does not import here ({error.cause})"
    else:
        subject = "it" if inner == own else f"its {inner}"
        if error.kind == "callable":
            what, why = f"{subject} names the function {error.path!r},", f"which does not import here ({error.cause})"
        elif error.kind == "dependency":
            needs = f"module {error.path!r}" if error.path else "a module"
            what, why = f"{subject} needs {needs} to run,", f"which is not available here ({error.cause})"
        else:
            what = f"{subject} needs artifact {error.path[:12]},"
            why = (f"which is not in the artifact store of {where} (apply the component again from a process "
                   "that has its files to store it)")
    hint = f"; install module {error.missing!r} here to load it" if error.missing and error.kind != "dependency" else ""
    which = "" if version is None else f" (version {version})"
    message = f"{own}{which} cannot be loaded in this process: {what} {why}{hint}."
    return NotLoadableError(message, kind=error.kind, path=error.path, missing=error.missing, cause=error.cause, component=inner)


def cannot_run(exc: ImportError, listener: t.Any, where: str) -> NotLoadableError:
    """The ``ImportError`` a listener's model raised when it ran (a module it needs, e.g. its
    native library, is not installed in this process), as a :class:`NotLoadableError`."""
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else getattr(exc, "name", None)
    cause = " ".join(str(exc).split()) or type(exc).__name__
    error = NotLoadableError(cause, kind="dependency", path=missing or "", missing=missing, cause=cause,
                             component=f"Model {listener.model.identifier!r}")
    return explain(error, "Listener", listener.identifier, listener.version, where)


@dc.dataclass
class NotLoadable:
    """A stored component (latest version) that this process could not build."""

    type_id: str
    identifier: str
    version: int
    uuid: str
    error: NotLoadableError
    #: The table a listener reads (``None`` for other types).
    table: t.Optional[str] = None
    checked_at: float = dc.field(default_factory=time.monotonic)

    def current(self, row: t.Mapping[str, t.Any]) -> bool:
        """Whether ``row`` (from ``list_components``) is still the version that failed."""
        return row["uuid"] == self.uuid and row["version"] == self.version

    def due(self, now: float) -> bool:
        """Whether it is time to try loading it again."""
        return now - self.checked_at >= RETRY_S

    def to_dict(self) -> dict[str, t.Any]:
        e = self.error
        return {
            "type": self.type_id, "identifier": self.identifier, "version": self.version, "table": self.table,
            "kind": e.kind, "path": e.path, "missing": e.missing, "component": e.component, "error": str(e),
        }


class Skipped:
    """The components one datalayer skips because it cannot load them here, by ``(type, identifier)``."""

    def __init__(self, backend: DataBackend):
        self.backend = backend
        self.entries: dict[tuple[str, str], NotLoadable] = {}

    def add(self, key: tuple[str, str], row: t.Mapping[str, t.Any], error: NotLoadableError) -> None:
        """Skip ``key`` at ``row``'s version, and say so once per process."""
        table = None
        if key[0] == "Listener":
            record = self.backend.get_component(*key)
            table = record["data"].get("select") if record is not None else None
        self.entries[key] = NotLoadable(key[0], key[1], row["version"], row["uuid"], error, table)
        left = " Its rows stay queued for a process that can load it." if key[0] == "Listener" else ""
        warn_once(("skip", self.backend.safe_uri, *key, row["version"]), "%s Skipped.%s", error, left)

    def check(self, type_id: str, identifier: str) -> None:
        """Raise the :class:`NotLoadableError` of a skipped component (nothing if it is not skipped)."""
        entry = self.entries.get((type_id, identifier))
        if entry is not None:
            raise entry.error

    def wrote(self, table: str) -> None:
        """A write to ``table`` returned without computing the skipped listeners on it: say so once."""
        for entry in [e for e in self.entries.values() if e.table == table]:
            warn_once(
                ("write", self.backend.safe_uri, entry.identifier, entry.version),
                "Rows written to %r stay queued for Listener %r, which cannot be loaded in this process "
                "(%s); a process that can load it computes them (e.g. pinnacle worker there).",
                table, entry.identifier, entry.error.cause,
            )

    def statuses(self, serving_version: t.Callable[[str], t.Optional[int]]) -> dict[str, dict[str, t.Any]]:
        """:func:`listener_status` of each skipped listener."""
        return {
            name: listener_status(self.backend, entry, serving_version(name))
            for (type_id, name), entry in list(self.entries.items()) if type_id == "Listener"
        }


def spec_of_record(backend: DataBackend, record: dict) -> ListenerSpec:
    """The storage of a stored listener version, read from its record and its model's record:
    no class is imported (the same spec :meth:`ListenerSpec.of` gives for the loaded listener)."""
    from pinnacle.components.datatype import Text, Vector

    data = record["data"]
    key = decode(data["key"])
    key_columns = (key,) if isinstance(key, str) else tuple(key.values()) if isinstance(key, dict) else tuple(key)
    model_ref = data.get("model") if isinstance(data.get("model"), dict) else {}
    model_data: dict = {}
    if model_ref.get("_ref") == "component":
        found = backend.get_component("Model", model_ref["identifier"], model_ref.get("version"))
        model_data = found["data"] if found is not None else {}
    elif "_path" in model_ref:  # inline
        model_data = model_ref
    datatype = model_data.get("datatype")
    try:
        datatype = decode(datatype) if isinstance(datatype, dict) else datatype
    except Exception:  # noqa: BLE001 - an unknown datatype: the spec keeps the names only
        datatype = None
    if isinstance(datatype, int) and not isinstance(datatype, bool):
        datatype = Vector(datatype)
    flatten = bool(model_data.get("flatten", False))
    single = isinstance(datatype, Vector) and not flatten
    return ListenerSpec(
        record["identifier"], data["select"], key_columns, model_ref.get("uuid", ""), record["version"],
        flatten=flatten, text=isinstance(datatype, Text),
        dim=datatype.dim if single else None, dtype=datatype.dtype if single else "",
    )


def listener_status(backend: DataBackend, entry: NotLoadable, serving_version: t.Optional[int]) -> dict[str, t.Any]:
    """``status()`` of a listener not loadable here: the counts of its serving version (and of
    the version being built), read without its model, with ``loadable: False`` and the reason."""
    serving = entry.version if serving_version is None else serving_version
    out: dict[str, t.Any] = {}
    record = backend.get_component("Listener", entry.identifier, serving)
    if record is not None:
        out.update(backend.queue_status(spec_of_record(backend, record)))
    out["version"] = serving
    if serving != entry.version:
        latest = backend.get_component("Listener", entry.identifier, entry.version)
        if latest is not None:
            out["building"] = {"version": entry.version, **backend.queue_status(spec_of_record(backend, latest))}
    out["loadable"] = False
    out["error"] = str(entry.error)
    return out
