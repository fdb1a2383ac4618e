"""Reading a large artifact from MongoDB: three ways, measured (prints figures; not a test).

    .venv/bin/python tests/backends/mongodb/measure_artifacts.py [MB]

* ``list``: the former ``get_artifact``: one ``find`` of all 8 MB parts, ``list()``, join.
* ``batch1``: today's ``get_artifact``: the same parts, ``batch_size(1)``, into one growing buffer.
* ``gridfs``: the artifact stored with :mod:`gridfs` (255 KB chunks), read with ``GridOut.read()``.

Each read runs in a fresh process, on three servers: ``mongomock`` in the same process,
and through pymongo's real network path to ``wire_server.py`` (mongomock behind the wire
protocol, in another process) replying as MongoDB does (``wire``: replies split at 16 MiB)
and as a server that does not split them (``wire-nosplit``). Figures: the read's time, the
peak of the reading process's Python allocations (tracemalloc: the client's side only when
the server is another process), and the outcome. mongomock materializes and copies every
document a cursor returns, so its memory figures say little about a server; the server
side is mongomock in every case, so no time here says how fast a real server is.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
PART = 8 * 1024 * 1024


def read_once(way: str, mb: int, uri: str) -> dict:
    import gridfs
    import mongomock
    import pymongo
    from bson.binary import Binary

    client = mongomock.MongoClient() if uri == "mongomock" else pymongo.MongoClient(uri)
    db = client[f"pn_measure_{way}"]
    data = os.urandom(mb * 1024 * 1024)
    if way == "gridfs":
        if uri == "mongomock":
            from mongomock.gridfs import enable_gridfs_integration

            enable_gridfs_integration()
        fs = gridfs.GridFS(db)
        file_id = fs.put(data)
    else:
        parts = max(1, -(-len(data) // PART))
        for i in range(parts):
            db.art.insert_one({"sha256": "a" * 64, "part": i, "parts": parts, "data": Binary(data[i * PART : (i + 1) * PART])})
    tracemalloc.start()
    start = time.perf_counter()
    try:
        if way == "gridfs":
            got = fs.get(file_id).read()
        elif way == "list":
            rows = list(db.art.find({"sha256": "a" * 64}, {"_id": 0, "part": 1, "parts": 1, "data": 1}).sort("part", 1))
            got = b"".join(bytes(r["data"]) for r in rows)
            del rows
        else:
            out = io.BytesIO()
            cursor = db.art.find({"sha256": "a" * 64}, {"_id": 0, "part": 1, "parts": 1, "data": 1}).sort("part", 1).batch_size(1)
            for row in cursor:
                out.write(row["data"])
            got = out.getvalue()
        outcome = "read" if got == data else "WRONG BYTES"
    except Exception as exc:  # noqa: BLE001 - the outcome is the figure
        outcome = f"{type(exc).__name__}: {str(exc)[:80]}"
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    client.drop_database(db.name)
    return {"s": round(seconds, 2), "peak_MB": round(peak / 2**20), "x": round(peak / len(data), 2), "outcome": outcome}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(read_once(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    servers = {}
    for name, port, flags in (("wire", 27991, []), ("wire-nosplit", 27992, ["--no-split"])):
        servers[name] = subprocess.Popen([sys.executable, str(HERE / "wire_server.py"), "--port", str(port), *flags],
                                         stdout=subprocess.PIPE, text=True)
        servers[name].stdout.readline()  # started
    uris = {"mongomock": "mongomock", "wire": "mongodb://127.0.0.1:27991/", "wire-nosplit": "mongodb://127.0.0.1:27992/"}
    print(f"{mb} MB artifact")
    print(f"{'server':13} {'read':7} {'time s':>7} {'peak MB':>8} {'x size':>7}  outcome")
    try:
        for server, uri in uris.items():
            for way in ("list", "batch1", "gridfs"):
                out = subprocess.run([sys.executable, __file__, "--one", way, str(mb), uri], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{server:13} {way:7} {r['s']:>7} {r['peak_MB']:>8} {r['x']:>7}  {r['outcome']}")
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
