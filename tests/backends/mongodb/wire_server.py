"""A MongoDB wire-protocol server backed by mongomock, for running the ``[mongodb]`` tests
through pymongo's real network path where no MongoDB server can run.

    .venv/bin/python tests/backends/mongodb/wire_server.py --port 27999 [--no-split] [--without lookup,max] [--omit-nmodified]
    PINNACLE_MONGODB_URI=mongodb://127.0.0.1:27999/ .venv/bin/python -m pytest tests/backends -m mongodb

What it shows that mongomock alone hides: pymongo encodes every command and decodes every
reply (``Int64``, ``bytes`` for binary subtype 0), cursors come in batches (``batchSize``,
``getMore``), write replies are read by the driver. What it does not: behind the wire is
mongomock (its query and update semantics, no indexes), a standalone server (no
transactions, no change streams). Options make it behave like MongoDB-compatible servers:
``--no-split`` fills each reply to the batch size asked for without the 16 MiB bound,
``--without lookup,max`` refuses ``$lookup`` / the ``$max`` accumulator, ``--omit-nmodified``
leaves ``nModified`` out of an update reply whose every write errored.
"""

from __future__ import annotations

import argparse
import itertools
import socketserver
import struct
import threading
import typing as t

import bson
import mongomock
from bson import Int64
from bson.codec_options import CodecOptions

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_BSON = 16 * 1024 * 1024
MAX_MESSAGE = 48_000_000
_CODEC = CodecOptions(tz_aware=False)


class CommandError(Exception):
    def __init__(self, message: str, code: int = 8000):
        super().__init__(message)
        self.code = code


class Backend:
    """The commands pinnacle's plugin (and pymongo around it) sends, run on one mongomock client."""

    def __init__(self, split: bool = True, without: t.Iterable[str] = (), omit_nmodified: bool = False,
                 max_message: int = MAX_MESSAGE):
        self.client = mongomock.MongoClient()
        self.split, self.without, self.omit_nmodified = split, set(without), omit_nmodified
        self.max_message = max_message
        self.lock = threading.RLock()
        self.cursors: dict[int, tuple[str, list]] = {}
        self.ids = itertools.count(1)

    # -- replies --------------------------------------------------------------------------
    def _batch(self, docs: list, size: int) -> tuple[list, list]:
        """The next batch: ``size`` documents (0: all), bounded by 16 MiB unless ``--no-split``."""
        size = size or len(docs)
        batch, total = [], 0
        for doc in docs[:size]:
            n = len(bson.encode(doc))
            if self.split and batch and total + n > MAX_BSON:
                break
            batch.append(doc)
            total += n
        return batch, docs[len(batch):]

    def _cursor(self, ns: str, docs: list, size: int, first: bool = True, single: bool = False) -> dict:
        batch, rest = self._batch(docs, size)
        cursor_id = 0
        if rest and not single:
            cursor_id = next(self.ids)
            self.cursors[cursor_id] = (ns, rest)
        return {"cursor": {"id": Int64(cursor_id), "ns": ns, ("firstBatch" if first else "nextBatch"): batch}, "ok": 1.0}

    # -- dispatch -------------------------------------------------------------------------
    def run(self, body: dict) -> dict:
        name = next(iter(body))
        handler = getattr(self, "cmd_" + name.lower(), None)
        if handler is None:
            return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}
        with self.lock:
            try:
                return handler(body, self.client[body.get("$db", "test")])
            except CommandError as exc:
                return {"ok": 0.0, "errmsg": str(exc), "code": exc.code}
            except mongomock.DuplicateKeyError as exc:
                return {"ok": 0.0, "errmsg": f"E11000 duplicate key error: {exc}", "code": 11000}
            except mongomock.OperationFailure as exc:
                return {"ok": 0.0, "errmsg": str(exc), "code": getattr(exc, "code", None) or 8000}

    def cmd_ismaster(self, body, db):
        return {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxBsonObjectSize": MAX_BSON,
                "maxMessageSizeBytes": self.max_message, "maxWriteBatchSize": 100_000, "logicalSessionTimeoutMinutes": 30,
                "minWireVersion": 0, "maxWireVersion": 17, "readOnly": False, "connectionId": 1, "ok": 1.0}

    cmd_hello = cmd_ismaster

    def cmd_ping(self, body, db):
        return {"ok": 1.0}

    cmd_endsessions = cmd_ping

    def cmd_buildinfo(self, body, db):
        return {"version": "6.0.0-mongomock-wire", "versionArray": [6, 0, 0, 0], "ok": 1.0}

    def cmd_listcollections(self, body, db):
        names = db.list_collection_names()
        wanted = (body.get("filter") or {}).get("name")
        docs = [{"name": n, "type": "collection"} for n in sorted(names) if wanted is None or n == wanted]
        return self._cursor(f"{db.name}.$cmd.listCollections", docs, 0)

    def cmd_create(self, body, db):
        if body["create"] in db.list_collection_names():
            raise CommandError(f"Collection {db.name}.{body['create']} already exists.", 48)
        db.create_collection(body["create"])
        return {"ok": 1.0}

    def cmd_drop(self, body, db):
        if body["drop"] not in db.list_collection_names():
            raise CommandError("ns not found", 26)
        db.drop_collection(body["drop"])
        return {"ok": 1.0}

    def cmd_dropdatabase(self, body, db):
        self.client.drop_database(db.name)
        return {"ok": 1.0}

    def cmd_createindexes(self, body, db):
        coll = db[body["createIndexes"]]
        for index in body["indexes"]:
            coll.create_index(list(index["key"].items()), name=index.get("name"), unique=bool(index.get("unique")))
        return {"ok": 1.0}

    def cmd_find(self, body, db):
        coll = db[body["find"]]
        cursor = coll.find(body.get("filter") or {}, body.get("projection"))
        if body.get("sort"):
            cursor = cursor.sort(list(body["sort"].items()))
        if body.get("skip"):
            cursor = cursor.skip(int(body["skip"]))
        limit = abs(int(body.get("limit") or 0))
        if limit:
            cursor = cursor.limit(limit)
        size = int(body.get("batchSize") or 101)
        return self._cursor(f"{db.name}.{coll.name}", list(cursor), size, single=bool(body.get("singleBatch")))

    def cmd_getmore(self, body, db):
        ns, docs = self.cursors.pop(int(body["getMore"]), (None, None))
        if docs is None:
            raise CommandError(f"cursor id {body['getMore']} not found", 43)
        reply = self._cursor(ns, docs, int(body.get("batchSize") or 0), first=False)
        return reply

    def cmd_killcursors(self, body, db):
        for cursor_id in body.get("cursors", []):
            self.cursors.pop(int(cursor_id), None)
        return {"cursorsKilled": body.get("cursors", []), "ok": 1.0}

    def cmd_aggregate(self, body, db):
        pipeline = body["pipeline"]
        text = repr(pipeline)
        if "lookup" in self.without and "'$lookup'" in text:
            raise CommandError("Unrecognized pipeline stage name: '$lookup'", 40324)
        if "max" in self.without and "'$max'" in text:
            raise CommandError("unknown group operator '$max'", 15952)
        coll = db[body["aggregate"]]
        docs = list(coll.aggregate(pipeline))
        return self._cursor(f"{db.name}.{coll.name}", docs, int((body.get("cursor") or {}).get("batchSize") or 101))

    def cmd_count(self, body, db):
        return {"n": db[body["count"]].count_documents(body.get("query") or {}), "ok": 1.0}

    def cmd_distinct(self, body, db):
        return {"values": db[body["distinct"]].distinct(body["key"], body.get("query") or {}), "ok": 1.0}

    def cmd_insert(self, body, db):
        coll, n, errors = db[body["insert"]], 0, []
        for i, doc in enumerate(body.get("documents", [])):
            try:
                coll.insert_one(doc)
                n += 1
            except mongomock.DuplicateKeyError as exc:
                errors.append({"index": i, "code": 11000, "errmsg": f"E11000 duplicate key error: {exc}"})
                if body.get("ordered", True):
                    break
        return {"n": n, "ok": 1.0, **({"writeErrors": errors} if errors else {})}

    def cmd_update(self, body, db):
        coll = db[body["update"]]
        n = modified = 0
        upserted, errors = [], []
        for i, statement in enumerate(body.get("updates", [])):
            q, u, upsert = statement["q"], statement["u"], bool(statement.get("upsert"))
            try:
                if isinstance(u, dict) and u and not next(iter(u)).startswith("$"):
                    result = coll.replace_one(q, u, upsert=upsert)
                elif statement.get("multi"):
                    result = coll.update_many(q, u, upsert=upsert)
                else:
                    result = coll.update_one(q, u, upsert=upsert)
            except (mongomock.DuplicateKeyError, mongomock.WriteError, mongomock.OperationFailure) as exc:
                code = 11000 if isinstance(exc, mongomock.DuplicateKeyError) else (getattr(exc, "code", None) or 8000)
                errors.append({"index": i, "code": code, "errmsg": str(exc)})
                if body.get("ordered", True):
                    break
                continue
            if result.upserted_id is not None:
                upserted.append({"index": i, "_id": result.upserted_id})
                n += 1
            else:
                n += result.matched_count
                modified += result.modified_count
        reply: dict = {"n": n, "nModified": modified, "ok": 1.0}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
            if self.omit_nmodified and len(errors) == len(body.get("updates", [])):
                del reply["nModified"]  # as some MongoDB-compatible servers reply
        return reply

    def cmd_delete(self, body, db):
        coll, n = db[body["delete"]], 0
        for statement in body.get("deletes", []):
            if int(statement.get("limit", 0)) == 1:
                n += coll.delete_one(statement["q"]).deleted_count
            else:
                n += coll.delete_many(statement["q"]).deleted_count
        return {"n": n, "ok": 1.0}

    def cmd_findandmodify(self, body, db):
        from pymongo import ReturnDocument

        coll = db[body["findAndModify"]]
        query, sort, fields = body.get("query") or {}, list((body.get("sort") or {}).items()) or None, body.get("fields")
        if body.get("remove"):
            value = coll.find_one_and_delete(query, projection=fields, sort=sort)
            return {"value": value, "lastErrorObject": {"n": int(value is not None)}, "ok": 1.0}
        before = coll.find_one(query, {"_id": 1})
        value = coll.find_one_and_update(
            query, body["update"], projection=fields, sort=sort, upsert=bool(body.get("upsert")),
            return_document=ReturnDocument.AFTER if body.get("new") else ReturnDocument.BEFORE,
        )
        last = {"n": 1 if (value is not None or body.get("upsert")) else 0, "updatedExisting": before is not None}
        return {"value": value, "lastErrorObject": last, "ok": 1.0}


# -- the wire ---------------------------------------------------------------------------------
def _read(sock_file, n: int) -> bytes:
    data = sock_file.read(n)
    if len(data) < n:
        raise EOFError
    return data


def _op_msg_body(payload: bytes) -> dict:
    flags = struct.unpack_from("<I", payload)[0]
    end = len(payload) - (4 if flags & 1 else 0)
    pos, body, sequences = 4, None, {}
    while pos < end:
        kind = payload[pos]
        pos += 1
        size = struct.unpack_from("<i", payload, pos)[0]
        if kind == 0:
            body = bson.decode(payload[pos : pos + size], _CODEC)
        else:
            section = payload[pos : pos + size]
            name_end = section.index(b"\0", 4)
            name = section[4:name_end].decode()
            sequences[name] = bson.decode_all(section[name_end + 1 :], _CODEC)
        pos += size
    body = dict(body or {})
    body.update(sequences)
    return body


class Handler(socketserver.StreamRequestHandler):
    backend: Backend

    def handle(self) -> None:
        request_ids = itertools.count(1)
        while True:
            try:
                header = _read(self.rfile, 16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                payload = _read(self.rfile, length - 16)
            except (EOFError, ConnectionError):
                return
            if opcode == OP_MSG:
                reply = bson.encode(self.backend.run(_op_msg_body(payload)))
                out = struct.pack("<I", 0) + b"\0" + reply
                code = OP_MSG
            elif opcode == OP_QUERY:  # the legacy handshake: isMaster on admin.$cmd
                pos = payload.index(b"\0", 4) + 1 + 8
                size = struct.unpack_from("<i", payload, pos)[0]
                query = bson.decode(payload[pos : pos + size], _CODEC)
                query = query.get("$query", query)
                reply = bson.encode(self.backend.run({"isMaster": 1, **{k: v for k, v in query.items() if k != "isMaster"}}))
                out = struct.pack("<iqii", 0, 0, 0, 1) + reply
                code = OP_REPLY
            else:
                return
            try:
                self.wfile.write(struct.pack("<iiii", 16 + len(out), next(request_ids), request_id, code) + out)
            except ConnectionError:  # the client hung up (e.g. it refused a reply over its message limit)
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def uri(self, database: str = "") -> str:
        return f"mongodb://127.0.0.1:{self.server_address[1]}/{database}"


def serve(port: int = 0, backend: t.Optional[Backend] = None) -> Server:
    """Start a server on 127.0.0.1:``port`` (0: a free one) in a background thread;
    ``server.uri(name)`` is the URI of database ``name``, ``server.shutdown()`` stops it."""
    handler = type("BoundHandler", (Handler,), {"backend": backend or Backend()})
    server = Server(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=27999)
    parser.add_argument("--no-split", action="store_true", help="do not bound replies at 16 MiB")
    parser.add_argument("--without", default="", help="comma-separated: lookup, max")
    parser.add_argument("--omit-nmodified", action="store_true")
    args = parser.parse_args()
    backend = Backend(split=not args.no_split, without=[w for w in args.without.split(",") if w], omit_nmodified=args.omit_nmodified)
    server = serve(args.port, backend)
    print(f"mongomock behind the MongoDB wire protocol on 127.0.0.1:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
