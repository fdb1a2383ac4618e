"""The MongoDB data backend: collections as tables, written so that listeners see every write.

Every insert, update of a key field and delete made through pinnacle puts the document's
id into the queue of each listener on the collection: in the same transaction where the
server has transactions (replica set, sharded cluster), otherwise right after the write,
with a reconcile pass (``reconcile.py``) catching what a crash in between would lose.
"""

from __future__ import annotations

import logging
import threading
import typing as t

from pinnacle.backends.base import DataBackend, JobStore, Row, Where
from pinnacle.backends.fulltext import FullTextStore
from pinnacle.base.identifiers import validate_identifier
from pinnacle.errors import ConfigError, NotFoundError
from pinnacle.plugins.mongodb.aggregations import Aggregations
from pinnacle.plugins.mongodb.client import Options, decide, mask_password, open_client, read_features
from pinnacle.plugins.mongodb.errors import translate_public_methods
from pinnacle.plugins.mongodb.listeners import ListenerStorage
from pinnacle.plugins.mongodb.metadata import MetadataStore
from pinnacle.plugins.mongodb.values import (
    check_documents,
    check_fields,
    chunks,
    public_id,
    public_row,
    translate_errors,
    translate_where,
)

logger = logging.getLogger(__name__)

__all__ = ["MongoBackend"]

#: Documents per write transaction (and per queue insert) on big writes.
WRITE_CHUNK = 1000
#: Documents read to list a collection's fields.
FIELDS_SAMPLE = 1000
_INTERNAL_PREFIXES = ("_outputs__", "_failed__", "_queue__")


class MongoBackend(MetadataStore, ListenerStorage, DataBackend, JobStore, FullTextStore):
    """MongoDB through pymongo (``mongodb://``, ``mongodb+srv://``), or mongomock (``mongomock://``).

    Args:
        uri: ``mongodb://user@host:27017/db``; the database defaults to ``pinnacle``.
        **options: pinnacle's options (:class:`~pinnacle.plugins.mongodb.client.Options`:
            ``transactions``, ``change_stream``, ``reconcile_every``, ``lease_s``...), also
            accepted as URI query parameters; the rest go to :class:`pymongo.MongoClient`.

    Example:
        >>> backend = MongoBackend("mongomock://localhost/doctest")
        >>> backend.insert("docs", [{"_id": "a", "text": "hello"}])
        ['a']
    """

    def __init__(self, uri: str, **options: t.Any):
        clean, self.options, client_options = Options.split(uri, dict(options))
        self.uri = clean
        self.safe_uri = mask_password(clean)
        self.client, self.db, self.is_mock = open_client(clean, client_options)
        self.aggregations = Aggregations(self.db, self.safe_uri)
        with translate_errors("connect", self.safe_uri):
            self.features = read_features(self.client, self.is_mock)
            self.transactions = decide(self.options.transactions, self.features.transactions, "transactions", self.safe_uri, self.features.kind)
            self.change_streams = decide(self.options.change_stream, self.features.change_streams, "change_stream", self.safe_uri, self.features.kind)
            self._create_metadata()
        self._lock = threading.RLock()
        self._collections: set[str] = set()
        ListenerStorage.__init__(self)
        logger.info(
            "Connected to %s (%s): transactions %s, change stream %s",
            self.safe_uri, self.features.kind, "on" if self.transactions else "off", "on" if self.change_streams else "off",
        )

    def __repr__(self) -> str:
        return f"MongoBackend({self.safe_uri!r})"

    def close(self) -> None:
        self._close_changes()
        self.client.close()

    @property
    def capabilities(self) -> frozenset[str]:
        """``jobs``, except on mongomock (its database lives in this process only)."""
        return frozenset() if self.is_mock else frozenset({"jobs"})

    def worker_uri(self) -> str:
        if self.is_mock:
            raise NotImplementedError("A mongomock:// database lives in this process only; other processes cannot share it.")
        return self.uri

    def full_text(self, spec):
        """A text index on ``spec``'s field (``fulltext.py``); ``None`` on mongomock (no ``$text``)."""
        from pinnacle.plugins.mongodb.fulltext import full_text_for

        return full_text_for(self, spec)

    def full_text_missing(self) -> str:
        from pinnacle.plugins.mongodb.fulltext import MOCK_REASON

        return MOCK_REASON

    # -- helpers -------------------------------------------------------------------------
    def collection(self, name: str) -> t.Any:
        return self.db[name]

    def _ensure_collection(self, name: str) -> None:
        """Create ``name`` outside any transaction (MongoDB before 4.4 cannot inside one)."""
        if name in self._collections:
            return
        from pymongo.errors import CollectionInvalid, OperationFailure

        try:
            self.db.create_collection(name)
        except (CollectionInvalid, OperationFailure):
            pass  # it exists
        self._collections.add(name)

    def _require(self, table: str) -> t.Any:
        if not self.has_table(table):
            raise NotFoundError(f"Collection {table!r} does not exist in {self.safe_uri}.")
        return self.db[table]

    def _write(self, fn: t.Callable[[t.Any], t.Any]) -> t.Any:
        """Run ``fn(session)``: in one transaction where the server has them, else ``fn(None)``."""
        if not self.transactions:
            return fn(None)
        with self.client.start_session() as session:
            return session.with_transaction(fn)

    # -- tables --------------------------------------------------------------------------
    def has_table(self, table: str) -> bool:
        if table in self._collections:
            return True
        if table in self.db.list_collection_names():
            self._collections.add(table)
            return True
        return False

    def list_tables(self) -> list[str]:
        return sorted(n for n in self.db.list_collection_names() if not n.startswith(("_", "system.")))

    def columns(self, table: str) -> list[str]:
        """Fields seen in the first documents (collections have no fixed schema)."""
        seen: dict[str, None] = {"_id": None}
        for doc in self._require(table).find({}).limit(FIELDS_SAMPLE):
            seen.update(dict.fromkeys(doc))
        return list(seen)

    def primary_key(self, table: str) -> str:
        return "_id"

    def _filter(self, table: str, where: Where, ids: t.Optional[t.Sequence[t.Any]] = None) -> dict:
        query = translate_where(where)
        if ids is not None:
            id_filter = translate_where({"_id": list(ids)})
            query = {"$and": [query, id_filter]} if query else id_filter
        if table.startswith("_outputs__"):
            live = {"_deleted": {"$ne": True}}  # tombstones are pinnacle's bookkeeping
            query = {"$and": [query, live]} if query else live
        return query

    def insert(self, table: str, rows: t.Sequence[Row]) -> list[t.Any]:
        docs = check_documents(table, rows)
        if not docs:
            return []
        validate_identifier(table, "table name")
        self._ensure_collection(table)
        coll = self.db[table]
        specs = self.listeners_on(table)
        for part in chunks(docs, WRITE_CHUNK):
            ids = [d["_id"] for d in part]

            def write(session, part=part, ids=ids):
                coll.insert_many(part, ordered=True, session=session)
                self._enqueue(specs, ids, session)

            with translate_errors(f"insert into {table!r}", self.safe_uri):
                try:
                    self._write(write)
                except Exception as exc:
                    if not self.transactions and specs:  # enqueue what did get in before raising
                        self._enqueue(specs, _inserted(coll, ids, exc), None)
                    raise
        return [public_id(d["_id"]) for d in docs]

    def select(self, table, where=None, *, ids=None, columns=None, limit=None) -> list[Row]:
        coll = self._require(table)
        projection = None
        if columns:
            check_fields(table, columns, "select from")
            projection = {c: 1 for c in columns}
            if "_id" not in columns:
                projection["_id"] = 0
        internal = table.startswith(_INTERNAL_PREFIXES)
        with translate_errors(f"select from {table!r}", self.safe_uri):
            cursor = coll.find(self._filter(table, where, ids), projection)
            if limit is not None:
                cursor = cursor.limit(int(limit))
            return [public_row(d, internal) for d in cursor]

    def count(self, table: str, where: Where = None) -> int:
        coll = self._require(table)
        with translate_errors(f"count {table!r}", self.safe_uri):
            return int(coll.count_documents(self._filter(table, where)))

    def update(self, table: str, where: Where, values: t.Mapping[str, t.Any]) -> int:
        coll = self._require(table)
        update, touched = _update_document(table, values)
        if "_id" in touched:
            if any(str(k).startswith("$") for k in values):
                raise ConfigError(f"update {table!r}: change _id with a plain value, e.g. update(where, {{'_id': 'new-id'}}).")
            return self._move_id(table, where, values)
        query = self._filter(table, where)
        specs = [s for s in self.listeners_on(table) if touched & set(s.key_columns)]
        with translate_errors(f"update {table!r}", self.safe_uri):
            if not specs:
                return int(coll.update_many(query, update).matched_count)
            ids = [d["_id"] for d in coll.find(query, {"_id": 1})]
            matched = 0
            for part in chunks(ids, WRITE_CHUNK):

                def write(session, part=part):
                    result = coll.update_many({"$and": [query, {"_id": {"$in": part}}]}, update, session=session)
                    self._enqueue(specs, part, session)
                    return result.matched_count

                matched += int(self._write(write))
            return matched

    def _move_id(self, table: str, where: Where, values: t.Mapping[str, t.Any]) -> int:
        """Change ``_id`` (immutable in MongoDB): insert the document under its new id, delete the old."""
        coll = self.db[table]
        docs = list(coll.find(self._filter(table, where)).limit(2))
        if len(docs) > 1:
            raise ConfigError(f"update {table!r}: changing _id needs a filter that matches one document.")
        if not docs:
            return 0
        old = docs[0]
        new = {**old, **values}
        new["_id"] = check_documents(table, [new])[0]["_id"]
        specs = self.listeners_on(table)

        def write(session):
            coll.insert_one(new, session=session)
            coll.delete_one({"_id": old["_id"]}, session=session)
            self._enqueue(specs, [old["_id"], new["_id"]], session)

        with translate_errors(f"update {table!r}", self.safe_uri):
            self._write(write)
        return 1

    def delete(self, table: str, where: Where) -> int:
        coll = self._require(table)
        query = self._filter(table, where)
        specs = self.listeners_on(table)
        with translate_errors(f"delete from {table!r}", self.safe_uri):
            if not specs:
                return int(coll.delete_many(query).deleted_count)
            ids = [d["_id"] for d in coll.find(query, {"_id": 1})]
            deleted = 0
            for part in chunks(ids, WRITE_CHUNK):

                def write(session, part=part):
                    result = coll.delete_many({"$and": [query, {"_id": {"$in": part}}]}, session=session)
                    self._enqueue(specs, part, session)
                    return result.deleted_count

                deleted += int(self._write(write))
            return deleted


translate_public_methods(MongoBackend)  # no pymongo error leaves a store method bare


def _inserted(coll: t.Any, ids: list, exc: BaseException) -> list:
    """Ids an ordered ``insert_many`` stored before it failed with ``exc``."""
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and isinstance(details.get("nInserted"), int):
        return ids[: details["nInserted"]]
    return [d["_id"] for d in coll.find({"_id": {"$in": ids}}, {"_id": 1})]  # may re-queue a duplicate: harmless


def _update_document(table: str, values: t.Mapping[str, t.Any]) -> tuple[dict, set[str]]:
    """``(update document, top-level fields it touches)``: plain values are ``$set``; a dict of
    update operators (``{"$inc": {"n": 1}}``) is used as it is."""
    if not isinstance(values, t.Mapping) or not values:
        raise ConfigError(f"update {table!r}: values must be a non-empty dict of field -> value.")
    keys = list(values)
    if all(isinstance(k, str) and k.startswith("$") for k in keys):
        touched: set[str] = set()
        for op, fields in values.items():
            if not isinstance(fields, t.Mapping):
                raise ConfigError(f"update {table!r}: {op} takes a dict of fields, got {fields!r}.")
            for name in fields:
                touched.add(str(name).split(".", 1)[0])
            if op == "$rename":
                touched.update(str(v).split(".", 1)[0] for v in fields.values())
        return dict(values), touched
    check_fields(table, keys, "update")
    return {"$set": dict(values)}, set(keys)
