"""SQL backend: SQLite (the embedded default), PostgreSQL and MySQL/MariaDB via SQLAlchemy.

Example:
    >>> from pinnacle.plugins.sql import connect
    >>> connect("sqlite://").dialect.name
    'sqlite'
"""

from pinnacle.plugins.sql.backend import SQLBackend

__all__ = ["SQLBackend", "connect"]


def connect(uri: str, **options) -> SQLBackend:
    """A :class:`SQLBackend` for a SQLAlchemy URI (``sqlite:///file.db``, ``postgresql://...``)."""
    return SQLBackend(uri, **options)
