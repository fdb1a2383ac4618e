"""The entry point: the argument parser, logging set-up and error reporting."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import typing as t

import pinnacle
from pinnacle.backends.loader import DEFAULT_URI
from pinnacle.cli.commands import cmd_backfill, cmd_failures, cmd_ls, cmd_retry, cmd_search, cmd_show, cmd_status
from pinnacle.cli.connection import masked, one_line
from pinnacle.cli.demo import cmd_demo
from pinnacle.cli.worker import cmd_worker
from pinnacle.errors import PinnacleError

__all__ = ["main"]

_handler: t.Optional[logging.Handler] = None


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
            print(masked(traceback.format_exc(), args), file=sys.stderr, end="")
        print(f"pinnacle: error: {one_line(exc, args)}", file=sys.stderr)
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

    p = command("demo", cmd_demo, "Embed a few hundred generated sentences with a real model, then search them.")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="sentence-transformers model (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--rows", type=int, default=300, help="how many sentences to generate (default 300)")
    p.add_argument("--batch-rows", type=int, default=64, help="rows per drain transaction (default 64)")
    p.add_argument("--query", action="append", metavar="TEXT", help="search for TEXT instead of the built-in queries (repeatable)")
    p.add_argument("-n", type=int, default=3, help="hits per search (default 3)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the model with torch (default) or ONNX Runtime (exported once at apply; pinnacle[onnx])")
    p.add_argument("--quantize", choices=("int8",), help="with --backend onnx: dynamic int8 quantization for this CPU")

    command("ls", cmd_ls, "List the applied components and the tables.")

    p = command("show", cmd_show, "Print a component's stored JSON (or a type's identifiers).")
    p.add_argument("type", metavar="TYPE", help="Model, Listener or VectorIndex")
    p.add_argument("identifier", metavar="IDENTIFIER", nargs="?")

    p = command("search", cmd_search, "Rows most similar to TEXT by a vector index, best first.")
    p.add_argument("index", metavar="INDEX", help="identifier of the VectorIndex")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("-n", type=int, default=5, help="how many rows (default 5)")
    p.add_argument("--table", help="the table to search (default: the index's listener's table)")
    p.add_argument("--filter", action="append", metavar="COLUMN=VALUE", help="only rows where COLUMN equals VALUE (repeatable)")
    p.add_argument("--mode", choices=("vector", "text", "hybrid"), default="vector",
                   help="vector (default), text (the index's full-text side) or hybrid (both, fused)")
    p.add_argument("--rerank", metavar="NAME", help="re-score the candidates by this VectorIndex (ColBERT) or Model")
    p.add_argument("--candidates", type=int, metavar="N", help="rows taken from each side before fusing/re-ranking")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = command("worker", cmd_worker, "Compute queued rows: those written by other clients (psql, raw SQL, insert(wait=False)).")
    p.add_argument("--listener", metavar="L", help="only this listener (default: all, including ones applied later)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="wait between empty passes (default 1)")
    p.add_argument("--once", action="store_true", help="compute what is due now, then exit")

    p = command("backfill", cmd_backfill, "Compute every pending row of a listener now: here, or as a Ray bulk job.")
    p.add_argument("listener", metavar="LISTENER")
    p.add_argument("--compute", metavar="BACKEND", help="local (default), ray (a local cluster, or $RAY_ADDRESS) or ray://host:port")
    p.add_argument("--num-actors", type=int, metavar="N", help="Ray: actors in the pool (default: as many as fit the cluster)")
    p.add_argument("--chunk-rows", type=int, metavar="N", help="Ray: rows per chunk (default 500)")

    p = command("status", cmd_status, "Exact counts per listener: rows, outputs, pending, in flight, retrying, failed.")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")

    p = command("retry", cmd_retry, "Put a listener's failed rows back in its queue and compute them.")
    p.add_argument("listener", metavar="LISTENER")
    p.add_argument("--no-wait", action="store_true", help="only requeue; a worker computes them")

    p = command("failures", cmd_failures, "List a listener's failed rows with their errors, newest first.")
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
