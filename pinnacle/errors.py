"""Exceptions raised by pinnacle. Everything derives from :class:`PinnacleError`."""

from __future__ import annotations

__all__ = [
    "PinnacleError",
    "ConfigError",
    "StateError",
    "BackendError",
    "MissingDependencyError",
    "NotFoundError",
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
    """The database or compute backend failed. The driver's exception is kept in ``.orig``."""

    def __init__(self, message: str, orig: BaseException | None = None):
        super().__init__(message)
        self.orig = orig


class MissingDependencyError(PinnacleError, ImportError):
    """An optional dependency is not installed. The message gives the pip line."""
