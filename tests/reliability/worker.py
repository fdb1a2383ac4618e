"""Processes the reliability tests start: ``python -m reliability.worker COMMAND URI ...``.

* ``drain``: connect, print ``ready``, then loop ``db.drain()`` until the queues are empty
  (and, with ``--stop-file``, until that file exists too). With ``--go-file`` it waits for
  that file after ``ready`` so that several workers start draining together.
* ``write``: insert ``--count`` rows ``{"_id": f"{prefix}{i}", "text": ...}`` in batches.
* ``apply``: apply a ``HashEmbed`` listener (and compute its backfill).

Each prints one JSON line with what it did when it ends normally.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _wait_for(path: str | None, timeout: float = 120.0) -> None:
    if not path:
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def text_of(row_id: str, revision: int = 0) -> str:
    """The text the tests write for a row (``revision`` > 0 for updates)."""
    return f"row {row_id} revision {revision}"


def _drain(args) -> dict:
    import pinnacle

    db = pinnacle.connect(args.uri, batch_rows=args.batch_rows)
    listener = args.listener
    db.listeners()  # load the listeners before the clock of a kill starts
    print("ready", flush=True)
    _wait_for(args.go_file)
    total = {"rows": 0, "outputs": 0, "removed": 0, "skipped": 0, "passes": 0}
    while True:
        stats = db.drain(listener, show_progress_bar=False)
        total["passes"] += 1
        for key in ("rows", "outputs", "removed", "skipped"):
            total[key] += getattr(stats, key)
        stop_ok = args.stop_file is None or os.path.exists(args.stop_file)
        if stop_ok:
            status = db.status()
            names = [listener] if listener else list(status)
            if all(status[n]["pending"] == 0 and "building" not in status[n] for n in names):
                break
        if stats.rows == 0:
            time.sleep(0.02)
    db.close()
    return total


def _write(args) -> dict:
    import pinnacle

    db = pinnacle.connect(args.uri)
    print("ready", flush=True)
    _wait_for(args.go_file)
    ids = [f"{args.prefix}{i}" for i in range(args.count)]
    for start in range(0, len(ids), args.batch):
        part = ids[start : start + args.batch]
        db[args.table].insert([{"_id": i, "text": text_of(i)} for i in part], wait=args.wait)
    db.close()
    return {"inserted": len(ids)}


def _apply(args) -> dict:
    import pinnacle
    from reliability.flaky_models import HashEmbed

    db = pinnacle.connect(args.uri, batch_rows=args.batch_rows)
    print("ready", flush=True)
    model = HashEmbed(identifier="hash", dim=16)
    db.apply(pinnacle.Listener(args.listener, model=model, key="text", select=args.table), show_progress_bar=False)
    status = db.status()[args.listener]
    db.close()
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="reliability.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("drain")
    p.add_argument("uri")
    p.add_argument("--listener")
    p.add_argument("--batch-rows", type=int, default=16)
    p.add_argument("--go-file")
    p.add_argument("--stop-file")
    p = sub.add_parser("write")
    p.add_argument("uri")
    p.add_argument("--table", default="docs")
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--wait", action="store_true", help="insert with wait=True (drain own rows)")
    p.add_argument("--go-file")
    p = sub.add_parser("apply")
    p.add_argument("uri")
    p.add_argument("--table", default="docs")
    p.add_argument("--listener", default="emb")
    p.add_argument("--batch-rows", type=int, default=16)
    args = parser.parse_args(argv)
    result = {"drain": _drain, "write": _write, "apply": _apply}[args.command](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
