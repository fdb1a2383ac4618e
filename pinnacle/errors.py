"""Exceptions raised by pinnacle. Everything derives from :class:`PinnacleError`."""

from __future__ import annotations

__all__ = [
    "PinnacleError",
    "ConfigError",
    "StateError",
    "BackendError",
    "MissingDependencyError",
    "NotFoundError",
    "NotLoadableError",
]


class PinnacleError(Exception):
    """Base class of every error pinnacle raises on purpose."""


class ConfigError(PinnacleError, ValueError):
    """A component, identifier, URI or argument is invalid. The message names the fix."""


class StateError(PinnacleError):
    """The request does not fit the current state (e.g. removing a model a listener uses)."""


class NotFoundError(PinnacleError, LookupError):
    """A component, table or row that was asked for does not exist."""


class BackendError(PinnacleError):
    """The database or compute backend failed. The driver's exception is kept in ``.orig``.

    ``transient`` says the same call may work later without a change on pinnacle's side:
    the server is unreachable or restarting, a connection was lost, a lock wait ran out,
    the disk is full. A ``pinnacle worker`` waits those out and stops on the others.
    """

    def __init__(self, message: str, orig: BaseException | None = None, *, transient: bool = False):
        super().__init__(message)
        self.orig = orig
        self.transient = transient


class MissingDependencyError(PinnacleError, ImportError):
    """An optional dependency is not installed. The message gives the pip line."""


class NotLoadableError(ConfigError):
    """A stored component cannot be built in this process: its class or a callable it names
    does not import here, or an artifact it needs is missing from the artifact store.

    Attributes:
        kind: ``"class"``, ``"callable"`` or ``"artifact"``.
        path: The class path (``module.Class``), callable path (``module:name``) or sha256.
        missing: The module that is not installed here (``None`` when the cause is another).
        cause: The original error, one line.
        component: ``"Model 'm'"``: the stored component whose record names ``path``
            (set by the datalayer; ``None`` until then).
    """

    def __init__(self, message: str, *, kind: str, path: str, missing: str | None = None, cause: str = "",
                 component: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.path = path
        self.missing = missing
        self.cause = cause or message
        self.component = component
