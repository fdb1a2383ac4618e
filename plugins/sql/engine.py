"""Creating the SQLAlchemy engine for a URI; its dialect (``dialects/``) adds its settings."""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.dialects import dialect_class

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
    """Engine for ``uri``, with its dialect's settings (``dialects/``): SQLite gets WAL, a busy
    timeout and ``BEGIN IMMEDIATE`` transactions, MySQL/MariaDB ``READ COMMITTED``."""
    url = normalise_url(uri)
    driver = url.get_driver_name()
    dialect = dialect_class(url.get_backend_name())
    try:
        return dialect.create_engine(url, **options)
    except ImportError as exc:
        from pinnacle.errors import MissingDependencyError

        extra = _EXTRAS.get(driver, "all")
        raise MissingDependencyError(
            f"The {driver!r} driver for {url.get_backend_name()} is not installed. "
            f"Install it with: pip install 'pinnacle[{extra}]'"
        ) from exc
