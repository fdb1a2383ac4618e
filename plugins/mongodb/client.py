"""Opening a MongoDB client: URIs, pinnacle's own options, mongomock, and server features.

``mongodb://`` and ``mongodb+srv://`` URIs open a :class:`pymongo.MongoClient`.
``mongomock://host/db`` opens an in-memory :mod:`mongomock` client; every client opened
in this process for the same ``host:port`` shares one store, as clients of one server do.
"""

from __future__ import annotations

import dataclasses as dc
import logging
import re
import typing as t
from urllib.parse import parse_qsl, unquote, urlencode

from pinnacle._deps import require
from pinnacle.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["Options", "Features", "open_client", "open_raw", "server_features", "decide", "mask_password"]

#: Database used when the URI names none (``mongodb://host:27017``).
DEFAULT_DATABASE = "pinnacle"
_SWITCH = ("auto", "on", "off")
_MOCK_STORES: dict[str, t.Any] = {}


@dc.dataclass(frozen=True)
class Options:
    """pinnacle's own options of the MongoDB backend (keyword arguments or URI query parameters).

    Args:
        transactions: ``"auto"`` (use them where the server has them: a replica set or a
            sharded cluster), ``"on"`` (require them) or ``"off"``.
        change_stream: ``"auto"``, ``"on"`` or ``"off"``: read a change stream to catch writes
            made by other clients (needs a replica set or a sharded cluster).
        reconcile_every: Seconds between reconcile passes (``None``: every drain without a
            change stream, every 600 s with one).
        lease_s: Seconds a worker holds claimed queue entries before others may take them.
        listener_ttl: Seconds this process caches the list of listeners per collection (0: read it
            on every write, one small query).
        tombstone_ttl: Seconds the marker of a removed output is kept (see docs/backends/mongodb.md).
    """

    transactions: str = "auto"
    change_stream: str = "auto"
    reconcile_every: t.Optional[float] = None
    lease_s: float = 600.0
    listener_ttl: float = 0.0
    tombstone_ttl: float = 86400.0

    def __post_init__(self) -> None:
        for name in ("transactions", "change_stream"):
            if getattr(self, name) not in _SWITCH:
                raise ConfigError(f"MongoDB option {name}={getattr(self, name)!r} is not valid; valid ones are {list(_SWITCH)}.")
        for name in ("reconcile_every", "lease_s", "listener_ttl", "tombstone_ttl"):
            value = getattr(self, name)
            if value is None and name == "reconcile_every":
                continue
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"MongoDB option {name} must be a number of seconds >= 0, got {value!r}.")
        if self.lease_s <= 0:
            raise ConfigError(f"MongoDB option lease_s must be positive, got {self.lease_s!r}.")

    @classmethod
    def split(cls, uri: str, options: dict[str, t.Any]) -> tuple[str, "Options", dict[str, t.Any]]:
        """``(uri without pinnacle's query parameters, Options, the client's own options)``."""
        names = {f.name for f in dc.fields(cls)}
        ours: dict[str, t.Any] = {k: options.pop(k) for k in list(options) if k in names}
        base, _, query = uri.partition("?")
        kept = []
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in names:
                ours.setdefault(key, _number(key, value))
            else:
                kept.append((key, value))
        clean = base + ("?" + urlencode(kept) if kept else "")
        return clean, cls(**ours), options


def _number(key: str, value: str) -> t.Any:
    if key in ("transactions", "change_stream"):
        return value
    if key == "reconcile_every" and value.lower() in ("", "none"):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"MongoDB URI option {key}={value!r} must be a number of seconds.") from None


def mask_password(uri: str) -> str:
    """``uri`` with its password replaced by ``***``.

    Example:
        >>> mask_password("mongodb://app:s3cret@db.example:27017/docs")
        'mongodb://app:***@db.example:27017/docs'
    """
    return re.sub(r"^([a-z+]+://[^:/@]*):[^/]*@", r"\1:***@", uri)


@dc.dataclass(frozen=True)
class Features:
    """What the server offers: multi-document transactions and change streams."""

    kind: str  # "standalone", "replica set", "sharded", "mongomock"
    transactions: bool
    change_streams: bool


def server_features(hello: t.Optional[t.Mapping[str, t.Any]]) -> Features:
    """Features of a server from its ``hello`` reply (``None``: the command is not available).

    Replica sets have transactions from wire version 7 (MongoDB 4.0), sharded clusters
    from 8 (4.2); both have change streams from 6 (3.6). A standalone server has neither.

    Example:
        >>> server_features({"setName": "rs0", "maxWireVersion": 17})
        Features(kind='replica set', transactions=True, change_streams=True)
        >>> server_features({"maxWireVersion": 17}).transactions
        False
    """
    if not hello:
        return Features("standalone", False, False)
    wire = int(hello.get("maxWireVersion", 0))
    if hello.get("msg") == "isdbgrid":
        return Features("sharded", wire >= 8, wire >= 6)
    if hello.get("setName"):
        return Features("replica set", wire >= 7, wire >= 6)
    return Features("standalone", False, False)


def decide(option: str, available: bool, what: str, safe_uri: str, kind: str) -> bool:
    """Whether to use ``what``: ``auto`` follows the server; ``on`` requires it."""
    if option == "off":
        return False
    if option == "on" and not available:
        raise ConfigError(
            f"{what}='on' but {safe_uri} is a {kind} server without {what.replace('_', ' ')}s; "
            f"use a replica set, or {what}='auto'."
        )
    return available


def _parse(uri: str) -> tuple[str, str, str, str]:
    """``(scheme, pymongo uri, hosts, database)``, without DNS lookups (``mongodb+srv``)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("mongodb", "mongodb+srv", "mongomock"):
        raise ConfigError(f"Invalid MongoDB URI {mask_password(uri)!r}: expected mongodb://host/db, mongodb+srv://... or mongomock://host/db.")
    scheme = scheme.lower()
    real = "mongodb://" + rest if scheme == "mongomock" else uri
    hosts, _, path = rest.partition("/")
    hosts = hosts.rsplit("@", 1)[-1]
    database = unquote(path.split("?", 1)[0])
    if not hosts:
        raise ConfigError(f"MongoDB URI {mask_password(uri)!r} names no host; e.g. mongodb://localhost:27017/docs.")
    return scheme, real, hosts, database


def open_client(uri: str, client_options: dict[str, t.Any]) -> tuple[t.Any, t.Any, bool]:
    """``(client, database, is_mock)`` for ``uri`` (already stripped of pinnacle's options)."""
    scheme, real, hosts, database = _parse(uri)
    name = database or DEFAULT_DATABASE
    if scheme == "mongomock":
        mongomock = require("mongomock", extra="test")
        from mongomock.store import ServerStore

        store = _MOCK_STORES.setdefault(hosts, ServerStore())
        client = mongomock.MongoClient(real, _store=store, **client_options)
        return client, client.get_database(name), True
    pymongo = require("pymongo", extra="mongodb")
    client_options.setdefault("serverSelectionTimeoutMS", 10_000)
    try:
        client = pymongo.MongoClient(uri, **client_options)
    except (pymongo.errors.ConfigurationError, pymongo.errors.InvalidURI, TypeError, ValueError) as exc:
        ours = [f.name for f in dc.fields(Options)]
        raise ConfigError(f"Cannot open {mask_password(uri)}: {exc} (pinnacle's own options are {ours}).") from exc
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        client.close()
        transient = isinstance(exc, pymongo.errors.ConnectionFailure)
        raise BackendError(f"Cannot connect to {mask_password(uri)}: {exc}", exc, transient=transient) from exc
    return client, client.get_database(name), False


def read_features(client: t.Any, is_mock: bool) -> Features:
    if is_mock:
        return Features("mongomock", False, False)
    return server_features(client.admin.command("hello"))


def open_raw(uri: str) -> tuple[t.Any, t.Any]:
    """``(client, database)`` that bypass pinnacle: another application writing the same data.

    For ``mongomock://`` the client shares this process's in-memory store.
    """
    clean, _, client_options = Options.split(uri, {})
    client, db, _ = open_client(clean, client_options)
    return client, db
