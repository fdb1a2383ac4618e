"""Creating the SQLAlchemy engine for a URI, with per-dialect settings."""

from __future__ import annotations

import os
import typing as t

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pinnacle.errors import ConfigError

__all__ = ["create_engine", "normalise_url"]

#: Driver chosen when the URI names only the database (``postgresql://``).
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_EXTRAS = {"psycopg": "postgres", "pymysql": "mysql"}


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


def create_engine(uri: str, **options: t.Any) -> sa.Engine:
    """Engine for ``uri``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions."""
    url = normalise_url(uri)
    driver = url.get_driver_name()
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, **options)
        if url.get_backend_name() in ("mysql", "mariadb"):
            # No gap locks: a worker's claim must not block writers' trigger inserts.
            options.setdefault("isolation_level", "READ COMMITTED")
        return sa.create_engine(url, pool_pre_ping=True, **options)
    except ImportError as exc:
        from pinnacle.errors import MissingDependencyError

        extra = _EXTRAS.get(driver, "all")
        raise MissingDependencyError(
            f"The {driver!r} driver for {url.get_backend_name()} is not installed. "
            f"Install it with: pip install 'pinnacle[{extra}]'"
        ) from exc


def _sqlite_engine(url: sa.URL, **options: t.Any) -> sa.Engine:
    if url.database and url.database != ":memory:":
        folder = os.path.dirname(os.path.abspath(url.database))
        os.makedirs(folder, exist_ok=True)
    busy_ms = int(options.pop("busy_timeout_ms", 60_000))
    engine = sa.create_engine(url, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False}, **options)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - trivial
        # One writer at a time, decided up front: no 'database is locked' on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
