"""Finding documents whose output is missing or stale, whoever wrote them.

The reconcile pass is an anti-join of a collection with a listener's outputs (``$lookup``
on ``_id`` = ``_source``; batched ``$in`` queries on servers without ``$lookup``): a document is *settled* when its output was computed from its
current key values (the output keeps a hash of them in ``_key_hash``) or when its failure
was recorded for those values; an output whose document is gone is stale too. Unsettled
ones are queued. It catches inserts, key updates and deletes made by other clients (and
by a pinnacle process that died between its write and its enqueue).

:func:`capture_sources` decides for a list of ids (from the pass or from a change
stream) and queues only what is needed:

* an id with a *free* queue entry (not held by a worker) is skipped: whoever claims it
  reads the document after now;
* an id with entries held by a worker is queued again: that worker may have read the
  document before the write;
* otherwise the id is queued unless its output (read after the queue) matches the
  document (read last), or its recorded failure does.
"""

from __future__ import annotations

import logging
import time
import typing as t

from pinnacle.backends.base import ListenerSpec
from pinnacle.plugins.mongodb.values import chunks, key_hash

logger = logging.getLogger(__name__)

__all__ = ["reconcile", "capture_sources", "settled"]

_OUT, _FAILED = "_pinnacle_output", "_pinnacle_failure"


def settled(doc: t.Optional[dict], output: t.Optional[dict], failure_hash: t.Optional[str], keys: t.Sequence[str]) -> bool:
    """Whether ``output`` (or the recorded failure) is current for ``doc`` (``None``: deleted).

    Example:
        >>> keys = ("text",)
        >>> h = key_hash({"text": "a"}, keys)
        >>> settled({"text": "a"}, {"_key_hash": h}, None, keys), settled({"text": "b"}, {"_key_hash": h}, None, keys)
        (True, False)
        >>> settled(None, {"_deleted": True}, None, keys), settled(None, {"_key_hash": h}, None, keys)
        (True, False)
        >>> settled(None, None, h, keys)  # the failure of a deleted document is stale
        False
    """
    live = output is not None and not output.get("_deleted")
    if doc is None:
        return not live and failure_hash is None
    current = key_hash(doc, keys)
    return (live and output.get("_key_hash") == current) or (failure_hash is not None and failure_hash == current)


def reconcile(backend: t.Any, spec: ListenerSpec) -> int:
    """Queue every document of ``spec.table`` whose output is missing or stale, and every
    output whose document is gone. Returns how many ids were queued.

    With ``$lookup`` where the server runs it (:class:`~pinnacle.plugins.mongodb.aggregations.Aggregations`),
    else with the same reads done in batches of :data:`BATCH` ids."""
    if _has_lookup(backend):
        candidates = _unsettled_by_lookup(backend.db, spec) + _orphans_by_lookup(backend.db, spec)
    else:
        candidates = _unsettled_in_batches(backend.db, spec) + _orphans_in_batches(backend.db, spec)
    _purge_tombstones(backend, spec)
    queued = capture_sources(backend, spec, candidates) if candidates else 0
    if queued:
        logger.info("Listener %r: reconcile queued %d document(s) written outside pinnacle", spec.identifier, queued)
    return queued


#: Ids per round of the batched reconcile pass (one ``$in`` query per collection and round).
BATCH = 1000


def _has_lookup(backend: t.Any) -> bool:
    aggregations = getattr(backend, "aggregations", None)
    return True if aggregations is None else aggregations.has("lookup")


def _unsettled_by_lookup(db: t.Any, spec: ListenerSpec) -> list:
    keys = spec.key_columns
    pipeline = [
        {"$lookup": {"from": spec.outputs_table, "localField": "_id", "foreignField": "_source", "as": _OUT}},
        {"$lookup": {"from": spec.failed_table, "localField": "_id", "foreignField": "_source", "as": _FAILED}},
        {"$project": {**{k: 1 for k in keys},
                      f"{_OUT}._key_hash": 1, f"{_OUT}._deleted": 1, f"{_FAILED}._key_hash": 1}},
    ]
    found = []
    for doc in db[spec.table].aggregate(pipeline, batchSize=2000):
        outs, fails = doc.pop(_OUT, []), doc.pop(_FAILED, [])
        failure = fails[0].get("_key_hash") if fails else None
        if not settled(doc, outs[0] if outs else None, failure, keys):
            found.append(doc["_id"])
    return found


def _orphans_by_lookup(db: t.Any, spec: ListenerSpec) -> list:
    """Sources of live outputs and of failures whose document is gone."""
    orphans = [
        {"$match": {"_deleted": {"$ne": True}}},
        {"$lookup": {"from": spec.table, "localField": "_source", "foreignField": "_id", "as": "_pinnacle_doc"}},
        {"$project": {"_source": 1, "found": {"$size": "$_pinnacle_doc"}}},
        {"$match": {"found": 0}},
    ]
    return [o["_source"] for name in (spec.outputs_table, spec.failed_table) for o in db[name].aggregate(orphans, batchSize=2000)]


def _batches(cursor: t.Iterable[dict]) -> t.Iterator[list[dict]]:
    part: list[dict] = []
    for doc in cursor:
        part.append(doc)
        if len(part) >= BATCH:
            yield part
            part = []
    if part:
        yield part


def _unsettled_in_batches(db: t.Any, spec: ListenerSpec) -> list:
    """:func:`_unsettled_by_lookup` without ``$lookup``: the documents' key fields in batches,
    and for each batch their outputs and failures by ``$in``."""
    keys = spec.key_columns
    found = []
    cursor = db[spec.table].find({}, {k: 1 for k in keys}, batch_size=2000)
    for part in _batches(cursor):
        ids = [d["_id"] for d in part]
        outputs = {o["_source"]: o for o in db[spec.outputs_table].find(
            {"_source": {"$in": ids}}, {"_source": 1, "_key_hash": 1, "_deleted": 1})}
        failures = {f["_source"]: f.get("_key_hash") for f in db[spec.failed_table].find(
            {"_source": {"$in": ids}}, {"_source": 1, "_key_hash": 1})}
        found += [d["_id"] for d in part if not settled(d, outputs.get(d["_id"]), failures.get(d["_id"]), keys)]
    return found


def _orphans_in_batches(db: t.Any, spec: ListenerSpec) -> list:
    """:func:`_orphans_by_lookup` without ``$lookup``: sources in batches, and which of them
    still have a document by ``$in``."""
    found = []
    for name, match in ((spec.outputs_table, {"_deleted": {"$ne": True}}), (spec.failed_table, {})):
        for part in _batches(db[name].find(match, {"_id": 0, "_source": 1}, batch_size=2000)):
            sources = [o["_source"] for o in part]
            alive = {d["_id"] for d in db[spec.table].find({"_id": {"$in": sources}}, {"_id": 1})}
            found += [s for s in sources if s not in alive]
    return found


def _purge_tombstones(backend: t.Any, spec: ListenerSpec) -> None:
    """Forget removed outputs' markers once no result older than them can still arrive."""
    ttl = max(backend.options.tombstone_ttl, 2 * backend.options.lease_s)
    backend.db[spec.outputs_table].delete_many({"_deleted": True, "_updated_at": {"$lt": time.time() - ttl}})


def capture_sources(backend: t.Any, spec: ListenerSpec, natives: t.Sequence[t.Any]) -> int:
    """Queue those of ``natives`` (stored ids of ``spec.table``) whose output needs computing
    (see the module docstring for the rules and why the reads go in this order)."""
    db = backend.db
    queue = db[spec.queue_table]
    queued = 0
    for part in chunks(list(dict.fromkeys(natives))):
        now = time.time()
        free, held = set(), set()
        for e in queue.find({"_source": {"$in": part}}, {"_source": 1, "claimed_until": 1}):
            (free if e.get("claimed_until", 0.0) < now else held).add(e["_source"])
        unknown = [n for n in part if n not in free and n not in held]
        outputs = {o["_source"]: o for o in db[spec.outputs_table].find(
            {"_source": {"$in": unknown}}, {"_source": 1, "_key_hash": 1, "_deleted": 1})}
        failures = {f["_source"]: f.get("_key_hash") for f in db[spec.failed_table].find(
            {"_source": {"$in": unknown}}, {"_source": 1, "_key_hash": 1})}
        projection = {k: 1 for k in spec.key_columns}
        docs = {d["_id"]: d for d in db[spec.table].find({"_id": {"$in": unknown}}, projection)}
        todo = [n for n in part if n in held and n not in free]
        todo += [n for n in unknown if not settled(docs.get(n), outputs.get(n), failures.get(n), spec.key_columns)]
        if todo:
            from pinnacle.plugins.mongodb.listeners import queue_entry

            queue.insert_many([queue_entry(n) for n in todo])
            queued += len(todo)
    return queued
