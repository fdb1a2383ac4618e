"""pymongo's errors as pinnacle's: every driver error leaves the backend as :class:`BackendError`.

A value BSON cannot hold (a too large integer, an unencodable object) is the caller's
mistake and becomes :class:`ConfigError`; every :class:`pymongo.errors.PyMongoError`
(connection failures included) becomes :class:`BackendError` with the driver's exception
in ``.orig``, in a message that says what was being done and where.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing as t

from pinnacle.errors import BackendError, ConfigError

__all__ = ["backend_error", "translate_errors", "translate_public_methods"]


def backend_error(what: str, exc: BaseException, where: str = "") -> BackendError:
    """The :class:`BackendError` for pymongo error ``exc`` raised while doing ``what`` on ``where``.

    Example:
        >>> from pymongo.errors import ServerSelectionTimeoutError
        >>> err = backend_error("insert into 'docs'", ServerSelectionTimeoutError("db1:27017: [Errno 111] refused"), "mongodb://db1/app")
        >>> print(err)
        insert into 'docs' failed on mongodb://db1/app: cannot reach the MongoDB server (db1:27017: [Errno 111] refused); the next call tries again.
        >>> type(err.orig).__name__
        'ServerSelectionTimeoutError'
    """
    from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, DuplicateKeyError, ServerSelectionTimeoutError

    head = f"{what} failed" + (f" on {where}" if where else "")
    details = getattr(exc, "details", None) or {}
    errors = (details.get("writeErrors") or []) if isinstance(details, dict) else []
    cause = str(errors[0].get("errmsg", exc)) if errors else _one_line(exc)
    if isinstance(exc, DuplicateKeyError) or (isinstance(exc, BulkWriteError) and any(e.get("code") == 11000 for e in errors)):
        message = f"{head}: duplicate _id ({cause})"
    elif isinstance(exc, ServerSelectionTimeoutError):
        message = f"{head}: cannot reach the MongoDB server ({cause}); the next call tries again."
    elif isinstance(exc, (AutoReconnect, ConnectionFailure)):
        message = f"{head}: the connection to the MongoDB server was lost ({cause}); the next call reconnects."
    else:
        message = f"{head}: {cause}"
    return BackendError(message, exc, transient=isinstance(exc, ConnectionFailure))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) <= 500 else first[:500] + "..."


@contextlib.contextmanager
def translate_errors(what: str, where: str = "") -> t.Iterator[None]:
    """Driver errors as pinnacle errors: values BSON cannot hold are :class:`ConfigError`,
    every pymongo error :class:`BackendError` (see :func:`backend_error`)."""
    from bson.errors import InvalidDocument
    from pymongo.errors import PyMongoError

    try:
        yield
    except (InvalidDocument, OverflowError) as exc:
        raise ConfigError(f"{what}: a value cannot be stored in MongoDB: {exc}") from exc
    except PyMongoError as exc:
        raise backend_error(what, exc, where) from exc


def _what(name: str, args: tuple) -> str:
    """``"claim_work (listener 'emb')"``: a method and what it was about, for messages."""
    first = args[0] if args else None
    if isinstance(first, str):
        return f"{name} ({first!r})"
    identifier = getattr(first, "identifier", None)
    return f"{name} (listener {identifier!r})" if isinstance(identifier, str) else name


def _translating(name: str, method: t.Callable) -> t.Callable:
    """``method`` with pymongo errors raised as :class:`BackendError` (generators too)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generate(self, *args, **kwargs):
            with translate_errors(_what(name, args), getattr(self, "safe_uri", "")):
                yield from method(self, *args, **kwargs)

        return generate

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with translate_errors(_what(name, args), getattr(self, "safe_uri", "")):
            return method(self, *args, **kwargs)

    return call


def translate_public_methods(cls: type) -> type:
    """Wrap every public method of the core's store contracts (``pinnacle.backends``) that
    ``cls`` has, so that no pymongo error leaves it bare. Returns ``cls``."""
    names = {
        name
        for base in cls.__mro__ if base.__module__.startswith("pinnacle.backends")
        for name, value in vars(base).items() if not name.startswith("_") and inspect.isfunction(value)
    }
    for name in sorted(names):
        method = getattr(cls, name)
        if inspect.isfunction(method) and not getattr(method, "__wrapped__", None):
            setattr(cls, name, _translating(name, method))
    return cls
