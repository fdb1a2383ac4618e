"""Finding the data backend plugin for a URI scheme."""

from __future__ import annotations

import importlib
import typing as t
from importlib import metadata

from pinnacle.backends.base import DataBackend
from pinnacle.errors import ConfigError

__all__ = ["load_backend", "plugin_for_scheme", "DEFAULT_URI"]

#: Used by ``pinnacle.connect()`` with no argument: an embedded SQLite file here.
DEFAULT_URI = "sqlite:///pinnacle.db"

#: URI schemes served by the built-in plugins (``postgresql+psycopg`` -> ``postgresql``).
_BUILTIN = {
    "sqlite": "sql",
    "postgresql": "sql",
    "postgres": "sql",
    "mysql": "sql",
    "mariadb": "sql",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
    "mongomock": "mongodb",
}


def plugin_for_scheme(scheme: str) -> str:
    """Plugin name for a URI scheme: built-ins, then the ``pinnacle.plugins`` entry points."""
    base = scheme if scheme in _BUILTIN else scheme.split("+", 1)[0]
    if base in _BUILTIN:
        return _BUILTIN[base]
    for entry in metadata.entry_points(group="pinnacle.plugins"):
        if entry.name == base:
            return entry.value
    known = sorted(set(_BUILTIN) | {e.name for e in metadata.entry_points(group="pinnacle.plugins")})
    raise ConfigError(f"No pinnacle plugin for URI scheme {scheme!r}; known schemes are {known}.")


def load_backend(uri: t.Optional[str] = None, **options: t.Any) -> DataBackend:
    """Connect the plugin that serves ``uri`` (default: :data:`DEFAULT_URI`)."""
    uri = uri or DEFAULT_URI
    if "://" not in uri:
        raise ConfigError(f"Database URI {uri!r} has no scheme; e.g. 'sqlite:///docs.db' or 'postgresql://host/db'.")
    plugin = plugin_for_scheme(uri.split("://", 1)[0].lower())
    module_name = plugin if "." in plugin else f"pinnacle.plugins.{plugin}"
    module = importlib.import_module(module_name)
    return module.connect(uri, **options)
