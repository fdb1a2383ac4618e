"""Full-text indexes in the SQL databases' own engines, one module per database.

- ``sqlite``: an FTS5 external-content table over the column, kept current by triggers;
- ``postgresql``: a GIN index on the expression ``to_tsvector(language, column)``;
- ``mysql``: an InnoDB ``FULLTEXT`` index (MySQL and MariaDB).

The module is chosen by the backend's dialect (``dialect.name``), as the dialects
themselves are; each ends with a ``full_text`` alias, the class to build.

Example:
    >>> from pinnacle.plugins.sql.backend import SQLBackend
    >>> from pinnacle.backends.fulltext import TextIndexSpec
    >>> backend = SQLBackend("sqlite://")
    >>> backend.insert("docs", [{"_id": "a", "text": "error E-4471 on boot"}, {"_id": "b", "text": "fine"}])
    ['a', 'b']
    >>> index = full_text_for(backend, TextIndexSpec("docs-idx", "docs", "text"))
    >>> index.create()
    >>> [source for source, _ in index.search("E-4471", 5)]
    ['a']
"""

from __future__ import annotations

import importlib
import typing as t

from pinnacle.backends.fulltext import FullText, TextIndexSpec

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.backend import SQLBackend

__all__ = ["full_text_for"]

#: The dialect's name -> the module here that serves it.
_MODULES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}


def full_text_for(backend: "SQLBackend", spec: TextIndexSpec) -> t.Optional[FullText]:
    """The :class:`FullText` of ``backend``'s database for ``spec``, or ``None`` if it has none."""
    module = _MODULES.get(backend.dialect.name)
    if module is None:
        return None
    cls = importlib.import_module(f"{__name__}.{module}").full_text
    return cls.open(backend, spec)
