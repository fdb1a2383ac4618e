"""Benchmark: search over 100,000 x 384 vectors, exact and approximate, in memory and in PostgreSQL.

One run prints one table (Markdown) with, per dataset:

* exact numpy (:class:`~pinnacle.backends.searcher.NumpySearcher`, pinnacle's default
  in-memory index): p50/p95 latency of one query (recall is 1 by definition);
* the in-memory ANN option (:class:`~pinnacle.backends.ann.HnswSearcher`, hnswlib) at a
  few ``ef_search`` values: build time, recall@10 against exact, latency;
* with ``--faiss``, faiss HNSWFlat and IVFFlat at comparable settings, for reference (how
  the in-memory library was chosen: see docs/search.md);
* pgvector (a PostgreSQL 16 cluster started from the ``pgserver`` wheel's binaries, or
  ``--pg-uri``): exact search and the HNSW index through pinnacle's own search path
  (``VectorIndex(index=None)`` / ``index="hnsw"``), plus a filtered query (1% of rows).

With ``--hybrid`` it measures hybrid search instead (issue 15), through ``like()`` end to end
on each database: 100,000 rows of text (demo sentences, each with a unique case code
``C-000123``) and 384-dim vectors, ``VectorIndex(full_text=True)``; per backend the p50/p95 of
``mode="vector"``, ``"text"`` and ``"hybrid"`` (n=10, 50 candidates per side), hybrid with a
filter on 1% of rows, and the time ``apply()`` took to build the full-text index. Backends:
SQLite (FTS5), PostgreSQL (the server on 127.0.0.1:5432: tsvector/GIN, vectors in memory),
PostgreSQL with pgvector (the pgserver cluster: both sides in the database), MariaDB on
127.0.0.1:3306 (InnoDB FULLTEXT). MongoDB is not measured: mongomock has no ``$text``.

Datasets: ``random`` (normalised Gaussian vectors, the hard case for graphs) and
``clustered`` (1,000 centres plus noise, normalised: closer to real embeddings). Queries
are dataset vectors plus noise (of norm about 0.5). Vectors are written straight into the outputs table with
binary COPY: this measures search, not embedding.

Run (from the repository root)::

    .venv/bin/python benchmarks/search.py              # everything, about 10 minutes on 2 cores
    .venv/bin/python benchmarks/search.py --faiss      # plus the faiss reference rows
    .venv/bin/python benchmarks/search.py --rows 20000 --skip-pg
    .venv/bin/python benchmarks/search.py --hybrid     # hybrid latency per backend (about 10 minutes)

Tests never import this module.
"""

from __future__ import annotations

import argparse
import dataclasses as dc
import hashlib
import importlib
import importlib.util
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

# OpenMP threads (faiss) spin after each call by default and starve numpy's BLAS threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pinnacle  # noqa: E402
from pinnacle.backends.ann import HnswSearcher  # noqa: E402
from pinnacle.backends.searcher import NumpySearcher  # noqa: E402

DIM = 384
K = 10
Result = dict[str, t.Any]


# -- data -------------------------------------------------------------------------------------
def make_dataset(kind: str, rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "random":
        data = rng.normal(size=(rows, DIM)).astype(np.float32)
    else:
        centres = rng.normal(size=(1000, DIM)).astype(np.float32)
        data = centres[rng.integers(0, len(centres), rows)] + 0.5 * rng.normal(size=(rows, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    picked = data[rng.choice(rows, queries, replace=False)]
    # Noise of norm ~0.5 on unit vectors: a query near, not on, a stored vector.
    probes = picked + (0.5 / np.sqrt(DIM)) * rng.normal(size=picked.shape).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    return data, probes.astype(np.float32)


def exact_top(data: np.ndarray, queries: np.ndarray, within: t.Optional[np.ndarray] = None) -> list[set[int]]:
    out = []
    for q in queries:
        scores = data @ q
        if within is not None:
            scores = np.where(within, scores, -np.inf)
        out.append(set(np.argpartition(-scores, K)[:K].tolist()))
    return out


def timed(fn: t.Callable[[np.ndarray], list[int]], queries: np.ndarray, truth: list[set[int]]) -> Result:
    times, found = [], 0
    for q in queries[:20]:  # warm: caches, shared buffers, the index's pages
        fn(q)
    for q, want in zip(queries, truth):
        start = time.perf_counter()
        got = fn(q)
        times.append(time.perf_counter() - start)
        found += len(want & set(got))
    ms = np.array(times) * 1e3
    return {"recall": found / (K * len(queries)), "p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}


def ids_of(hits: list[tuple[t.Any, float]]) -> list[int]:
    return [int(source) for source, _ in hits]


# -- in memory --------------------------------------------------------------------------------
def bench_memory(name: str, data: np.ndarray, queries: np.ndarray, truth, use_faiss: bool) -> list[Result]:
    ids = list(range(len(data)))
    results = []
    exact = NumpySearcher("cosine")
    exact.upsert(ids, data)
    results.append({"dataset": name, "method": "exact numpy (NumpySearcher)", "build": None,
                    **timed(lambda q: ids_of(exact.search(q, K)), queries, truth)})
    del exact
    start = time.perf_counter()
    graph = HnswSearcher("cosine", m=16, ef_construction=64)
    graph.upsert(ids, data)
    build = time.perf_counter() - start
    for ef in (40, 100, 200):
        graph.ef_search = ef
        results.append({"dataset": name, "method": f"HnswSearcher (hnswlib) M=16 ef_search={ef}", "build": build,
                        **timed(lambda q: ids_of(graph.search(q, K)), queries, truth)})
    del graph
    if use_faiss:
        results += bench_faiss(name, data, queries, truth)
    return results


def bench_faiss(name: str, data: np.ndarray, queries: np.ndarray, truth) -> list[Result]:
    import faiss

    results = []
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(data)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    for ef in (40, 100, 200):
        hnsw.hnsw.efSearch = ef
        results.append({"dataset": name, "method": f"faiss HNSWFlat M=16 efSearch={ef} (reference)", "build": build,
                        **timed(lambda q: hnsw.search(q[None], K)[1][0].tolist(), queries, truth)})
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    lists = int(np.sqrt(len(data)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.train(data)
    ivf.add(data)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    for probes in (8, 32):
        ivf.nprobe = probes
        results.append({"dataset": name, "method": f"faiss IVFFlat lists={lists} nprobe={probes} (reference)", "build": build,
                        **timed(lambda q: ivf.search(q[None], K)[1][0].tolist(), queries, truth)})
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return results


# -- pgvector -------------------------------------------------------------------------------
class Cluster:
    """A throwaway PostgreSQL 16 with pgvector from the pgserver wheel (as the tests start one)."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("pgserver")
        if spec is None:
            raise SystemExit("pgvector rows need the pgserver wheel (pip install 'pinnacle[test]') or --pg-uri")
        self.bin = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        self.folder = Path(tempfile.mkdtemp(prefix="pinnacle-bench-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.folder, user="postgres")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=300)

    def __enter__(self) -> "Cluster":
        data = str(self.folder / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            "-c shared_buffers=1GB -c maintenance_work_mem=1GB -c fsync=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", data, "-l", str(self.folder / "log"), "-o", options, "-w", "start")
        return self

    def __exit__(self, *exc: t.Any) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def copy_outputs(db: "pinnacle.Datalayer", table: str, data: np.ndarray, model_uuid: str) -> None:
    """Write ``data`` as the outputs (``_source`` = row number) with binary COPY, pgvector's wire format."""
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    uuid = model_uuid.encode()
    now = struct.pack("!d", time.time())
    vector_head = struct.pack("!hh", DIM, 0)
    big_endian = data.astype(">f4")
    chunks = [header]
    for i in range(len(data)):
        source = str(i).encode()
        vector = vector_head + big_endian[i].tobytes()
        chunks.append(
            struct.pack("!hi", 4, len(source)) + source + struct.pack("!i", len(vector)) + vector
            + struct.pack("!i", len(uuid)) + uuid + struct.pack("!i", 8) + now
        )
    chunks.append(struct.pack("!h", -1))
    raw = db.backend.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(f'COPY "{table}" (_source, _output, _model_uuid, _updated_at) FROM STDIN WITH (FORMAT binary)') as copy:
                copy.write(b"".join(chunks))
        raw.commit()
    finally:
        raw.close()


def bench_pgvector(uri: str, name: str, data: np.ndarray, queries: np.ndarray, truth, bucket_truth) -> list[Result]:
    db = pinnacle.connect(uri, pgvector=True)
    with db.backend.engine.begin() as conn:
        for table in ("vecs", "_outputs__vec", "_queue__vec", "_failed__vec", "_pinnacle_components", "_pinnacle_state"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    db.close()
    db = pinnacle.connect(uri, pgvector=True)
    rows = [{"_id": str(i), "bucket": i % 100} for i in range(len(data))]
    db["vecs"].insert(rows)
    listener = pinnacle.Listener("vec", model=pinnacle.Model("given", datatype=pinnacle.Vector(DIM)), key="_id", select="vecs")
    db.apply(pinnacle.VectorIndex("exact", indexing_listener=listener), wait=False)
    with db.backend.engine.begin() as conn:
        conn.exec_driver_sql('DELETE FROM "_queue__vec"')  # the vectors are given: nothing to compute
    copy_outputs(db, "_outputs__vec", data, listener.model.uuid)
    with db.backend.engine.begin() as conn:
        conn.exec_driver_sql('ANALYZE "_outputs__vec"')
    results = []
    exact = db.search.live_index("exact")
    sub = slice(0, 50)  # a full scan per query: fewer queries
    results.append({"dataset": name, "method": "pgvector exact (index=None)", "build": None,
                    **timed(lambda q: ids_of(exact.search(q, K)), queries[sub], truth[sub])})
    results.append({"dataset": name, "method": "pgvector exact, filter 1% of rows", "build": None,
                    **timed(lambda q: ids_of(exact.search(q, K, filter={"bucket": 7})), queries[sub], bucket_truth[sub])})
    db.apply(pinnacle.VectorIndex("hnsw", indexing_listener=listener, index="hnsw", index_options={"m": 16, "ef_construction": 64}))
    graph = db.search.live_index("hnsw")
    start = time.perf_counter()
    graph.native.ensure_index()
    build = time.perf_counter() - start
    for ef in (40, 100, 200):
        graph.native.options["ef_search"] = ef
        results.append({"dataset": name, "method": f"pgvector HNSW m=16 ef_search={ef}", "build": build,
                        **timed(lambda q: ids_of(graph.search(q, K)), queries, truth)})
    graph.native.options["ef_search"] = 40
    results.append({"dataset": name, "method": "pgvector HNSW ef_search=40, filter 1% of rows", "build": build,
                    **timed(lambda q: ids_of(graph.search(q, K, filter={"bucket": 7})), queries[sub], bucket_truth[sub])})
    db.close()
    return results


# -- hybrid (issue 15) ----------------------------------------------------------------------
@dc.dataclass(kw_only=True, repr=False)
class HashQuery(pinnacle.Model):
    """A query embedder for the benchmark: a unit vector seeded by the text's sha256 (microseconds)."""

    signature: str = "singleton"

    def predict(self, x: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(x.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def infer_datatype(self) -> pinnacle.Vector:
        return pinnacle.Vector(DIM)


def _importable_model() -> type:
    """:class:`HashQuery` from this file imported as module ``search`` (components are stored by
    import path, and ``__main__`` is not one other code can import)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("search").HashQuery


def hybrid_texts(rows: int) -> list[str]:
    from pinnacle._demo_corpus import MAX_ROWS, demo_rows

    sentences = [r["text"] for r in demo_rows(MAX_ROWS, seed=3)]
    return [f"{sentences[i % len(sentences)]} Case C-{i:06d}." for i in range(rows)]


def hybrid_queries(rows: int, count: int) -> list[str]:
    rng = np.random.default_rng(7)
    from pinnacle._demo_corpus import QUERIES

    natural = [q for q, _ in QUERIES] + ["the disk on the database server was full", "a quick pasta sauce with basil"]
    codes = [f"error C-{int(j):06d} on my laptop" for j in rng.integers(0, rows, count)]
    return [natural[i % len(natural)] if i % 2 else codes[i] for i in range(count)]


def write_bytes_outputs(db: "pinnacle.Datalayer", table: str, data: np.ndarray, model_uuid: str) -> None:
    """The outputs as float32 bytes (SQLite, MariaDB, PostgreSQL without pgvector)."""
    import sqlalchemy as sa

    outputs = sa.table(table, sa.column("_source"), sa.column("_output"), sa.column("_model_uuid"), sa.column("_updated_at"))
    now = time.time()
    with db.backend.engine.begin() as conn:
        for start in range(0, len(data), 5000):
            conn.execute(outputs.insert(), [
                {"_source": str(i), "_output": data[i].astype("<f4").tobytes(), "_model_uuid": model_uuid, "_updated_at": now}
                for i in range(start, min(len(data), start + 5000))
            ])


def latency(fn: t.Callable[[str], t.Any], queries: list[str]) -> dict[str, float]:
    for q in queries[:10]:
        fn(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {"p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}


def bench_hybrid(name: str, uri: str, data: np.ndarray, queries: list[str], **options: t.Any) -> list[Result]:
    db = pinnacle.connect(uri, **options)
    rows = len(data)
    texts = hybrid_texts(rows)
    start = time.perf_counter()
    for part in range(0, rows, 10_000):
        db["hdocs"].insert([{"_id": str(i), "bucket": i % 100, "text": texts[i]} for i in range(part, min(rows, part + 10_000))])
    loaded = time.perf_counter() - start
    listener = pinnacle.Listener("hemb", model=_importable_model()("hash-query"), key="text", select="hdocs")
    start = time.perf_counter()
    db.apply(pinnacle.VectorIndex("hidx", indexing_listener=listener, full_text=True), wait=False)
    build = time.perf_counter() - start  # the listener's tables and triggers, and the full-text index over every row
    with db.backend.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {db.backend.quote('_queue__hemb')}")  # the vectors are given
    if options.get("pgvector"):
        copy_outputs(db, "_outputs__hemb", data, listener.model.uuid)
    else:
        write_bytes_outputs(db, "_outputs__hemb", data, listener.model.uuid)
    like = db["hdocs"].like
    kind = "pgvector" if options.get("pgvector") else "in memory"
    print(f"  {name}: {rows:,} rows loaded in {loaded:.1f}s, apply (full-text index) {build:.1f}s; vectors {kind}", flush=True)
    results = []
    for label, fn in [
        ("vector", lambda q: like({"text": q}, vector_index="hidx", n=K)),
        ("text", lambda q: like({"text": q}, vector_index="hidx", n=K, mode="text")),
        ("hybrid", lambda q: like({"text": q}, vector_index="hidx", n=K, mode="hybrid")),
        ("hybrid, filter 1% of rows", lambda q: like({"text": q}, vector_index="hidx", n=K, mode="hybrid", filter={"bucket": 7})),
    ]:
        found = latency(fn, queries)
        results.append({"backend": name, "search": label, "build": build, **found})
        print(f"    {label:28s} p50={found['p50']:.2f}ms p95={found['p95']:.2f}ms", flush=True)
    db.close()
    return results


def hybrid_table(results: list[Result]) -> str:
    lines = ["| backend | search | p50 (ms) | p95 (ms) |", "| --- | --- | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['search']} | {r['p50']:.2f} | {r['p95']:.2f} |")
    builds = {r["backend"]: r["build"] for r in results}
    lines.append("")
    lines.append("apply() with full_text=True (tables, triggers, the text index over every row): "
                 + ", ".join(f"{b} {s:.1f} s" for b, s in builds.items()))
    return "\n".join(lines)


def _fresh(kind: str, admin: str, public: bool = False) -> tuple[str, t.Callable[[], None]]:
    """A URI to a new schema (PostgreSQL) or database (MariaDB) on ``admin``'s server, and its drop."""
    import uuid

    import sqlalchemy as sa

    name = f"pn_bench_{uuid.uuid4().hex[:8]}"
    driver = admin.replace("postgresql://", "postgresql+psycopg://").replace("mysql://", "mysql+pymysql://")
    engine = sa.create_engine(driver, isolation_level="AUTOCOMMIT")
    quoted = f'"{name}"' if kind == "postgresql" else f"`{name}`"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE {'SCHEMA' if kind == 'postgresql' else 'DATABASE'} {quoted}")

    def drop() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP {'SCHEMA' if kind == 'postgresql' else 'DATABASE'} {quoted}" + (" CASCADE" if kind == "postgresql" else ""))
        engine.dispose()

    if kind == "postgresql":  # ``public``: where the pgvector cluster has the extension
        return f"{admin}?options=-csearch_path%3D{name}" + (",public" if public else ""), drop
    return admin.rsplit("/", 1)[0] + f"/{name}", drop


def main_hybrid(args: argparse.Namespace) -> None:
    data, _ = make_dataset("clustered", args.rows, 1)
    queries = hybrid_queries(args.rows, args.queries)
    print(f"# hybrid search benchmark: {args.rows:,} rows x {DIM}, {len(queries)} queries (half with a case code), "
          f"k={K}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)
    results: list[Result] = []
    backends = args.backends.split(",")
    if "sqlite" in backends:
        folder = Path(tempfile.mkdtemp(prefix="pinnacle-bench-hybrid-"))
        try:
            results += bench_hybrid("SQLite (FTS5)", f"sqlite:///{folder / 'bench.db'}", data, queries)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    for kind, label, admin in [("postgresql", "PostgreSQL (GIN), vectors in memory", args.postgresql),
                               ("mariadb", "MariaDB (InnoDB FULLTEXT)", args.mariadb)]:
        if kind not in backends:
            continue
        uri, drop = _fresh("postgresql" if kind == "postgresql" else "mariadb", admin)
        try:
            results += bench_hybrid(label, uri, data, queries, **({"pgvector": False} if kind == "postgresql" else {}))
        finally:
            drop()
    if "pgvector" in backends:
        with Cluster() as cluster:
            uri, drop = _fresh("postgresql", cluster.uri, public=True)
            try:
                results += bench_hybrid("PostgreSQL + pgvector (GIN)", uri, data, queries, pgvector=True)
            finally:
                drop()
    print("  MongoDB: not measured (mongomock has no $text; a real server runs the same code)")
    print()
    print(hybrid_table(results))


# -- report ----------------------------------------------------------------------------------
def table(results: list[Result]) -> str:
    lines = [
        "| dataset | method | build (s) | recall@10 | p50 (ms) | p95 (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        build = "" if r["build"] is None else f"{r['build']:.1f}"
        lines.append(f"| {r['dataset']} | {r['method']} | {build} | {r['recall']:.3f} | {r['p50']:.2f} | {r['p95']:.2f} |")
    return "\n".join(lines)


def main(argv: t.Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--datasets", default="random,clustered")
    parser.add_argument("--faiss", action="store_true", help="add faiss HNSWFlat/IVFFlat rows (needs faiss-cpu)")
    parser.add_argument("--skip-pg", action="store_true", help="no pgvector rows")
    parser.add_argument("--pg-uri", help="a PostgreSQL with pgvector to use instead of a pgserver cluster")
    parser.add_argument("--hybrid", action="store_true", help="hybrid search per backend instead (issue 15)")
    parser.add_argument("--backends", default="sqlite,postgresql,pgvector,mariadb", help="--hybrid: which backends")
    parser.add_argument("--postgresql", default="postgresql://postgres@127.0.0.1:5432/test", help="--hybrid: PostgreSQL server")
    parser.add_argument("--mariadb", default="mysql://root@127.0.0.1:3306/test", help="--hybrid: MariaDB server")
    args = parser.parse_args(argv)
    if args.hybrid:
        return main_hybrid(args)

    print(f"# search benchmark: {args.rows:,} x {DIM}, {args.queries} queries, k={K}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}", flush=True)
    results: list[Result] = []
    cluster = None
    if not args.skip_pg and not args.pg_uri:
        cluster = Cluster().__enter__()
    try:
        for name in args.datasets.split(","):
            data, queries = make_dataset(name, args.rows, args.queries)
            truth = exact_top(data, queries)
            done = bench_memory(name, data, queries, truth, args.faiss)
            if not args.skip_pg:
                bucket = (np.arange(len(data)) % 100) == 7
                done += bench_pgvector(args.pg_uri or cluster.uri, name, data, queries, truth, exact_top(data, queries, bucket))
            for r in done:
                print(f"  {r['dataset']:9s} {r['method']:50s} recall@10={r['recall']:.3f} p50={r['p50']:.2f}ms "
                      f"p95={r['p95']:.2f}ms" + ("" if r["build"] is None else f" build={r['build']:.1f}s"), flush=True)
            results += done
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
