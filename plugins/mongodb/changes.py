"""Writes of other clients, read from a MongoDB change stream with a persisted resume token.

On a replica set or sharded cluster, ``pinnacle worker`` (every ``db.drain()``) reads the
database's change stream, filtered to the watched collections, and queues the documents
that were inserted, replaced, deleted or updated in a key field (through
:func:`~pinnacle.plugins.mongodb.reconcile.capture_sources`, which skips what pinnacle's
own write path already queued). After the queue writes, the stream's resume token is
stored in ``_pinnacle_state``; a worker that restarts resumes after it, so an event is
handled at least once and none is skipped. If the token is no longer in the oplog (the
worker was down too long) or the stream is invalidated, the stream restarts from now and
a full reconcile pass covers the gap.
"""

from __future__ import annotations

import logging
import typing as t

from pinnacle.backends.base import ListenerSpec
from pinnacle.plugins.mongodb.reconcile import capture_sources

logger = logging.getLogger(__name__)

__all__ = ["ChangeCapture", "TOKEN_KEY", "touched_fields"]

#: ``_pinnacle_state`` key of the resume token.
TOKEN_KEY = "mongodb/change-stream/resume-token"
#: Server error codes meaning the resume token cannot be used any more.
_LOST = {260, 280, 286}  # InvalidResumeToken, ChangeStreamFatalError, ChangeStreamHistoryLost
_DATA_EVENTS = ("insert", "update", "replace", "delete")
_RESET_EVENTS = ("drop", "rename", "dropDatabase", "invalidate")


def touched_fields(event: t.Mapping[str, t.Any]) -> set[str]:
    """Top-level fields an ``update`` event changed.

    Example:
        >>> sorted(touched_fields({"updateDescription": {"updatedFields": {"meta.n": 1}, "removedFields": ["text"]}}))
        ['meta', 'text']
    """
    desc = event.get("updateDescription") or {}
    names = list(desc.get("updatedFields") or {}) + list(desc.get("removedFields") or [])
    names += [a.get("field", "") for a in desc.get("truncatedArrays") or []]
    return {str(n).split(".", 1)[0] for n in names}


class ChangeCapture:
    """The change stream of the backend's database, kept open between calls of :meth:`poll`.

    Args:
        backend: The :class:`~pinnacle.plugins.mongodb.backend.MongoBackend`.
        open_stream: ``(pipeline, resume_after) -> stream``; default ``db.watch``. A stream
            has ``try_next()``, ``resume_token`` and ``close()``.
        max_events: Events handled per :meth:`poll` at most.
    """

    def __init__(self, backend: t.Any, open_stream: t.Optional[t.Callable[..., t.Any]] = None, max_events: int = 10_000):
        self.backend = backend
        self._open_stream = open_stream or self._watch
        self.max_events = max_events
        self.needs_reconcile = True  # writes before the stream was first opened
        self._stream: t.Any = None
        self._watched: frozenset[str] = frozenset()
        self._token: t.Any = None

    def _watch(self, pipeline: list, resume_after: t.Any) -> t.Any:
        return self.backend.db.watch(pipeline, resume_after=resume_after, max_await_time_ms=100)

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            finally:
                self._stream = None

    # -- the resume token --------------------------------------------------------------------
    def _load_token(self) -> t.Any:
        from bson import json_util

        text = self.backend.get_state(TOKEN_KEY)
        return None if text is None else json_util.loads(text)

    def _save_token(self, token: t.Any) -> None:
        from bson import json_util

        if token is not None and token != self._token:
            self.backend.set_state(TOKEN_KEY, json_util.dumps(token))
            self._token = token

    def _open(self, watched: frozenset[str]) -> None:
        self.close()
        pipeline = [{"$match": {"$or": [
            {"operationType": {"$in": list(_DATA_EVENTS)}, "ns.coll": {"$in": sorted(watched)}},
            {"operationType": {"$in": list(_RESET_EVENTS)}},
        ]}}]
        token = self._load_token()
        self._token = token
        self._stream = self._open_stream(pipeline, token)
        self._watched = watched
        logger.info("Change stream on %s: watching %s%s", self.backend.safe_uri, sorted(watched),
                    " (resumed)" if token is not None else "")

    def _lost(self, reason: str) -> None:
        logger.warning("Change stream restarts from now (%s); a reconcile pass covers the gap", reason)
        self.close()
        self.backend.set_state(TOKEN_KEY, None)
        self._token = None
        self.needs_reconcile = True

    # -- reading -----------------------------------------------------------------------------
    def poll(self, specs: t.Sequence[ListenerSpec]) -> int:
        """Queue the documents changed since the last call; returns how many ids were queued."""
        from pymongo.errors import ConnectionFailure, OperationFailure

        by_table: dict[str, list[ListenerSpec]] = {}
        for spec in specs:
            by_table.setdefault(spec.table, []).append(spec)
        watched = frozenset(by_table)
        if not watched:
            self.close()
            return 0
        events: list[t.Mapping[str, t.Any]] = []
        try:
            if self._stream is None or watched != self._watched:
                self._open(watched)
            while len(events) < self.max_events:
                change = self._stream.try_next()
                if change is None:
                    break
                events.append(change)
        except ConnectionFailure:
            self.close()  # reopened from the saved token next time
            raise
        except OperationFailure as exc:
            if exc.code in _LOST:
                self._lost(f"resume token unusable: {exc}")
                return 0
            raise
        queued = self._handle(events, by_table)
        if self._stream is not None:
            self._save_token(self._stream.resume_token)  # after the queue writes: at least once
        return queued

    def _handle(self, events: t.Sequence[t.Mapping[str, t.Any]], by_table: dict[str, list[ListenerSpec]]) -> int:
        wanted: dict[ListenerSpec, dict[t.Any, None]] = {}
        for event in events:
            op = event.get("operationType")
            if op in _RESET_EVENTS:
                self.needs_reconcile = True
                if op == "invalidate":
                    self._lost("the stream was invalidated")
                    break
                continue
            table = (event.get("ns") or {}).get("coll")
            key = (event.get("documentKey") or {}).get("_id")
            if op not in _DATA_EVENTS or table not in by_table or key is None:
                continue
            fields = touched_fields(event) if op == "update" else None
            for spec in by_table[table]:
                if fields is None or fields & set(spec.key_columns):
                    wanted.setdefault(spec, {})[key] = None
        return sum(capture_sources(self.backend, spec, list(ids)) for spec, ids in wanted.items())
