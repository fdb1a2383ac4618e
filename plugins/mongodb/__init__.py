"""MongoDB backend: ``mongodb://``, ``mongodb+srv://`` (pymongo) and ``mongomock://`` (in memory).

Collections are tables; listeners' outputs, queues and failures live in collections of
the same database. See docs/backends/mongodb.md.

Example:
    >>> from pinnacle.plugins.mongodb import connect
    >>> connect("mongomock://localhost/example").insert("docs", [{"_id": "a", "text": "hi"}])
    ['a']
"""

from __future__ import annotations

import typing as t

from pinnacle._deps import require

__all__ = ["connect"]


def connect(uri: str, **options: t.Any):
    """A :class:`~pinnacle.plugins.mongodb.backend.MongoBackend` for ``uri``.

    Args:
        uri: ``mongodb://user:pass@host:27017/db``, ``mongodb+srv://...`` or ``mongomock://host/db``.
        **options: ``transactions``, ``change_stream``, ``reconcile_every``, ``lease_s``,
            ``listener_ttl``, ``tombstone_ttl`` (see
            :class:`~pinnacle.plugins.mongodb.client.Options`); others go to ``pymongo.MongoClient``.
    """
    require("pymongo", extra="mongodb")
    from pinnacle.plugins.mongodb.backend import MongoBackend

    return MongoBackend(uri, **options)
