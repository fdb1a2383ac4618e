"""Documents going in and out: ids, filters, field names, the key hash, driver errors.

Ids: a generated ``_id`` is an :class:`~bson.objectid.ObjectId` in the database and its
24-character hex string everywhere in pinnacle's API (``insert`` returns it, rows and
outputs carry it, ``select(ids=...)``/``get`` take it). Given ids are kept as they are. A
24-hex string given back to pinnacle matches both the ObjectId and a string ``_id`` with
the same characters.

Filters: ``{field: value}`` is equality, ``{field: [a, b]}`` means any of (as on SQL), and
native MongoDB filters pass through: ``{"n": {"$gt": 3}}``, ``{"$or": [...]}``.
"""

from __future__ import annotations

import hashlib
import typing as t

from bson import Int64, ObjectId
from bson.binary import Binary
from bson import encode as bson_encode

from pinnacle.errors import ConfigError
from pinnacle.plugins.mongodb.errors import translate_errors
from pinnacle.plugins.mongodb.vectors import from_bson

__all__ = [
    "public_id",
    "plain",
    "native_ids",
    "translate_where",
    "public_row",
    "check_documents",
    "key_hash",
    "translate_errors",
    "chunks",
]

#: Fields holding a document id: translated between ObjectId and hex string.
ID_FIELDS = ("_id", "_source")
_LIST_OPERATORS = ("$in", "$nin")


def public_id(value: t.Any) -> t.Any:
    """The id pinnacle shows: an ObjectId's hex string, an ``Int64`` as ``int``, anything else unchanged."""
    if isinstance(value, ObjectId):
        return str(value)
    return int(value) if type(value) is Int64 else value


def plain(value: t.Any) -> t.Any:
    """A stored value as Python's own types, whichever way it was decoded: pymongo decodes
    BSON int64 as ``Int64`` and binary subtype 0 as ``bytes``; mongomock keeps ``int`` and
    ``Binary``. Both become ``int`` and ``bytes`` (nested documents and arrays too).

    Example:
        >>> import bson
        >>> type(bson.decode(bson.encode({"n": 2**40}))["n"]).__name__  # what a server hands back
        'Int64'
        >>> plain(bson.decode(bson.encode({"n": 2**40, "m": {"k": [2**40]}, "b": Binary(b"ab", 0)})))
        {'n': 1099511627776, 'm': {'k': [1099511627776]}, 'b': b'ab'}
    """
    kind = type(value)
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    if kind is Int64:
        return int(value)
    if kind is Binary and value.subtype == 0:
        return bytes(value)
    return value


def native_ids(value: t.Any) -> list[t.Any]:
    """The stored ids that a public id may stand for.

    Example:
        >>> native_ids("a")
        ['a']
        >>> native_ids("65f000000000000000000000")
        ['65f000000000000000000000', ObjectId('65f000000000000000000000')]
    """
    if isinstance(value, ObjectId):
        return [value, str(value)]
    if isinstance(value, str) and len(value) == 24 and ObjectId.is_valid(value):
        return [value, ObjectId(value)]
    return [value]


def expand_ids(values: t.Iterable[t.Any]) -> list[t.Any]:
    """Every stored id any of ``values`` may stand for."""
    out: list[t.Any] = []
    for value in values:
        out.extend(native_ids(value))
    return out


def translate_where(where: t.Optional[t.Mapping[str, t.Any]]) -> dict:
    """A MongoDB filter for pinnacle's ``where``.

    Example:
        >>> translate_where({"topic": ["a", "b"], "n": {"$gt": 3}})
        {'topic': {'$in': ['a', 'b']}, 'n': {'$gt': 3}}
    """
    if where is None:
        return {}
    if not isinstance(where, t.Mapping):
        raise ConfigError(f"where must be a dict of field -> value (or a MongoDB filter), got {type(where).__name__}.")
    out: dict[str, t.Any] = {}
    for key, value in where.items():
        if not isinstance(key, str):
            raise ConfigError(f"where: field names are strings, got {key!r}.")
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"where: {key} takes a list of filters, got {type(value).__name__}.")
            out[key] = [translate_where(v) for v in value]
        elif key.startswith("$"):
            out[key] = value  # $expr, $text, $jsonSchema...: the server checks them
        else:
            out[key] = _condition(key, value)
    return out


def _condition(key: str, value: t.Any) -> t.Any:
    is_id = key in ID_FIELDS
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        return {"$in": expand_ids(values) if is_id else values}
    if isinstance(value, t.Mapping) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
        if not is_id:
            return dict(value)
        ops = {}
        for op, arg in value.items():
            if op in _LIST_OPERATORS and isinstance(arg, (list, tuple, set)):
                ops[op] = expand_ids(arg)
            elif op == "$eq":
                ops["$in"] = native_ids(arg)
            elif op == "$ne":
                ops["$nin"] = native_ids(arg)
            else:
                ops[op] = arg
        return ops
    if is_id:
        found = native_ids(value)
        return found[0] if len(found) == 1 else {"$in": found}
    return value


def public_row(doc: t.Mapping[str, t.Any], internal: bool = False) -> dict:
    """A stored document as pinnacle shows it (``internal``: one of pinnacle's collections)."""
    row = {k: plain(v) for k, v in doc.items()}
    if "_id" in row:
        row["_id"] = public_id(row["_id"])
    if internal:
        if "_source" in row:
            row["_source"] = public_id(row["_source"])
        if "_output" in row:
            row["_output"] = from_bson(row["_output"])
    return row


def check_documents(table: str, rows: t.Any) -> list[dict]:
    """Copies of ``rows`` checked for what MongoDB cannot store or pinnacle cannot track."""
    if isinstance(rows, t.Mapping) or not isinstance(rows, (list, tuple)) or not all(isinstance(r, t.Mapping) for r in rows):
        raise ConfigError(f"insert into {table!r}: pass a list of dicts, e.g. [{{'text': '...'}}].")
    docs = []
    for row in rows:
        check_fields(table, row.keys(), "insert into")
        doc = dict(row)
        if doc.get("_id") is None:
            doc["_id"] = ObjectId()
        elif isinstance(doc["_id"], (dict, list, tuple, set)):
            raise ConfigError(
                f"insert into {table!r}: _id {doc['_id']!r} is not a scalar; pinnacle tracks rows by a "
                "string, number or ObjectId _id."
            )
        docs.append(doc)
    return docs


def check_fields(table: str, names: t.Iterable[t.Any], verb: str) -> None:
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("$") or "." in name or "\x00" in name:
            raise ConfigError(
                f"{verb} {table!r}: invalid field name {name!r}: field names are non-empty strings "
                "without '.', NUL or a leading '$'."
            )


_MISSING = {"$pinnacle": "missing"}


def key_hash(doc: t.Optional[t.Mapping[str, t.Any]], keys: t.Sequence[str]) -> t.Optional[str]:
    """A short hash of the key fields' values in ``doc`` (``None`` for no document).

    An output stores the hash of the values it was computed from; a document whose
    current values hash differently needs a new output.
    """
    if doc is None:
        return None
    values = {str(i): doc.get(k, _MISSING) for i, k in enumerate(keys)}
    return hashlib.blake2b(bson_encode(values), digest_size=12).hexdigest()


def chunks(items: t.Sequence[t.Any], size: int = 5000) -> t.Iterator[list[t.Any]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
