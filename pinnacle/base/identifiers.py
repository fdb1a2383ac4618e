"""Validation of names that reach SQL or collection names: components, tables, columns."""

from __future__ import annotations

import re

from pinnacle.errors import ConfigError

__all__ = ["validate_identifier", "validate_column", "validate_table_name", "MAX_IDENTIFIER_LENGTH"]

MAX_IDENTIFIER_LENGTH = 40
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OUTPUTS_PREFIX = "_outputs__"
_VERSION_SUFFIX = re.compile(r"__v[0-9]{1,9}$")


def validate_identifier(name: object, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe identifier, else raise :class:`ConfigError`.

    Safe means: a letter first, then letters, digits, ``_`` or ``-``, at most 40
    characters. Names are checked before any SQL is built from them.

    Example:
        >>> validate_identifier("docs-emb")
        'docs-emb'
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or len(name) > MAX_IDENTIFIER_LENGTH:
        raise ConfigError(
            f"Invalid {what} {name!r}: use a letter followed by letters, digits, '_' or '-', "
            f"at most {MAX_IDENTIFIER_LENGTH} characters (e.g. 'docs-emb')."
        )
    return name


def validate_column(name: object, table: str | None = None) -> str:
    """Return ``name`` if it is a safe column name (letters, digits, ``_``; 63 chars max).

    Example:
        >>> validate_column("text")
        'text'
    """
    if not isinstance(name, str) or not _COLUMN.match(name) or len(name) > 63:
        where = f" in table {table!r}" if table else ""
        raise ConfigError(
            f"Invalid column name {name!r}{where}: use letters, digits and '_' "
            "(not starting with a digit), at most 63 characters."
        )
    return name


def validate_table_name(name: object, what: str = "table name") -> str:
    """Return ``name`` if it is a safe table name: an identifier, or a listener's outputs table.

    An outputs table is ``_outputs__<listener>`` or ``_outputs__<listener>__v<N>``, where
    ``<listener>`` is a valid identifier.

    Example:
        >>> validate_table_name("_outputs__docs-emb__v1")
        '_outputs__docs-emb__v1'
    """
    if isinstance(name, str) and name.startswith(_OUTPUTS_PREFIX):
        listener = _VERSION_SUFFIX.sub("", name[len(_OUTPUTS_PREFIX) :])
        try:
            validate_identifier(listener, "listener identifier")
        except ConfigError:
            raise ConfigError(
                f"Invalid {what} {name!r}: an outputs table is '_outputs__' followed by a listener "
                "identifier (e.g. '_outputs__docs-emb')."
            ) from None
        return name
    return validate_identifier(name, what)
