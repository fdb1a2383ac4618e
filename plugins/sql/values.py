"""Checking values against column types before any SQL runs.

A value the database cannot store is refused at the boundary, naming the row, the column
and the cause, and nothing of the call is written. (A value the database *can* store but
a model cannot use, such as ``None`` or ``''`` in a text column, is stored; the listener
records that row as failed.)
"""

from __future__ import annotations

import datetime as _dt
import json
import typing as t

import sqlalchemy as sa

from pinnacle.errors import ConfigError

__all__ = ["check_values"]

_MAX_REPORTED = 10


def _problem(column: sa.Column, value: t.Any) -> t.Optional[str]:
    if value is None:
        return None if column.nullable or column.primary_key else "NULL is not allowed"
    kind = column.type
    if isinstance(kind, sa.JSON):
        if isinstance(value, (bytes, bytearray)):
            return "bytes cannot be stored as JSON"
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError) as exc:
            return f"not JSON-serialisable ({exc})"
        return _utf8_problem(encoded)
    if isinstance(kind, sa.Boolean):
        return None if isinstance(value, bool) else f"expected bool, got {type(value).__name__}"
    if isinstance(kind, sa.Integer):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected int, got {type(value).__name__}"
    if isinstance(kind, (sa.Float, sa.Numeric)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {type(value).__name__}"
    if isinstance(kind, sa.LargeBinary):
        return None if isinstance(value, (bytes, bytearray, memoryview)) else f"expected bytes, got {type(value).__name__}"
    if isinstance(kind, (sa.DateTime, sa.Date)):
        return None if isinstance(value, (_dt.datetime, _dt.date)) else f"expected a datetime, got {type(value).__name__}"
    if isinstance(kind, sa.String):  # Text, VARCHAR, ...
        if isinstance(value, (bytes, bytearray)):
            return "expected text, got bytes (decode them to str first)"
        if not isinstance(value, str):
            return f"expected text, got {type(value).__name__}"
        return _utf8_problem(value)
    return None


def _utf8_problem(text: str) -> t.Optional[str]:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid UTF-8 text ({exc.reason} at position {exc.start})"
    return None


def _checker(column: t.Optional[sa.Column]) -> t.Callable[[t.Any], t.Optional[str]]:
    """``_problem`` for one column, with the common case (a value of the column's own type)
    answered at once: checking a batch costs little more than reading it."""
    if column is None:
        return lambda value: None
    kind = column.type
    fast: tuple[type, ...] = ()
    if isinstance(kind, sa.JSON) or isinstance(kind, (sa.DateTime, sa.Date)):
        fast = ()
    elif isinstance(kind, sa.Boolean):
        fast = (bool,)
    elif isinstance(kind, sa.Integer):
        fast = (int,)
    elif isinstance(kind, (sa.Float, sa.Numeric)):
        fast = (int, float)
    elif isinstance(kind, sa.LargeBinary):
        fast = (bytes, bytearray, memoryview)
    elif isinstance(kind, sa.String):
        def text(value: t.Any) -> t.Optional[str]:
            if type(value) is str and value.isascii():  # ASCII is valid UTF-8
                return None
            return _problem(column, value)

        return text

    def check(value: t.Any) -> t.Optional[str]:
        return None if type(value) in fast else _problem(column, value)

    return check


def check_values(table: sa.Table, rows: t.Sequence[t.Mapping[str, t.Any]], what: str) -> None:
    """Raise :class:`ConfigError` listing every value of ``rows`` that ``table`` cannot store."""
    problems = []
    checkers: dict[str, t.Callable[[t.Any], t.Optional[str]]] = {}
    for index, row in enumerate(rows):
        for name, value in row.items():
            check = checkers.get(name)
            if check is None:
                check = checkers[name] = _checker(table.c.get(name))
            problem = check(value)
            if problem:
                problems.append(f"row {index}, column {name!r}: {problem}")
    if problems:
        shown = "; ".join(problems[:_MAX_REPORTED])
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise ConfigError(f"{what}: nothing was written, {len(problems)} value(s) cannot be stored: {shown}{more}.")
