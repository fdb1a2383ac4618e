"""How the command prints: tables, JSON, drain statistics, listener status and bulk jobs."""

from __future__ import annotations

import datetime as _dt
import json
import time
import typing as t

import pinnacle
from pinnacle.embedding.drain import DrainStats

__all__ = ["print_table", "print_json", "short", "stats_line", "status_rows", "print_status", "print_jobs"]


def print_table(headers: t.Sequence[str], rows: t.Sequence[t.Sequence[t.Any]], indent: str = "") -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    for r in cells:
        line = "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        print(indent + line.rstrip())


def print_json(value: t.Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=_json_default))


def _json_default(value: t.Any) -> t.Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def short(value: t.Any, width: int = 100) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def stats_line(stats: DrainStats, seconds: float) -> str:
    parts = [f"{stats.outputs} embedded"]
    for name in ("removed", "retrying", "failed", "skipped"):
        if getattr(stats, name):
            parts.append(f"{getattr(stats, name)} {name}")
    rate = f", {stats.rows / seconds:.0f} rows/s" if seconds > 0 and stats.rows >= 10 else ""
    return f"{stats.rows} row(s): " + ", ".join(parts) + f" in {seconds:.2f} s{rate}"


def status_rows(db: pinnacle.Datalayer) -> list[dict[str, t.Any]]:
    """``db.status()`` per listener, with its table and the table's row count."""
    rows = []
    for name, counts in db.status().items():
        table = db.show("Listener", name)["data"]["select"]  # the record: the model need not import here
        source_rows = db[table].count() if db.backend.has_table(table) else 0
        rows.append({"listener": name, "table": table, "rows": source_rows, **counts})
    return rows


STATUS_COLUMNS = ["listener", "version", "table", "rows", "outputs", "pending", "in_flight", "retrying", "failed"]


def print_status(db: pinnacle.Datalayer, indent: str = "") -> list[dict[str, t.Any]]:
    rows = status_rows(db)
    if not rows:
        print(f"{indent}No listeners in {db.backend.safe_uri}.")
        return rows
    lines = []
    for row in rows:
        shown = row if row.get("loadable", True) else {**row, "listener": f"{row['listener']} (not loadable here)"}
        lines.append([shown.get(k, "") for k in STATUS_COLUMNS])
        building = row.get("building")
        if building:  # a changed model being computed beside the serving version
            shown = {**building, "listener": f"{row['listener']} (building)", "table": row["table"], "rows": row["rows"]}
            lines.append([shown.get(k, "") for k in STATUS_COLUMNS])
    print_table(STATUS_COLUMNS, lines, indent)
    for row in rows:
        if not row.get("loadable", True):
            print(f"{indent}{row['listener']}: {row['error']} Its pending rows wait for a process that can load it.")
    return rows


def print_jobs(db: pinnacle.Datalayer, listener: t.Optional[str] = None) -> None:
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
            print(f"    {short(job['error'], 200)}")
