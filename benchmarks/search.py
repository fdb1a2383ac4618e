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

Datasets: ``random`` (normalised Gaussian vectors, the hard case for graphs) and
``clustered`` (1,000 centres plus noise, normalised: closer to real embeddings). Queries
are dataset vectors plus noise (of norm about 0.5). Vectors are written straight into the outputs table with
binary COPY: this measures search, not embedding.

Run (from the repository root)::

    .venv/bin/python benchmarks/search.py              # everything, about 10 minutes on 2 cores
    .venv/bin/python benchmarks/search.py --faiss      # plus the faiss reference rows
    .venv/bin/python benchmarks/search.py --rows 20000 --skip-pg

Tests never import this module.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

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
