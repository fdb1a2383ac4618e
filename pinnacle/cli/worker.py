"""``pinnacle worker``: compute queued rows until stopped, waiting out database outages."""

from __future__ import annotations

import argparse
import logging
import random
import signal
import time
import typing as t

import pinnacle
from pinnacle.cli.connection import connect
from pinnacle.cli.output import stats_line
from pinnacle.embedding.drain import DrainStats
from pinnacle.errors import BackendError, ConfigError

logger = logging.getLogger("pinnacle.cli")

#: Longest wait between two tries while the database is unavailable, and how often a long
#: outage is logged again.
MAX_BACKOFF_S = 30.0
REMIND_S = 600.0

__all__ = ["cmd_worker"]


class _Stop(KeyboardInterrupt):
    """Raised by the worker's signal handler. Not an ``Exception``, so that no ``except
    Exception`` on the way (a model failure being isolated) takes it for a row's error; a
    ``KeyboardInterrupt``, so that a driver interrupted mid-statement treats it as Ctrl-C:
    psycopg cancels the statement on the server instead of leaving the connection busy
    (``ACTIVE``) for the pool to hand out again."""


def cmd_worker(args: argparse.Namespace) -> int:
    if args.poll <= 0:
        raise ConfigError(f"--poll must be a positive number of seconds, got {args.poll}.")
    db = connect(args)
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
        print(stats_line(stats, time.perf_counter() - start))
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
    outage = _Outage(args.poll)
    skipped: set = set()
    try:
        while not stopped:
            start = time.perf_counter()
            try:
                # A committed batch ends an outage even if a later one then fails: that
                # failure is a new outage, and says so.
                stats = db.drain(args.listener, on_batch=lambda _rows: outage.ended())
                _report_not_loadable(db, args, skipped)
            except Exception as exc:  # noqa: BLE001 - a database outage is waited out, the rest raises
                if not _is_outage(exc):
                    raise
                _sleep(outage.failed(exc), stopped)
                continue
            outage.ended()
            if stats.rows:
                total.add(stats)
                print(stats_line(stats, time.perf_counter() - start), flush=True)
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


class _Outage:
    """The database being unavailable: one warning when it starts (and every ``REMIND_S``
    while it lasts), one info line when it ends; tries again after a backoff that doubles
    from ``poll`` up to ``MAX_BACKOFF_S``, with jitter so that workers do not come back at once."""

    def __init__(self, poll: float):
        self.poll = poll
        self.since: t.Optional[float] = None
        self.logged = 0.0
        self.tries = 0
        self.backoff = poll

    def failed(self, exc: BaseException) -> float:
        """Note a failed try; the seconds to wait before the next."""
        now = time.monotonic()
        cause = " ".join(str(exc).split())[:300]
        if self.since is None:
            self.since, self.logged, self.tries, self.backoff = now, now, 0, self.poll
            logger.warning("Database unavailable (%s); retrying with backoff until it is back", cause)
        elif now - self.logged >= REMIND_S:
            self.logged = now
            logger.warning("Database still unavailable after %.0f s (%s)", now - self.since, cause)
        self.tries += 1
        self.backoff = min(2 * self.backoff, MAX_BACKOFF_S)
        return self.backoff * random.uniform(0.8, 1.2)

    def ended(self) -> None:
        if self.since is not None:
            logger.info("Database available again after %.1f s (%d failed tries)", time.monotonic() - self.since, self.tries)
            self.since = None


def _is_outage(exc: BaseException) -> bool:
    """A database outage to wait out: a :class:`BackendError` the backend marked transient
    (unreachable, restarting, connection lost, lock wait ran out, disk full). Every driver
    error reaches here as a ``BackendError``; a permanent one (a refused feature, a bad
    statement) stops the worker instead of being retried forever."""
    return isinstance(exc, BackendError) and exc.transient
