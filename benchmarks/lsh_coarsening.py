"""LSH cache coarsening on the demo data: feature-cache hit rate against accuracy, by SimHash bits.

``python -m benchmarks.lsh_coarsening [--limit N] [--bits 0,2,4,...]`` loads the demo's data
(:func:`stream.demo.data.load`: MovieLens-100K, or the simulator when it cannot be had, and the result
says which), trains the MLP feature net on the first half (the demo's training path), then streams
the second half in time order, in batches of ``--batch`` ratings, through the frozen offline hybrid
``w_u . f(x, item) + b_u`` with a feature cache (:mod:`features.cache`) whose numeric keys are coarsened
to ``bits`` SimHash bits (0: exact keys, no coarsening; "off": no cache). For each setting: the hit
rate, the RMSE against the ratings, the RMSE loss against exact features, and the seconds spent.

Writes ``benchmarks/results/lsh-coarsening-<timestamp>.json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_BITS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def _predict(model, stream: list[dict], cache, batch: int) -> tuple[np.ndarray, float]:
    mw, mb = model.mean_user_weights()
    out = np.empty(len(stream))
    t0 = time.process_time()
    for i in range(0, len(stream), batch):
        part = stream[i : i + batch]
        embs = model.embed_many([(r["context"], [r["item"]]) for r in part], cache=cache)
        for j, (r, f) in enumerate(zip(part, embs)):
            w, b = model.user_weights.get(r["user_id"], (mw, mb))
            out[i + j] = float(f[0] @ w) + b
    return out, time.process_time() - t0


def run(*, limit: int | None, bits: tuple[int, ...], batch: int, capacity: int, epochs: int) -> dict:
    from features.cache import FeatureCache
    from features.model import limit_threads
    from stream import training
    from stream.demo import data

    limit_threads(1)
    ds = data.load("movielens", limit=limit)
    half = len(ds.records) // 2
    train, stream = ds.records[:half], ds.records[half:]
    t0 = time.perf_counter()
    model = training.train(train, training.TrainOptions(epochs=epochs, progress=False), version="lsh", seed=0)
    train_s = time.perf_counter() - t0
    y = np.array([r["reward"] for r in stream])
    exact, off_cpu = _predict(model, stream, None, batch)
    rmse_exact = float(np.sqrt(np.mean((exact - y) ** 2)))
    rows = [{"bits": "off", "hit_rate": 0.0, "rmse": rmse_exact, "rmse_loss": 0.0, "cpu_s": off_cpu,
             "entries": 0, "evictions": 0}]
    for b in bits:
        cache = FeatureCache(model.version, capacity=capacity, lsh_bits=b)
        pred, cpu = _predict(model, stream, cache, batch)
        rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
        rows.append({"bits": b, "hit_rate": cache.hits / max(1, cache.hits + cache.misses), "rmse": rmse,
                     "rmse_loss": rmse - rmse_exact, "cpu_s": cpu, "entries": len(cache),
                     "evictions": cache.evictions})
        print(f"bits {b:>3}: hit rate {rows[-1]['hit_rate']:.3f}, RMSE {rmse:.4f} ({rmse - rmse_exact:+.4f}), "
              f"{cpu:.1f} s CPU", flush=True)
    return {
        "benchmark": "lsh-coarsening", "started_at": time.time(), "source": ds.source,
        "dataset": ds.description, "fallback_reason": ds.fallback_reason, "n_train": len(train),
        "n_stream": len(stream), "batch": batch, "capacity": capacity, "epochs": epochs,
        "train_s": round(train_s, 1), "val_rmse": model.metrics.get("val_rmse"), "kind": model.kind,
        "numeric_inputs": list(model.encoder.numeric_names), "rows": rows,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "torch_threads": 1},
    }


def table(result: dict) -> str:
    lines = ["| SimHash bits | hit rate | RMSE | RMSE loss vs exact | CPU s | entries |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        name = "no cache" if r["bits"] == "off" else ("exact keys" if r["bits"] == 0 else str(r["bits"]))
        lines.append(f"| {name} | {r['hit_rate']:.1%} | {r['rmse']:.4f} | {r['rmse_loss']:+.4f} | "
                     f"{r['cpu_s']:.1f} | {r['entries']:,} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    from benchmarks.plots import saved_figure

    rows = [r for r in result["rows"] if r["bits"] != "off"]
    with saved_figure(path, figsize=(7, 4.2)) as (_, ax):
        ax.plot([r["hit_rate"] * 100 for r in rows], [r["rmse_loss"] for r in rows], "o-")
        for r in rows:
            ax.annotate(f"{r['bits']} bits" if r["bits"] else "exact", (r["hit_rate"] * 100, r["rmse_loss"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("feature-cache hit rate (%)")
        ax.set_ylabel("RMSE loss against exact features")
        ax.set_title(f"LSH coarsening on {result['source']} ({result['n_stream']:,} streamed ratings)")
        ax.grid(alpha=0.3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lsh_coarsening", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=None, help="first N ratings only (default: all)")
    p.add_argument("--bits", default=",".join(map(str, DEFAULT_BITS)))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--capacity", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    try:
        bits = tuple(int(b) for b in args.bits.split(","))
    except ValueError:
        p.error(f"--bits must be comma-separated integers, got {args.bits!r}")
    result = run(limit=args.limit, bits=bits, batch=args.batch, capacity=args.capacity, epochs=args.epochs)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out = Path(args.output) if args.output else RESULTS / f"lsh-coarsening-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(table(result))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
