"""The embedding path on MongoDB: the listener registry and each listener's collections.

A listener version has ``_outputs__<name>`` (one document per source document, unique
``_source``; a flattened listener keeps the list of a document's items in its ``_output``), ``_queue__<name>`` (ids to compute) and ``_failed__<name>`` (rows that could
not be computed, with their error). ``_pinnacle_listeners`` records which listeners watch
which collection, so every process's writes enqueue work for all of them.
"""

from __future__ import annotations

import logging
import time
import typing as t

from bson import ObjectId

from pinnacle.backends.base import ListenerSpec
from pinnacle.base.identifiers import validate_identifier
from pinnacle.errors import ConfigError
from pinnacle.plugins.mongodb.claims import MongoClaim, claim
from pinnacle.plugins.mongodb.reconcile import reconcile
from pinnacle.plugins.mongodb.values import chunks, expand_ids, public_id, translate_errors
from pinnacle.plugins.mongodb.vectors import from_bson

logger = logging.getLogger(__name__)

__all__ = ["ListenerStorage", "queue_entry"]

LISTENERS = "_pinnacle_listeners"
COUNTERS = "_pinnacle_counters"
LIVE = {"_deleted": {"$ne": True}}


def queue_entry(source: t.Any) -> dict:
    """A new queue entry for the document with (stored) id ``source``: due now, unclaimed."""
    return {"_source": source, "attempts": 0, "not_before": 0.0, "claimed_until": 0.0, "owner": None}


class ListenerStorage:
    """Mixin of :class:`~pinnacle.plugins.mongodb.backend.MongoBackend` for listener storage."""

    db: t.Any
    safe_uri: str
    options: t.Any
    change_streams: bool
    aggregations: t.Any  # :class:`~pinnacle.plugins.mongodb.aggregations.Aggregations`

    def __init__(self) -> None:
        self._specs_at = -1e9
        self._specs: dict[str, list[ListenerSpec]] = {}
        self._reconciled: dict[str, float] = {}
        self._changes: t.Any = None

    # -- the registry ---------------------------------------------------------------------
    def _all_specs(self) -> list[ListenerSpec]:
        return [
            ListenerSpec(d["identifier"], d["table"], tuple(d["key_columns"]), d.get("model_uuid", ""), d.get("version", 0))
            for d in self.db[LISTENERS].find({})
        ]

    def listeners_on(self, table: str) -> list[ListenerSpec]:
        """The listener versions watching ``table`` (cached for ``listener_ttl`` seconds)."""
        now = time.monotonic()
        if now - self._specs_at > self.options.listener_ttl:
            specs: dict[str, list[ListenerSpec]] = {}
            for spec in self._all_specs():
                specs.setdefault(spec.table, []).append(spec)
            self._specs, self._specs_at = specs, now
        return list(self._specs.get(table, ()))

    def _forget_specs(self) -> None:
        self._specs_at = -1e9

    def has_listener_storage(self, spec: ListenerSpec) -> bool:
        return self.db[LISTENERS].find_one({"_id": spec.storage_name}) is not None

    # -- lifecycle --------------------------------------------------------------------------
    def create_listener(self, spec: ListenerSpec) -> int:
        if spec.table.startswith("_outputs__"):
            raise ConfigError(
                f"Listener {spec.identifier!r}: listener chains (select=db.outputs_table(...)) are not supported "
                "on MongoDB yet; flattened outputs are (db.outputs(listener) gives each row's items). "
                "Use a SQL database (sqlite, postgresql, mysql) for chains."
            )
        validate_identifier(spec.table, "table name")
        self._ensure_collection(spec.table)  # type: ignore[attr-defined]
        source = self.db[spec.table]
        with translate_errors(f"create listener {spec.identifier!r}", self.safe_uri):
            if source.find_one({}, {"_id": 1}) is not None:
                missing = [k for k in spec.key_columns if source.find_one({k: {"$exists": True}}, {"_id": 1}) is None]
                if missing:
                    raise ConfigError(
                        f"Listener {spec.identifier!r}: no document of {spec.table!r} has the field(s) {missing}; "
                        f"fields seen: {self.columns(spec.table)}."  # type: ignore[attr-defined]
                    )
            for name in (spec.outputs_table, spec.queue_table, spec.failed_table):
                self._ensure_collection(name)  # type: ignore[attr-defined]
            self.db[spec.outputs_table].create_index("_source", unique=True)
            queue = self.db[spec.queue_table]
            queue.create_index("_source")
            queue.create_index([("claimed_until", 1), ("not_before", 1)])
            queue.create_index("owner")
            self.db[spec.failed_table].create_index("_source", unique=True)
            self.db[spec.failed_table].create_index("failed_at")
            record = {
                "identifier": spec.identifier, "table": spec.table, "key_columns": list(spec.key_columns),
                "model_uuid": spec.model_uuid, "version": spec.version,
            }
            # Registered first, so writes from now on enqueue; then the backfill finds the rest.
            self.db[LISTENERS].update_one({"_id": spec.storage_name}, {"$set": record}, upsert=True)
            self._forget_specs()
            enqueued = reconcile(self, spec)
            self._reconciled[spec.storage_name] = time.monotonic()
        logger.info("Listener %r: change capture on %r, %d document(s) queued", spec.identifier, spec.table, enqueued)
        return enqueued

    def drop_listener(self, spec: ListenerSpec) -> None:
        with translate_errors(f"drop listener {spec.identifier!r}", self.safe_uri):
            self.db[LISTENERS].delete_one({"_id": spec.storage_name})
            self._forget_specs()
            for name in (spec.outputs_table, spec.queue_table, spec.failed_table):
                self.db.drop_collection(name)
                self._collections.discard(name)  # type: ignore[attr-defined]
            self.db[COUNTERS].delete_one({"_id": spec.storage_name})
        self._reconciled.pop(spec.storage_name, None)

    def _enqueue(self, specs: t.Sequence[ListenerSpec], ids: t.Sequence[t.Any], session: t.Any) -> None:
        """Queue ``ids`` (stored ids) for each of ``specs``, inside ``session``'s transaction if any."""
        if not ids:
            return
        for spec in specs:
            for part in chunks(ids):
                self.db[spec.queue_table].insert_many([queue_entry(i) for i in part], session=session)

    # -- draining ---------------------------------------------------------------------------
    def claim_work(self, spec: ListenerSpec, limit: int, sources=None) -> MongoClaim:
        with translate_errors(f"claim work of {spec.identifier!r}", self.safe_uri):
            return claim(self, spec, limit, sources)

    def pending_sources(self, spec: ListenerSpec, after=None, limit: int = 1000) -> list[tuple[t.Any, t.Any]]:
        query: dict[str, t.Any] = {"not_before": {"$lte": time.time()}}
        if after is not None:
            query["_id"] = {"$gt": ObjectId(str(after))}
        cursor = self.db[spec.queue_table].find(query, {"_source": 1}).sort("_id", 1).limit(int(limit))
        return [(str(e["_id"]), public_id(e["_source"])) for e in cursor]

    def capture_outside_writes(self, specs: t.Sequence[ListenerSpec]) -> int:
        """Enqueue documents written by other clients: from the change stream where the server
        has one, and by a reconcile pass (every call without a change stream; at start and
        every ``reconcile_every`` seconds with one)."""
        with translate_errors("capture writes of other clients", self.safe_uri):
            registered = {s.storage_name for s in self._all_specs()}
            specs = [s for s in specs if s.storage_name in registered]
            if not specs:
                return 0
            enqueued = 0
            changes = self._change_capture()
            if changes is not None:
                enqueued += changes.poll(specs)
            every = self.options.reconcile_every
            if every is None:
                every = 600.0 if changes is not None else 0.0
            force = changes is not None and changes.needs_reconcile
            for spec in specs:
                last = self._reconciled.get(spec.storage_name)
                if force or last is None or time.monotonic() - last >= every:
                    enqueued += reconcile(self, spec)
                    self._reconciled[spec.storage_name] = time.monotonic()
            if force:
                changes.needs_reconcile = False
        return enqueued

    def _change_capture(self) -> t.Any:
        if not self.change_streams:
            return None
        if self._changes is None:
            from pinnacle.plugins.mongodb.changes import ChangeCapture

            self._changes = ChangeCapture(self)
        return self._changes

    def _close_changes(self) -> None:
        if self._changes is not None:
            self._changes.close()
            self._changes = None

    # -- reading ----------------------------------------------------------------------------
    def read_outputs(self, spec: ListenerSpec, sources=None) -> t.Iterator[tuple[t.Any, bytes]]:
        outputs = self.db[spec.outputs_table]
        projection = {"_id": 0, "_source": 1, "_output": 1}
        if sources is None:
            for doc in outputs.find(LIVE, projection, batch_size=2000):
                yield public_id(doc["_source"]), from_bson(doc["_output"])
            return
        for part in chunks(expand_ids(sources)):
            for doc in outputs.find({"_source": {"$in": part}, **LIVE}, projection):
                yield public_id(doc["_source"]), from_bson(doc["_output"])

    def output_stamps(self, spec: ListenerSpec) -> t.Iterator[tuple[t.Any, float]]:
        for doc in self.db[spec.outputs_table].find(LIVE, {"_id": 0, "_source": 1, "_updated_at": 1}, batch_size=5000):
            yield public_id(doc["_source"]), float(doc["_updated_at"])

    def outputs_version(self, spec: ListenerSpec) -> tuple[int, float]:
        outputs = self.db[spec.outputs_table]
        if not self.aggregations.has("max"):  # a server without the $max accumulator
            newest = list(outputs.find(LIVE, {"_id": 0, "_updated_at": 1}).sort("_updated_at", -1).limit(1))
            n = int(outputs.count_documents(LIVE))
            return (n, float(newest[0].get("_updated_at") or 0.0)) if n and newest else (0, 0.0)
        pipeline = [{"$match": LIVE}, {"$group": {"_id": None, "n": {"$sum": 1}, "latest": {"$max": "$_updated_at"}}}]
        found = list(outputs.aggregate(pipeline))
        if not found:
            return 0, 0.0
        return int(found[0]["n"]), float(found[0]["latest"] or 0.0)

    def queue_status(self, spec: ListenerSpec) -> dict[str, int]:
        queue = self.db[spec.queue_table]
        return {
            "pending": _distinct_sources(queue, {}),
            "in_flight": _distinct_sources(queue, {"owner": {"$ne": None}, "claimed_until": {"$gte": time.time()}}),
            "retrying": _distinct_sources(queue, {"not_before": {"$gt": time.time()}}),
            "failed": int(self.db[spec.failed_table].count_documents({})),
            "outputs": int(self.db[spec.outputs_table].count_documents(LIVE)),
        }

    def failures(self, spec: ListenerSpec, limit: int = 100) -> list[dict]:
        fields = ("_source", "error_type", "message", "attempts", "failed_at")
        cursor = self.db[spec.failed_table].find({}, {"_id": 0}).sort("failed_at", -1).limit(int(limit))
        return [{k: (public_id(d.get(k)) if k == "_source" else d.get(k)) for k in fields} for d in cursor]

    def requeue_failed(self, spec: ListenerSpec) -> int:
        failed = self.db[spec.failed_table]
        docs = list(failed.find({}, {"_id": 1, "_source": 1}))
        for part in chunks(docs):
            # Queue first: a crash in between leaves both, and the next commit clears the failure.
            self.db[spec.queue_table].insert_many([queue_entry(d["_source"]) for d in part])
            failed.delete_many({"_id": {"$in": [d["_id"] for d in part]}})
        return len(docs)


def _distinct_sources(queue: t.Any, match: dict) -> int:
    pipeline = [{"$match": match}, {"$group": {"_id": "$_source"}}, {"$count": "n"}]
    found = list(queue.aggregate(pipeline))
    return int(found[0]["n"]) if found else 0
