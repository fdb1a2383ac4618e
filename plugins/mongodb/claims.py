"""Claiming queued documents and committing their outputs on MongoDB, without locks.

Claim: a worker marks free queue entries as its own with a lease (``owner``,
``claimed_until``) in one ``update_many`` whose filter only matches free entries, so two
workers never hold the same entry; entries of a crashed worker are free again when the
lease ends. The claim then takes a fresh number from the listener's counter
(``_pinnacle_counters``, ``$inc``) *before* it reads the documents.

Commit: each output (and each tombstone, the marker of a removed output) records that
number in ``_seq``, and is written only over a smaller one:
``update_one({"_source": s, "_seq": {"$lt": n}}, ..., upsert=True)``; a larger one makes the
upsert hit the unique ``_source`` index (``DuplicateKeyError``: a newer result is already
there). A number is taken before the read, so a larger number means a read that saw every
write enqueued before the smaller one was taken; writes after that have entries of their
own still queued. Hence a stale result (a slow worker whose lease ended, a retry after a
crash) never overwrites a newer one, and a removed output is not brought back by an older
result still in flight. Failures are parked the same way. Before writing, the commit
checks that it still owns its entries (a worker whose lease ended and was overtaken
writes nothing); queue entries are deleted last, so a crash anywhere leaves them queued.
"""

from __future__ import annotations

import logging
import time
import typing as t

from bson import ObjectId

from pinnacle.backends.base import Claim, ListenerSpec, WorkItem, WorkResult
from pinnacle.plugins.mongodb.values import chunks, expand_ids, key_hash, public_id, public_row
from pinnacle.plugins.mongodb.vectors import to_bson

logger = logging.getLogger(__name__)

__all__ = ["MongoClaim", "claim", "next_seq", "conditional_upserts", "upsert_outcome"]

COUNTERS = "_pinnacle_counters"
#: Longest wait of a writer for a worker that holds the entries of the rows it wrote.
WRITER_WAIT_S = 30.0


def next_seq(db: t.Any, spec: ListenerSpec) -> int:
    """A fresh number from ``spec``'s counter, larger than every number taken before."""
    from pymongo import ReturnDocument
    from pymongo.errors import DuplicateKeyError

    for attempt in range(3):
        try:
            doc = db[COUNTERS].find_one_and_update(
                {"_id": spec.storage_name}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
            return int(doc["seq"])
        except DuplicateKeyError:  # two first upserts at once: the counter exists now
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _take(queue: t.Any, query: dict, owner: ObjectId, until: float) -> None:
    queue.update_many({**query, "claimed_until": {"$lt": time.time()}}, {"$set": {"owner": owner, "claimed_until": until}})


def claim(backend: t.Any, spec: ListenerSpec, limit: int, sources: t.Optional[t.Sequence[t.Any]]) -> "MongoClaim":
    """Claim up to ``limit`` due sources of ``spec`` (only ``sources`` if given)."""
    queue = backend.db[spec.queue_table]
    owner = ObjectId()
    lease = backend.options.lease_s
    now = time.time()
    if sources is not None:
        natives = expand_ids(sources)
        _claim_sources(queue, natives, owner, lease)
    else:
        chosen: dict[t.Any, None] = {}
        for entry in queue.find({"not_before": {"$lte": now}, "claimed_until": {"$lt": now}}, {"_source": 1}).sort("_id", 1).limit(max(1, limit) * 4):
            if len(chosen) < limit:
                chosen.setdefault(entry["_source"], None)
        if not chosen:
            return MongoClaim(backend, spec, owner, [], {}, {}, 0)
        _take(queue, {"_source": {"$in": list(chosen)}}, owner, now + lease)
    entries: dict[t.Any, list[tuple[ObjectId, int]]] = {}
    for entry in queue.find({"owner": owner}, {"_source": 1, "attempts": 1}):
        entries.setdefault(entry["_source"], []).append((entry["_id"], int(entry.get("attempts", 0))))
    if not entries:
        return MongoClaim(backend, spec, owner, [], {}, {}, 0)
    seq = next_seq(backend.db, spec)  # before the read: see the module docstring
    projection = {k: 1 for k in spec.key_columns}
    found: dict[t.Any, dict] = {}
    for part in chunks(list(entries)):
        for doc in backend.db[spec.table].find({"_id": {"$in": part}}, projection):
            found[doc["_id"]] = doc
    items = [
        WorkItem(
            source=public_id(src),
            queue_ids=[q for q, _ in got],
            attempts=max(a for _, a in got),
            row=public_row(found[src]) if src in found else None,
        )
        for src, got in entries.items()
    ]
    natives_by_public = {public_id(src): src for src in entries}
    hashes = {public_id(src): key_hash(found.get(src), spec.key_columns) for src in entries}
    return MongoClaim(backend, spec, owner, items, natives_by_public, hashes, seq)


def _claim_sources(queue: t.Any, natives: list, owner: ObjectId, lease: float) -> None:
    """Take the due entries of ``natives``. For a source of which this claim got nothing because
    another worker holds its entries, wait (at most ``WRITER_WAIT_S``) for that worker, so a
    writer's outputs exist when its write returns (as SQL's row locks make it wait)."""
    deadline = time.time() + min(lease, WRITER_WAIT_S)
    delay = 0.02
    while True:
        now = time.time()
        due = {"_source": {"$in": natives}, "not_before": {"$lte": now}}
        _take(queue, due, owner, now + lease)
        mine = set(queue.distinct("_source", {"owner": owner}))
        waiting = [n for n in natives if n not in mine]
        if not waiting or now > deadline:
            return
        held = {"_source": {"$in": waiting}, "not_before": {"$lte": now}, "owner": {"$ne": owner}, "claimed_until": {"$gte": now}}
        if not queue.count_documents(held):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def conditional_upserts(coll: t.Any, ops: list[tuple[dict, dict]], bulk: bool) -> list[bool]:
    """Run ``update_one(filter, update, upsert=True)`` for each op; ``False`` where a newer
    document made the upsert collide with the unique index (error 11000).

    ``bulk``: unordered ``update`` commands of at most :data:`BULK_OPS` ops and
    :data:`BULK_BYTES` bytes, each reply read by :func:`upsert_outcome`; else one
    ``update_one`` per op (mongomock: its ``bulk_write`` does not work with this pymongo)."""
    from pymongo.errors import DuplicateKeyError

    if not bulk:
        done: list[bool] = []
        for query, update in ops:
            try:
                coll.update_one(query, update, upsert=True)
                done.append(True)
            except DuplicateKeyError:
                done.append(False)
        return done
    from bson import SON

    done = []
    for part in _command_batches([{"q": q, "u": u, "upsert": True} for q, u in ops]):
        reply = coll.database.command(SON([("update", coll.name), ("updates", part), ("ordered", False)]))
        done += upsert_outcome(reply, part)
    return done


#: Ops per bulk ``update`` command (the server takes up to 100,000).
BULK_OPS = 1000
#: Bytes of ops per bulk ``update`` command (a command is one BSON document: at most 16 MiB).
BULK_BYTES = 8 * 1024 * 1024


def _command_batches(statements: list[dict]) -> t.Iterator[list[dict]]:
    from bson import encode

    part: list[dict] = []
    size = 0
    for statement in statements:
        n = len(encode(statement))
        if part and (len(part) >= BULK_OPS or size + n > BULK_BYTES):
            yield part
            part, size = [], 0
        part.append(statement)
        size += n
    if part:
        yield part


def upsert_outcome(reply: t.Mapping[str, t.Any], statements: list[dict]) -> list[bool]:
    """Which ``statements`` of an unordered ``update`` command landed, from the server's reply.

    An error 11000 (the unique index: a newer document is there) marks its statement as
    not landed; any other write error or a write concern error raises
    :class:`~pymongo.errors.BulkWriteError`. Fields a reply may lack are not needed: some
    servers leave out ``nModified`` when every write errored (pymongo's own ``bulk_write``
    then fails with ``KeyError: 'nModified'``).

    Example:
        >>> reply = {"ok": 1.0, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}]}
        >>> upsert_outcome(reply, [{"q": {}, "u": {}, "upsert": True}])
        [False]
    """
    from pymongo.errors import BulkWriteError

    errors = list(reply.get("writeErrors") or [])
    concern = reply.get("writeConcernError")
    other = [e for e in errors if e.get("code") != 11000]
    if other or concern:
        for e in errors:
            index = e.get("index")
            if isinstance(index, int) and 0 <= index < len(statements):
                e.setdefault("op", statements[index])
        raise BulkWriteError({
            "writeErrors": sorted(errors, key=lambda e: e.get("index", 0)),
            "writeConcernErrors": [concern] if concern else [],
            "nInserted": 0, "nUpserted": len(reply.get("upserted") or []), "nMatched": int(reply.get("n", 0)),
            "nModified": int(reply.get("nModified", 0)), "nRemoved": 0, "upserted": list(reply.get("upserted") or []),
        })
    lost = {e.get("index") for e in errors}
    return [i not in lost for i in range(len(statements))]


class MongoClaim(Claim):
    """Claimed work; :meth:`commit` stores the results, :meth:`release` gives the entries back."""

    def __init__(self, backend, spec: ListenerSpec, owner: ObjectId, items: list[WorkItem], natives: dict, hashes: dict, seq: int):
        self.backend = backend
        self.spec = spec
        self.owner = owner
        self.items = items
        self.seq = seq
        self._natives = natives
        self._hashes = hashes
        self._open = bool(items)

    def release(self) -> None:
        from pinnacle.plugins.mongodb.values import translate_errors

        if self._open:
            self._open = False
            with translate_errors(f"release claimed work of {self.spec.identifier!r}", self.backend.safe_uri):
                queue = self.backend.db[self.spec.queue_table]
                queue.update_many({"owner": self.owner}, {"$set": {"owner": None, "claimed_until": 0.0}})

    def commit(self, result: WorkResult) -> tuple[set, float]:
        from pinnacle.plugins.mongodb.values import translate_errors

        now = time.time()
        if not self.items:
            return set(), now
        with translate_errors(f"commit outputs of {self.spec.identifier!r}", self.backend.safe_uri):
            committed = self._write(result, now)
        self._open = False
        return committed, now

    def _write(self, result: WorkResult, now: float) -> set:
        db, spec, seq = self.backend.db, self.spec, self.seq
        queue, outputs, failed = db[spec.queue_table], db[spec.outputs_table], db[spec.failed_table]
        bulk = not self.backend.is_mock
        claimed = [q for item in self.items for q in item.queue_ids]
        source_of = {q: item.source for item in self.items for q in item.queue_ids}
        still = set()
        for part in chunks(claimed):
            still.update(e["_id"] for e in queue.find({"_id": {"$in": part}, "owner": self.owner}, {"_id": 1}))
        mine = {source_of[q] for q in still}
        native = self._natives
        newer = {"$lt": seq}

        ops, order = [], []
        for s, data in result.outputs:
            if s in mine:
                update = {
                    "$set": {"_output": to_bson(data), "_model_uuid": spec.model_uuid, "_updated_at": now,
                             "_seq": seq, "_key_hash": self._hashes.get(s)},
                    "$unset": {"_deleted": ""},
                }
                ops.append(({"_source": native[s], "_seq": newer}, update))
                order.append(s)
        for s in result.gone:
            if s in mine:
                update = {"$set": {"_deleted": True, "_seq": seq, "_updated_at": now},
                          "$unset": {"_output": "", "_key_hash": "", "_model_uuid": ""}}
                ops.append(({"_source": native[s], "_seq": newer}, update))
                order.append(s)
        landed = {s for s, ok in zip(order, conditional_upserts(outputs, ops, bulk)) if ok}
        for part in chunks([native[s] for s in landed]):
            failed.delete_many({"_source": {"$in": part}, "_seq": newer})

        parked = self._park(failed, outputs, [(s, f) for s, f in result.failed if s in mine], now, bulk)
        retried = set()
        by_source = {item.source: item for item in self.items}
        for s, attempts, not_before in result.retry:
            if s in mine:
                ids = [q for q in by_source[s].queue_ids if q in still]
                queue.update_many(
                    {"_id": {"$in": ids}, "owner": self.owner},
                    {"$set": {"attempts": attempts, "not_before": not_before, "owner": None, "claimed_until": 0.0}},
                )
                retried.update(ids)
                landed.add(s)
        finished = [q for q in still if q not in retried]
        for part in chunks(finished):
            queue.delete_many({"_id": {"$in": part}, "owner": self.owner})
        lost = mine - landed - parked
        if lost:
            logger.debug("Listener %r: %d result(s) were older than stored ones; dropped", spec.identifier, len(lost))
        return landed | parked

    def _park(self, failed: t.Any, outputs: t.Any, rows: list, now: float, bulk: bool) -> set:
        """Store failures unless a newer result exists; re-check after writing (no transaction)."""
        if not rows:
            return set()
        seq, native = self.seq, self._natives
        ops = [
            (
                {"_source": native[s], "_seq": {"$lt": seq}},
                {"$set": {"error_type": f.error_type[:200], "message": f.message, "attempts": f.attempts,
                          "failed_at": now, "_seq": seq, "_key_hash": self._hashes.get(s)}},
            )
            for s, f in rows
        ]
        parked = {s for (s, _), ok in zip(rows, conditional_upserts(failed, ops, bulk)) if ok}
        # A newer output committed meanwhile makes this failure stale: remove it again.
        stale = [
            o["_source"]
            for part in chunks([native[s] for s in parked])
            for o in outputs.find({"_source": {"$in": part}, "_seq": {"$gt": seq}}, {"_source": 1})
        ]
        if stale:
            failed.delete_many({"_source": {"$in": stale}, "_seq": seq})
            parked -= {public_id(n) for n in stale}
        return parked
