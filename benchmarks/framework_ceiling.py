"""Benchmark: pinnacle's own ceiling, with a model that costs nothing, against the database alone.

For each SQL backend, in one process and one run, with :class:`free_model.FreeEmbedder`
(a precomputed 384-d float32 vector per row, so every second is pinnacle's or the
database's):

(a) the database alone: the driver's own ``executemany`` of ``(id, text, 1.5 KB vector)``
    into a table with pinnacle's column types, 1,000 rows per statement and transaction,
    through the same driver and connection settings as pinnacle;
(b) pinnacle backfill: N rows inserted (not timed), then a ``Listener`` applied over the
    existing table: apply + backfill timed (``db.apply(listener)``);
(c) pinnacle live insert: N rows inserted in ``insert()`` calls of 1,000 rows with the
    listener live (each call returns when its rows' vectors are stored);
(d) Ray with 2 actors (``db.backfill(listener, compute="ray", num_actors=2)``) over N
    existing rows; the wall time includes starting the actors, and the time of a 1,000-row
    job run just before (actor start, connect and load) is shown apart;
(e) with ``--paced R`` (default 50,000): the backfill of (b) with :class:`free_model.PacedEmbedder`,
    a model that takes 1/R s per row without using the CPU (it sleeps, as a process waits for
    its GPU): the ratio to R shows how much of the database's time the drain hides behind
    the model (1.0: all of it).

Each pinnacle figure is printed with its ratio to (a) measured in the same run. Repeats
(``--repeat``) interleave the measurements; the table shows the median and the range.

Run (from the repository root)::

    .venv/bin/python benchmarks/framework_ceiling.py                      # 100,000 rows, all backends
    .venv/bin/python benchmarks/framework_ceiling.py --rows 20000 --backends sqlite --no-ray

Targets (issue 14): backfill >= 0.5x the database alone on every SQL backend; live insert
of 1,000-row batches >= 0.4x. Tests never import this module.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import typing as t
import uuid

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # free_model, here and (through PYTHONPATH) in the Ray workers

DEFAULT_URLS = {
    "sqlite": None,  # a file in a temporary folder
    "postgresql": os.environ.get("PINNACLE_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("PINNACLE_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
}
BATCH = 1000

_WORDS = (
    "after before during although because while since unless morning evening storm market garden "
    "village engine letter question answer journey silence window mountain harbour winter summer "
    "carefully slowly finally suddenly rarely almost nearly quite rather very local national ancient "
    "modern bright quiet noisy expensive cheap careful famous unknown green golden heavy light "
    "people children workers farmers students doctors engineers artists readers voters visitors"
).split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic sentences of 8 to 30 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(_WORDS, k=rng.randint(8, 30))) + f" {i}." for i in range(n)]


class Database:
    """A throw-away database (or SQLite file) for one backend, dropped on close."""

    def __init__(self, backend: str, admin_url: t.Optional[str]):
        self.backend = backend
        self.admin_url = admin_url
        self.name = f"pinnacle_ceiling_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.folder: t.Optional[str] = None
        if backend == "sqlite":
            self.folder = tempfile.mkdtemp(prefix="pinnacle-ceiling-")
            self.url = f"sqlite:///{self.folder}/bench.db"
        else:
            from pinnacle.plugins.sql.engine import normalise_url

            self._admin(f"CREATE DATABASE {self.name}")
            self.url = normalise_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        from pinnacle.plugins.sql.engine import create_engine

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def close(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        extra = " WITH (FORCE)" if self.backend == "postgresql" else ""
        self._admin(f"DROP DATABASE IF EXISTS {self.name}{extra}")


# -- (a) the database alone --------------------------------------------------------------------
def database_alone(db, table: str, ids: list[str], texts: list[str]) -> float:
    """Seconds for the driver's executemany of ``(id, text, vector)``, ``BATCH`` rows per transaction."""
    import sqlalchemy as sa

    from free_model import POOL, VECTOR_BYTES
    from pinnacle.plugins.sql.schema import blob, key_string, long_text

    backend = db.backend
    engine = backend.engine
    tbl = sa.Table(table, sa.MetaData(), sa.Column("id", key_string(64), primary_key=True),
                   sa.Column("text", long_text), sa.Column("vec", blob))
    tbl.create(engine)
    marker = "?" if engine.dialect.dbapi.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {backend.quote(table)} (id, text, vec) VALUES ({marker}, {marker}, {marker})"
    raw = engine.raw_connection()  # the driver's connection, with pinnacle's settings (SQLite: WAL...)
    autocommit = engine.dialect.name == "sqlite"  # pinnacle issues BEGIN itself on SQLite
    try:
        start = time.perf_counter()
        for s in range(0, len(ids), BATCH):
            rows = [(ids[i], texts[i], VECTOR_BYTES[i % POOL]) for i in range(s, min(s + BATCH, len(ids)))]
            cur = raw.cursor()
            if autocommit:
                cur.execute("BEGIN")
            cur.executemany(sql, rows)
            if autocommit:
                cur.execute("COMMIT")
            else:
                raw.commit()
            cur.close()
        seconds = time.perf_counter() - start
    finally:
        raw.close()
    count = backend.count(table)
    assert count == len(ids), f"{table}: {count} rows, expected {len(ids)}"
    return seconds


# -- (b), (c), (d) pinnacle --------------------------------------------------------------------
def fill(db, table: str, ids: list[str], texts: list[str]) -> None:
    for s in range(0, len(ids), 10_000):
        db[table].insert([{"_id": ids[i], "text": texts[i]} for i in range(s, min(s + 10_000, len(ids)))])


def check(db, listener: str, n: int) -> None:
    status = db.status()[listener]
    if status["outputs"] != n or status["pending"] or status["failed"]:
        raise SystemExit(f"{listener}: expected {n} outputs and nothing pending, got {status}")


def backfill(db, model, table: str, ids, texts) -> float:
    import pinnacle

    fill(db, table, ids, texts)
    start = time.perf_counter()
    db.apply(pinnacle.Listener(f"{table}-emb", model=model, key="text", select=table), show_progress_bar=False)
    seconds = time.perf_counter() - start
    check(db, f"{table}-emb", len(ids))
    return seconds


def live_insert(db, model, table: str, ids, texts) -> float:
    import pinnacle

    db[table].insert([{"_id": "warm", "text": "warm up"}])
    db.apply(pinnacle.Listener(f"{table}-emb", model=model, key="text", select=table), show_progress_bar=False)
    start = time.perf_counter()
    for s in range(0, len(ids), BATCH):
        db[table].insert([{"_id": ids[i], "text": texts[i]} for i in range(s, min(s + BATCH, len(ids)))])
    seconds = time.perf_counter() - start
    check(db, f"{table}-emb", len(ids) + 1)
    return seconds


def paced_backfill(db, rate: float, table: str, ids, texts) -> float:
    from free_model import PacedEmbedder

    return backfill(db, PacedEmbedder(identifier="paced", rows_per_s=rate), table, ids, texts)


def ray_backfill(db, model, table: str, ids, texts, actors: int) -> tuple[float, float]:
    """Seconds of a Ray job over ``ids`` and of a 1,000-row job just before (the fixed cost)."""
    import pinnacle

    fill(db, f"{table}_small", ids[:BATCH], texts[:BATCH])
    fill(db, table, ids, texts)
    for name in (f"{table}_small", table):
        db.apply(pinnacle.Listener(f"{name}-emb", model=model, key="text", select=name), wait=False)
    options = {"compute": "ray", "num_actors": actors, "show_progress_bar": False}
    start = time.perf_counter()
    db.backfill(f"{table}_small-emb", **options)
    small = time.perf_counter() - start
    check(db, f"{table}_small-emb", BATCH)
    start = time.perf_counter()
    db.backfill(f"{table}-emb", **options)
    seconds = time.perf_counter() - start
    check(db, f"{table}-emb", len(ids))
    return seconds, small


def bench_backend(backend: str, url: t.Optional[str], args, repeat: int) -> dict[str, t.Any]:
    import pinnacle
    from free_model import FreeEmbedder

    n = args.rows
    texts = make_texts(n, seed=repeat)
    ids = [f"r{i:07d}" for i in range(n)]
    model = FreeEmbedder(identifier="free")
    store = Database(backend, url)
    out: dict[str, t.Any] = {}
    try:
        db = pinnacle.connect(store.url)
        try:
            db["warm"].insert([{"_id": "w", "text": "warm"}])
            db.apply(pinnacle.Listener("warm-emb", model=model, key="text", select="warm"))
            out["alone"] = n / database_alone(db, "raw_rows", ids, texts)
            out["backfill"] = n / backfill(db, model, "docs_backfill", ids, texts)
            out["live"] = n / live_insert(db, model, "docs_live", ids, texts)
            if args.paced:
                out["paced"] = n / paced_backfill(db, args.paced, "docs_paced", ids, texts)
            if args.ray:
                seconds, small = ray_backfill(db, model, "docs_ray", ids, texts, args.actors)
                out["ray"] = n / seconds
                out["ray_small_s"] = small
        finally:
            db.close()
    finally:
        store.close()
    return out


# -- reporting ---------------------------------------------------------------------------------
def report(results: dict[str, list[dict[str, t.Any]]], args) -> None:
    def cell(values: list[float], fmt: str = "{:,.0f}") -> str:
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"

    columns = [("alone", "the database alone"), ("backfill", "pinnacle backfill"), ("live", "live insert, 1,000-row batches")]
    if args.ray:
        columns.append(("ray", f"Ray backfill, {args.actors} actors"))
    paced = f"backfill, model at {args.paced:,.0f} rows/s"
    print()
    print(f"framework ceiling: {args.rows:,} rows, free model (precomputed 384-d float32), repeat={args.repeat}")
    print("rows/s: median (range over repeats); ratio = pinnacle rows/s / the database alone, same repeat")
    print()
    labels = [label for _, label in columns] + ([f"{paced} (ratio to the model)"] if args.paced else [])
    print(f"| backend | {' | '.join(labels)} |")
    print("| --- |" + " ---: |" * len(labels))
    for backend, runs in results.items():
        cells = [cell([r["alone"] for r in runs])]
        for key, _ in columns[1:]:
            rates = [r[key] for r in runs]
            ratios = [r[key] / r["alone"] for r in runs]
            cells.append(f"{cell(rates)} ({cell(ratios, '{:.2f}')}x)")
        if args.paced:
            rates = [r["paced"] for r in runs]
            cells.append(f"{cell(rates)} ({cell([x / args.paced for x in rates], '{:.2f}')}x)")
        print(f"| {backend} | {' | '.join(cells)} |")
    if args.ray:
        print()
        smalls = ", ".join(f"{b} {cell([r['ray_small_s'] for r in runs], '{:.1f}')} s" for b, runs in results.items())
        print(f"Ray: a {BATCH:,}-row job just before each timed one took {smalls} (actor start, connect, model load:")
        print("  a fixed cost per job that the Ray column's wall time includes).")
    print()
    print("Targets (issue 14): backfill >= 0.5x the database alone; live insert >= 0.4x.")
    if args.paced:
        print(f"{paced}: the free model slowed to {args.paced:,.0f} rows/s without using the CPU (a GPU's pace);")
        print("  ratio to the model alone: 1.0 means the database's time is hidden behind the model's.")


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per measurement (default 100000)")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql", help="comma-separated: sqlite,postgresql,mysql")
    parser.add_argument("--repeat", type=int, default=1, help="repeats of every measurement (default 1)")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors (default 2)")
    parser.add_argument("--no-ray", dest="ray", action="store_false", help="skip the Ray measurement")
    parser.add_argument("--paced", type=float, default=50_000.0, metavar="R",
                        help="also backfill with a model taking 1/R s per row, CPU-free (default 50000; 0: skip)")
    parser.add_argument("--url", action="append", default=[], metavar="BACKEND=URL",
                        help="server URL for a backend, e.g. postgresql=postgresql://postgres@host/db")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in DEFAULT_URLS:
            parser.error(f"unknown backend {b!r}; choose from {list(DEFAULT_URLS)}")
    urls = {**DEFAULT_URLS, **dict(u.split("=", 1) for u in args.url)}

    import pinnacle

    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {' '.join(sys.argv)}")
    print(f"pinnacle {pinnacle.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if args.ray:
        import ray

        ray.init(num_cpus=max(args.actors, os.cpu_count() or 1), include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))}})
    results: dict[str, list[dict[str, t.Any]]] = {b: [] for b in backends}
    try:
        for r in range(args.repeat):
            for backend in backends:
                start = time.perf_counter()
                results[backend].append(bench_backend(backend, urls[backend], args, r))
                print(f"[{backend}] repeat {r + 1}: {time.perf_counter() - start:.0f} s, "
                      + ", ".join(f"{k} {v:,.0f}" for k, v in results[backend][-1].items()), flush=True)
    finally:
        if args.ray:
            import ray

            ray.shutdown()
    report(results, args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
