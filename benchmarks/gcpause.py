"""How long Python's full garbage collection stops a worker, and what :mod:`stream.heap` leaves of it.

    python -m benchmarks.gcpause [--users 1000,10000,100000] [--output-dir benchmarks/results]

For each population size, a heap like the worker's (the benchmarks' feature net and that
many cached river user models) is built, then timed side by side in the same process:

* ``full``: ``gc.collect()``, what CPython runs by itself each time the oldest generation
  has grown by a quarter (the answer in flight waits for it);
* ``full after start-up freeze``: the same, once the start-up heap (the feature net and its
  libraries) was frozen before the users came, as :class:`stream.heap.HeapKeeper` does by default;
* ``young + freeze``: what :class:`stream.heap.HeapKeeper` runs every ``gc_freeze_s`` instead
  (``gc.collect(1)`` then ``gc.freeze()``), measured after the heap was frozen once;
* ``full after freeze``: a full collection once the heap is frozen (what the hourly
  ``gc_full_s`` collection costs is ``full``: it unfreezes first).

Writes ``gcpause-<timestamp>.json`` and ``gcpause-<timestamp>.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import model as bench_model
from learners import make_user_model
from stream.engine.users import UserCache


def _ms(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 4)


def measure(n_users: int, dim: int) -> dict:
    gc.collect()
    gc.freeze()  # the start-up heap, before any user (stream.heap's default)
    frozen = gc.get_freeze_count()
    cache = UserCache(kind="river", dim=dim, capacity=n_users, base_prior=np.zeros(dim + 1))
    template = make_user_model("river", dim, prior_mean=np.zeros(dim + 1)).to_bytes()
    cache.warm({f"u{i}": template for i in range(n_users)})
    after_startup_freeze = _ms(gc.collect)
    gc.unfreeze()
    out = {"users": n_users, "tracked_objects": len(gc.get_objects()), "full_ms": _ms(gc.collect),
           "startup_frozen_objects": frozen, "full_after_startup_freeze_ms": after_startup_freeze}
    gc.collect()
    gc.freeze()
    out["young_freeze_ms"] = _ms(lambda: (gc.collect(1), gc.freeze()))
    out["full_after_freeze_ms"] = _ms(gc.collect)
    gc.unfreeze()
    del cache
    gc.collect()
    return out


def plot(rows: list[dict], path: Path) -> None:
    from benchmarks.plots import saved_figure

    with saved_figure(path, figsize=(6.4, 3.6)) as (_, ax):
        x = np.arange(len(rows))
        for i, (key, label) in enumerate((("full_ms", "full collection, nothing frozen"),
                                          ("full_after_startup_freeze_ms",
                                           "full collection, start-up heap frozen (the default)"),
                                          ("young_freeze_ms", "young + freeze (stream.heap, every gc_freeze_s)"))):
            ax.bar(x + (i - 1) * 0.28, [r[key] for r in rows], 0.28, label=label)
        ax.set_xticks(x, [f"{r['users']:,} users" for r in rows])
        ax.set_ylabel("pause (ms)")
        ax.set_yscale("log")
        ax.set_title("Garbage-collection pause of a worker's heap")
        ax.legend(fontsize=8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gcpause", description=__doc__.split("\n")[0])
    p.add_argument("--users", default="1000,10000,100000", help="cached user models, comma-separated")
    p.add_argument("--output-dir", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    try:
        sizes = [int(v) for v in args.users.split(",")]
        if any(n < 1 for n in sizes):
            raise ValueError
    except ValueError:
        p.error(f"--users must be positive integers separated by commas, got {args.users!r}")
    model, _ = bench_model.train(seed=0, examples=2000, epochs=1)
    rows = []
    for n in sizes:
        rows.append(measure(n, model.output_dim))
        print(f"{n:>9,} users: {rows[-1]['tracked_objects']:>10,} objects; full collection {rows[-1]['full_ms']} ms "
              f"({rows[-1]['full_after_startup_freeze_ms']} ms, start-up heap frozen), young + freeze {rows[-1]['young_freeze_ms']} ms, full after freeze "
              f"{rows[-1]['full_after_freeze_ms']} ms", flush=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = out / f"gcpause-{stamp}.json"
    path.write_text(json.dumps({"schema": "eddy.gcpause/1", "rows": rows, "feature_net_dim": model.output_dim,
                                "python": __import__("sys").version.split()[0],
                                "loadavg": [round(x, 2) for x in __import__("os").getloadavg()]}, indent=1))
    plot(rows, out / f"gcpause-{stamp}.png")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
