"""The feature nets on CUDA: the same embeddings as on the CPU, and how much faster.

``python -m benchmarks.cuda_check [--ratings 4000] [--queries 200] [--candidates 10]``

When ``torch.cuda.is_available()``: trains the MLP and the text kind (all-MiniLM-L6-v2 + a
trained head) on CUDA on the first ``--ratings`` ratings (MovieLens-100K from the demo's
cache, else the built-in simulator), saves each artifact, loads it once on the CPU and once
on CUDA, and embeds the same ``--queries`` queries of ``--candidates`` movies with both: the
largest absolute difference must be at most ``--tolerance`` (1e-4). Times each (milliseconds
per query, queries embedded in batches of ``--batch``, after a warm-up). Writes
``benchmarks/results/cuda-check-<timestamp>.json`` and prints one line per net; exits 1 when
an embedding differs. Without CUDA it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _queries(records: list[dict], catalog: list[dict], n: int, n_candidates: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for r in records[:n]:
        others = [catalog[j] for j in rng.choice(len(catalog), n_candidates - 1, replace=False)]
        out.append((r["context"], [r["item"], *others]))
    return out


def _ms_per_query(model, queries, batch: int) -> float:
    model.embed_many(queries[:batch])  # warm-up: CUDA context, kernels, the text encoder's first call
    t0 = time.perf_counter()
    for i in range(0, len(queries), batch):
        model.embed_many(queries[i : i + batch])  # returns numpy: the device is synchronised
    return (time.perf_counter() - t0) * 1000 / len(queries)


def check(name: str, trained, queries, *, batch: int, tolerance: float) -> dict:
    from features.model import FeatureModel

    with tempfile.TemporaryDirectory() as tmp:
        path = trained.save(Path(tmp) / name)
        on_cpu = FeatureModel.load(path, device="cpu")
        on_cuda = FeatureModel.load(path, device="cuda")
    a = np.concatenate(on_cpu.embed_many(queries))
    b = np.concatenate(on_cuda.embed_many(queries))
    diff = float(np.max(np.abs(a - b)))
    out = {"net": name, "kind": trained.kind, "rows": int(len(a)), "max_abs_diff": diff, "tolerance": tolerance,
           "equal": diff <= tolerance, "trained_on": str(trained.device),
           "cpu_ms_per_query": _ms_per_query(on_cpu, queries, batch),
           "cuda_ms_per_query": _ms_per_query(on_cuda, queries, batch)}
    out["speedup"] = out["cpu_ms_per_query"] / out["cuda_ms_per_query"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--ratings", type=int, default=4000, help="ratings the nets train on (default 4000)")
    p.add_argument("--queries", type=int, default=200, help="queries embedded and timed (default 200)")
    p.add_argument("--candidates", type=int, default=10, help="candidates per query (default 10)")
    p.add_argument("--batch", type=int, default=20, help="queries per forward pass when timing (default 20)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |CPU - CUDA| (default 1e-4)")
    args = p.parse_args(argv)
    for name in ("ratings", "queries", "candidates", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    import torch

    from features.model import limit_threads

    if not torch.cuda.is_available():
        print(f"cuda_check: skipped, no CUDA device (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none'})")
        return 0
    from stream import training
    from stream.demo.data import load, with_text

    limit_threads(1)  # the CPU side as a worker runs it
    ds = load("movielens", limit=args.ratings + args.queries)
    train, rest = ds.records[: args.ratings], ds.records[args.ratings :]
    opts = training.TrainOptions(epochs=1, progress=False, device="cuda")
    results = []
    mlp = training.train(train, opts, version="mlp-cuda", seed=0)
    results.append(check("mlp", mlp, _queries(rest, ds.catalog, args.queries, args.candidates),
                         batch=args.batch, tolerance=args.tolerance))
    text = training.train(with_text(train, ds.texts), replace(opts, kind="text", item_text="title"),
                          version="text-cuda", seed=0)
    tq = _queries(with_text(rest, ds.texts), with_text(ds.catalog, ds.texts), args.queries, args.candidates)
    results.append(check("text", text, tq, batch=args.batch, tolerance=args.tolerance))
    for r in results:
        print(f"{r['net']:5s} max |cpu - cuda| {r['max_abs_diff']:.2e} ({'ok' if r['equal'] else 'DIFFERS'}, "
              f"tolerance {r['tolerance']:g}) over {r['rows']} rows; ms/query of {args.candidates}: "
              f"cpu {r['cpu_ms_per_query']:.2f}, cuda {r['cuda_ms_per_query']:.2f} ({r['speedup']:.1f}x)")
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"cuda-check-{stamp}.json"
    path.write_text(json.dumps({"benchmark": "cuda_check", "started": stamp, "machine": platform.platform(),
                                "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                "dataset": ds.source, "args": vars(args), "results": results}, indent=1))
    print(f"wrote {path}")
    return 0 if all(r["equal"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
