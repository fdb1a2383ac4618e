"""The commands that look at a database: ls, show, search, status, backfill, retry, failures."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
import typing as t

from pinnacle.cli.connection import connect
from pinnacle.cli.output import print_jobs, print_json, print_status, print_table, short, stats_line, status_rows
from pinnacle.errors import ConfigError

__all__ = ["cmd_ls", "cmd_show", "cmd_search", "cmd_status", "cmd_backfill", "cmd_retry", "cmd_failures"]

_TYPES = {"model": "Model", "listener": "Listener", "vectorindex": "VectorIndex", "vector_index": "VectorIndex", "index": "VectorIndex"}


def component_type(name: str) -> str:
    return _TYPES.get(name.lower(), name)


def cmd_ls(args: argparse.Namespace) -> int:
    db = connect(args)
    components = db.show()
    if components:
        print_table(
            ["TYPE", "IDENTIFIER", "VERSION", "UUID"],
            [[c["type"], c["identifier"], c["version"], c["uuid"]] for c in components],
        )
    else:
        print(f"No components in {db.backend.safe_uri}.")
    tables = db.backend.list_tables()
    if tables:
        print()
        print_table(["TABLE", "ROWS"], [[name, db[name].count()] for name in tables])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    db = connect(args)
    type_id = component_type(args.type)
    found = db.show(type_id, args.identifier)
    if args.identifier is None:
        print("\n".join(found) if found else f"No {type_id} in {db.backend.safe_uri}.")
    else:
        print_json(found)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError(f"-n must be at least 1, got {args.n}.")
    db = connect(args)
    index = db.load("VectorIndex", args.index)
    query_listener = index.compatible_listener or index.indexing_listener
    key = query_listener.key
    if not isinstance(key, str):
        raise ConfigError(
            f"VectorIndex {args.index!r}: its listener {query_listener.identifier!r} reads several columns {key!r}; "
            "search it from Python with db[table].like({...})."
        )
    table = args.table or index.indexing_listener.select
    hits = db[table].like(
        {key: args.text}, vector_index=args.index, n=args.n, filter=parse_filters(args.filter),
        mode=getattr(args, "mode", "vector"), rerank=getattr(args, "rerank", None), candidates=getattr(args, "candidates", None),
    )
    if args.json:
        print_json(hits)
        return 0
    if not hits:
        print(f"No rows in {table!r} have an embedding yet (pinnacle status shows what is pending).")
        return 0
    pk = db.backend.primary_key(table)
    for rank, hit in enumerate(hits, 1):
        extra = {k: v for k, v in hit.items() if k not in (key, pk, "_score")}
        details = "  " + " ".join(f"{k}={short(v, 30)}" for k, v in extra.items()) if extra else ""
        score = "   -  " if hit["_score"] is None else f"{hit['_score']:.4f}"
        print(f"{rank:>3}. {score}  [{hit[pk]}]  {short(hit.get(key))}{details}")
    return 0


def parse_filters(items: t.Optional[t.Sequence[str]]) -> t.Optional[dict[str, t.Any]]:
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


def cmd_status(args: argparse.Namespace) -> int:
    db = connect(args)
    if args.json:
        rows = {r.pop("listener"): r for r in status_rows(db)}
        for name, job in db.jobs().items():  # the latest bulk job of each listener
            rows[name]["job"] = job
        print_json(rows)
        return 0
    print(f"Database {db.backend.safe_uri}")
    print_status(db)
    print_jobs(db)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    options = {k: v for k, v in (("num_actors", args.num_actors), ("chunk_rows", args.chunk_rows)) if v is not None}
    db = connect(args)
    start = time.perf_counter()
    stats = db.backfill(args.listener, compute=args.compute, **options)
    print(stats_line(stats, time.perf_counter() - start) if stats.rows else f"Nothing pending for {args.listener!r}.")
    print_jobs(db, args.listener)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    db = connect(args)
    count = db.retry(args.listener, wait=not args.no_wait)
    if not count:
        print(f"Listener {args.listener!r} has no failed rows.")
        return 0
    done = "requeued" if args.no_wait else "requeued and recomputed"
    print(f"{count} failed row(s) of {args.listener!r} {done}.")
    print_status(db)
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    db = connect(args)
    rows = db.failures(args.listener, limit=args.limit)
    if args.json:
        print_json(rows)
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
