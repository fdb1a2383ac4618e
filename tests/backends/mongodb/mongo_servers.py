"""Where the MongoDB plugin tests run: mongomock always, a real server when
``PINNACLE_MONGODB_URI`` is set (as the shared suite does, tests/conftest.py)."""

from __future__ import annotations

import os
import typing as t

#: ``mongodb://host:27017/?replicaSet=rs0``: the server for the ``[mongodb]`` variants (none: they skip).
SERVER = os.environ.get("PINNACLE_MONGODB_URI")
UNSET = "real MongoDB: set PINNACLE_MONGODB_URI=mongodb://host:27017/db (a replica set tests transactions)"

_reachable: dict[str, t.Optional[str]] = {}


def database_uri(kind: str, name: str, server: t.Optional[str] = SERVER) -> str:
    """The URI of database ``name`` on mongomock or on ``server`` (its own database name replaced).

    Example:
        >>> database_uri("mongodb", "pn_x", "mongodb://u:p@h1,h2/app?replicaSet=rs0")
        'mongodb://u:p@h1,h2/pn_x?replicaSet=rs0'
        >>> database_uri("mongomock", "pn_x")
        'mongomock://localhost/pn_x'
    """
    if kind == "mongomock":
        return f"mongomock://localhost/{name}"
    if not server:
        raise ValueError(UNSET)
    base, _, query = server.partition("?")
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def unreachable(server: str) -> t.Optional[str]:
    """Why ``server`` cannot be used (``None``: it answered ``ping``); asked once per run."""
    if server not in _reachable:
        import pymongo

        wait = {} if "serverselectiontimeoutms" in server.lower() else {"serverSelectionTimeoutMS": 3000}
        client = pymongo.MongoClient(server, **wait)
        try:
            client.admin.command("ping")
            _reachable[server] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            from pinnacle.plugins.mongodb.client import mask_password

            cause = (str(exc).splitlines() or [""])[0][:300]
            _reachable[server] = f"MongoDB server at {mask_password(server)} is not reachable: {type(exc).__name__}: {cause}"
        finally:
            client.close()
    return _reachable[server]


def stored_bytes(value: t.Any) -> bytes:
    """A binary field as a test reads it: ``bytes`` from pymongo (subtype 0), ``Binary`` from
    mongomock (a ``bytes`` subclass); tests accept both, as a server returns the first."""
    from bson.binary import Binary

    assert type(value) is bytes or (isinstance(value, Binary) and value.subtype == 0), f"not binary subtype 0: {value!r}"
    return bytes(value)
