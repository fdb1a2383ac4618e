"""Reading a large artifact from MongoDB: three ways, measured on mongomock (prints figures).

    .venv/bin/python tests/backends/mongodb/measure_artifacts.py [MB]

* ``list``: the former ``get_artifact``: one ``find`` of all 8 MB parts, ``list()``, join.
* ``batch1``: today's ``get_artifact``: the same parts, ``batch_size(1)``, written into one growing buffer.
* ``gridfs``: the artifact stored with :mod:`gridfs` (255 KB chunks), read with ``GridOut.read()``.

Each runs in a fresh process: time and peak Python memory of the read (tracemalloc), and
the largest reply a server would send that fills each batch to the size the cursor asks
for without splitting at 16 MiB (first batch 101 documents, getMore unbounded): the BSON
size of the documents in it. mongomock has no wire, so its time and memory say little
about a server (it also deep-copies every document it returns); the reply size is the
figure that decides whether a read works on such a server (pymongo refuses a message
over 48 MB). Not a test: nothing here is timed by the suite.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc

PART = 8 * 1024 * 1024
GRIDFS_CHUNK = 255 * 1024
FIRST_BATCH = 101  # the server's default first batch (documents)


def largest_reply(doc_sizes: list[int], batch_size: int) -> int:
    """Bytes of the largest reply when every reply holds ``batch_size`` documents (0: the
    first holds 101, each getMore all the rest)."""
    if batch_size:
        groups = [doc_sizes[i : i + batch_size] for i in range(0, len(doc_sizes), batch_size)]
    else:
        groups = [doc_sizes[:FIRST_BATCH], doc_sizes[FIRST_BATCH:]]
    return max(sum(g) for g in groups if g)


def _groups(docs: list, batch_size: int) -> list[list]:
    if batch_size:
        return [docs[i : i + batch_size] for i in range(0, len(docs), batch_size)]
    return [g for g in (docs[:FIRST_BATCH], docs[FIRST_BATCH:]) if g]


def wire_read(stored: list[dict], batch_size: int, way: str) -> bytes:
    """The client side of a read from a server that does not split batches: each reply
    arrives as raw BSON (the socket buffer), is decoded, and its documents are used; only
    one reply is held at a time (as pymongo's cursor does)."""
    import bson

    def documents():
        for group in _groups(stored, batch_size):
            raw = bson.encode({"cursor": {"nextBatch": group}, "ok": 1.0})
            reply = bson.decode(raw)
            del raw
            yield from reply["cursor"]["nextBatch"]
            del reply

    if way == "list":
        return b"".join(bytes(r["data"]) for r in list(documents()))
    out = io.BytesIO()
    for doc in documents():
        out.write(doc["data"])
    return out.getvalue()


def run(way: str, mb: int, model: str) -> dict:
    import bson
    import mongomock
    from bson.binary import Binary

    data = os.urandom(mb * 1024 * 1024)
    db = mongomock.MongoClient().pn_measure
    if way == "gridfs":
        import gridfs
        from mongomock.gridfs import enable_gridfs_integration

        enable_gridfs_integration()
        fs = gridfs.GridFS(db)
        file_id = fs.put(data, filename="a" * 64)
        stored = list(db["fs.chunks"].find({"files_id": file_id}, {"_id": 0, "n": 1, "data": 1}).sort("n", 1))
        batch = 0  # GridOut's chunk cursor sets no batch size
    else:
        parts = max(1, -(-len(data) // PART))
        for i in range(parts):
            db.art.insert_one({"sha256": "a" * 64, "part": i, "parts": parts, "data": Binary(data[i * PART : (i + 1) * PART])})
        stored = list(db.art.find({}, {"_id": 0, "part": 1, "parts": 1, "data": 1}).sort("part", 1))
        batch = 1 if way == "batch1" else 0
    sizes = [len(bson.encode(d)) for d in stored]
    if model == "mongomock":
        del stored
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    if model == "wire":
        got = wire_read(stored, batch, way)
    elif way == "gridfs":
        got = fs.get(file_id).read()
    elif way == "list":
        rows = list(db.art.find({"sha256": "a" * 64}, {"_id": 0, "part": 1, "parts": 1, "data": 1}).sort("part", 1))
        got = b"".join(bytes(r["data"]) for r in rows)
        del rows
    else:
        out = io.BytesIO()  # as get_artifact: grows in place, getvalue() hands the buffer over
        for row in db.art.find({"sha256": "a" * 64}, {"_id": 0, "part": 1, "parts": 1, "data": 1}).sort("part", 1).batch_size(1):
            out.write(row["data"])
        got = out.getvalue()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == data
    return {"way": way, "model": model, "MB": mb, "read_s": round(seconds, 3), "peak_MB": round(peak / 2**20, 1),
            "peak_x_artifact": round(peak / len(data), 2), "documents": len(sizes),
            "largest_reply_MB": round(largest_reply(sizes, batch) / 2**20, 1)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(run(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    print(f"{'way':8} {'read by':10} {'MB':>4} {'read s':>7} {'peak MB':>8} {'peak/size':>9} {'docs':>5} {'largest reply MB':>17}")
    for model in ("mongomock", "wire"):
        for way in ("list", "batch1", "gridfs"):
            cmd = [sys.executable, __file__, "--one", way, str(mb), model]
            r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            print(f"{r['way']:8} {r['model']:10} {r['MB']:>4} {r['read_s']:>7} {r['peak_MB']:>8} {r['peak_x_artifact']:>9} "
                  f"{r['documents']:>5} {r['largest_reply_MB']:>17}")


if __name__ == "__main__":
    main()
