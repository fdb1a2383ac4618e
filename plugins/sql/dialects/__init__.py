"""One :class:`~pinnacle.plugins.sql.dialects.base.Dialect` per SQL database, chosen at connect.

Each database is a module here ending with a ``dialect`` alias, as in SQLAlchemy
(``dialects/<db>/<driver>.py``): ``sqlite``, ``postgresql`` and ``mysql`` (MySQL and
MariaDB). The module is imported when a database of its kind is connected.

Example:
    >>> import sqlalchemy as sa
    >>> dialect_for(sa.create_engine("sqlite://"))
    SQLiteDialect()
    >>> dialect_class("mariadb").name
    'mysql'
"""

from __future__ import annotations

import importlib
import typing as t

from pinnacle.errors import ConfigError

if t.TYPE_CHECKING:
    import sqlalchemy as sa

    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["dialect_class", "dialect_for"]

#: SQLAlchemy's dialect name -> the module here that serves it.
_MODULES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def dialect_class(name: str) -> type["Dialect"]:
    """The dialect class for SQLAlchemy's dialect (or URL backend) ``name``.

    Raises:
        ConfigError: no module here serves ``name``; the message lists those that do.
    """
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"The SQL backend does not support {name!r} databases; supported are {sorted(_MODULES)}.")
    return importlib.import_module(f"{__name__}.{module}").dialect


def dialect_for(engine: "sa.Engine") -> "Dialect":
    """The dialect of ``engine``'s database (one per backend, made when it connects)."""
    return dialect_class(engine.dialect.name)(engine)
