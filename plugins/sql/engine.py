"""The SQLAlchemy engine for a URI (its dialect, ``dialects/``, adds its settings), and the
:class:`~pinnacle.errors.BackendError` a driver error becomes.

Every new connection gets a bounded lock wait (``lock_timeout_s``, else
``$PINNACLE_LOCK_TIMEOUT_S``, else :data:`DEFAULT_LOCK_TIMEOUT_S`): PostgreSQL's
``lock_timeout``, MySQL/MariaDB's ``innodb_lock_wait_timeout`` and ``lock_wait_timeout``,
SQLite's ``busy_timeout``. :func:`backend_error` names that
setting when a wait runs past it, and says so when the connection was lost, could not be
made, or the disk is full.

Example:
    >>> engine = create_engine("sqlite://", lock_timeout_s=5)
    >>> with engine.connect() as conn:
    ...     conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    5000
"""

from __future__ import annotations

import os
import typing as t

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pinnacle.errors import BackendError, ConfigError
from pinnacle.plugins.sql.dialects import dialect_class

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["create_engine", "normalise_url", "lock_timeout_option", "backend_error", "driver_errors", "DEFAULT_LOCK_TIMEOUT_S"]

#: Driver chosen when the URI names only the database (``postgresql://``).
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_EXTRAS = {"psycopg": "postgres", "pymysql": "mysql"}
#: Seconds a statement waits for a lock another connection holds before it fails.
DEFAULT_LOCK_TIMEOUT_S = 60.0
#: Error codes of a full disk: SQLite, PostgreSQL (disk_full), MySQL/MariaDB (table full, disk full).
_DISK_FULL = {"SQLITE_FULL", "53100", 1114, 1021}


def normalise_url(uri: str) -> sa.URL:
    """A SQLAlchemy URL with pinnacle's default driver for bare ``postgresql://``/``mysql://``."""
    try:
        url = make_url(uri)
    except Exception as exc:
        raise ConfigError(f"Cannot parse database URI {uri!r}: {exc}") from exc
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql")
        backend = "postgresql"
    if "+" not in url.drivername and backend in _DEFAULT_DRIVERS:
        url = url.set(drivername=f"{backend}+{_DEFAULT_DRIVERS[backend]}")
    return url


def lock_timeout_option(options: dict) -> float:
    """Pop ``lock_timeout_s`` from ``options`` (SQLite's older ``busy_timeout_ms`` counts as
    one when it is the only one given); else ``$PINNACLE_LOCK_TIMEOUT_S`` (for ``pinnacle
    worker``), else :data:`DEFAULT_LOCK_TIMEOUT_S`."""
    seconds = options.pop("lock_timeout_s", None)
    if seconds is None and options.get("busy_timeout_ms") is not None:
        seconds = float(options["busy_timeout_ms"]) / 1000
    if seconds is None and os.environ.get("PINNACLE_LOCK_TIMEOUT_S"):
        try:
            seconds = float(os.environ["PINNACLE_LOCK_TIMEOUT_S"])
        except ValueError:
            raise ConfigError(f"PINNACLE_LOCK_TIMEOUT_S must be a number of seconds, got {os.environ['PINNACLE_LOCK_TIMEOUT_S']!r}.") from None
    seconds = DEFAULT_LOCK_TIMEOUT_S if seconds is None else seconds
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        raise ConfigError(f"lock_timeout_s must be a positive number of seconds, got {seconds!r}.")
    return float(seconds)


def create_engine(uri: str, *, lock_timeout_s: t.Optional[float] = None, **options: t.Any) -> sa.Engine:
    """Engine for ``uri``, with its dialect's settings (``dialects/``): SQLite gets WAL, a busy
    timeout and ``BEGIN IMMEDIATE`` transactions, MySQL/MariaDB ``READ COMMITTED``; and on every
    database lock waits bounded by ``lock_timeout_s``."""
    url = normalise_url(uri)
    driver = url.get_driver_name()
    dialect = dialect_class(url.get_backend_name())
    seconds = lock_timeout_option({"lock_timeout_s": lock_timeout_s, **options})
    try:
        engine = dialect.create_engine(url, **options)
    except ImportError as exc:
        from pinnacle.errors import MissingDependencyError

        extra = _EXTRAS.get(driver, "all")
        raise MissingDependencyError(
            f"The {driver!r} driver for {url.get_backend_name()} is not installed. "
            f"Install it with: pip install 'pinnacle[{extra}]'"
        ) from exc
    _bound_lock_waits(engine, dialect, seconds)
    return engine


def _bound_lock_waits(engine: sa.Engine, dialect: type["Dialect"], seconds: float) -> None:
    """Every new connection runs the dialect's session settings: the lock-wait bound, and
    what else its database needs (``Dialect.session_sql``)."""
    statements = list(dialect.session_sql)
    if dialect.lock_timeout_sql:
        statements.append(dialect.lock_timeout_sql.format(ms=max(1, round(seconds * 1000)), s=max(1, round(seconds))))
    if not statements:
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # runs after the dialect's own connect settings
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        dbapi_connection.commit()  # a session setting, not left inside an open transaction


def driver_errors(engine: sa.Engine) -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the database failed": SQLAlchemy's wrappers of driver errors,
    its pool and invalidated-transaction errors, and the driver's own base ``Error``."""
    errors: list[type[BaseException]] = [sa.exc.DBAPIError, sa.exc.PendingRollbackError, sa.exc.TimeoutError]
    dbapi = getattr(engine.dialect, "dbapi", None)
    base = getattr(dbapi, "Error", None)
    if isinstance(base, type) and issubclass(base, BaseException):
        errors.append(base)
    return tuple(errors)


def _codes(orig: BaseException) -> set:
    """The driver's codes of ``orig``: SQLSTATE (psycopg; MySQL drivers may set a generic
    one), SQLite's error name, MySQL's errno."""
    codes = {getattr(orig, attribute, None) for attribute in ("sqlstate", "sqlite_errorname")}
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        codes.add(args[0])
    return codes - {None, ""}


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def backend_error(what: str, exc: BaseException, dialect: "Dialect", lock_timeout_s: float, where: str) -> BackendError:
    """The :class:`BackendError` for driver error ``exc`` raised while doing ``what`` on ``where``
    (a URI without its password); ``.orig`` is the driver's exception.

    Example:
        >>> import sqlite3
        >>> from pinnacle.plugins.sql.dialects import dialect_class
        >>> full = sqlite3.OperationalError("database or disk is full")
        >>> full.sqlite_errorname = "SQLITE_FULL"
        >>> print(backend_error("insert into 'docs'", full, dialect_class("sqlite"), 60, "sqlite:///d.db"))
        insert into 'docs' failed on sqlite:///d.db: the disk is full (database or disk is full); nothing of this call was written. Free space and call again.
    """
    orig = getattr(exc, "orig", None) or exc
    cause, codes = _one_line(orig), _codes(orig)
    head = f"{what} failed on {where}"
    transient = True
    if codes & set(dialect.lock_timeout_codes):
        message = (
            f"{head}: waited longer than {dialect.lock_timeout_setting} ({lock_timeout_s:g} s) for a lock another "
            f"connection holds ({cause}); nothing of this call was written. Raise the bound with "
            f"pinnacle.connect(uri, lock_timeout_s=...), or end the transaction that holds the lock."
        )
    elif codes & _DISK_FULL or "disk is full" in cause or "No space left on device" in cause:
        message = f"{head}: the disk is full ({cause}); nothing of this call was written. Free space and call again."
    elif getattr(exc, "connection_invalidated", False) or isinstance(exc, sa.exc.PendingRollbackError):
        message = (
            f"{head}: the connection was lost (the server restarted or ended it): {cause}. The call's "
            f"transaction was rolled back (unless it was lost during COMMIT); the next call reconnects."
        )
    elif isinstance(exc, sa.exc.OperationalError) and exc.statement is None:
        message = f"{head}: cannot connect to the database: {cause}"
    else:
        message = f"{head}: {cause}"
        # OperationalError: the database's side (server gone, locked, out of space), not the statement.
        transient = isinstance(exc, sa.exc.OperationalError)
    return BackendError(message, orig, transient=transient)
