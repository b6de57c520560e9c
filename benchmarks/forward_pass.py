"""The feature net's forward pass on CPU: torch against numpy on the same parameters, side by side.

    python -m benchmarks.forward_pass [--repeat 5] [--output-dir benchmarks/results]

A served batch is small: a few queries of ten candidates at the rates a worker meets most.
There torch's per-operator and per-module dispatch is most of the pass, so on CPU the MLP
kind runs :meth:`features.net.FeatureNet.forward_numpy` (numpy on views of the net's own
parameters) and keeps torch for training, other devices and the text kind. This times both
on the benchmark's trained net and queries, one thread each (:func:`features.model.limit_threads`,
as the worker runs), in batches of 1, 4, 32 and 256 queries, and the whole ``embed_many``
(encoding included) as the worker calls it. Figures are CPU microseconds per batch, the best of
``--repeat`` runs of many passes each. Writes ``forward-pass-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BATCHES = (1, 4, 32, 256)


def _best_us(fn, repeat: int, budget_s: float = 0.3) -> float:
    """CPU microseconds per call: the best of ``repeat`` runs of about ``budget_s`` each."""
    fn()
    c = time.process_time()
    fn()
    one = max(time.process_time() - c, 1e-6)
    n = max(3, int(budget_s / one))
    best = float("inf")
    for _ in range(repeat):
        c = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - c) / n)
    return best * 1e6


def measure(repeat: int, *, seed: int = 0) -> dict:
    import torch

    from benchmarks import model as bench_model
    from benchmarks.loadgen import QueryPool
    from features.model import limit_threads
    from stream import events

    limit_threads(1)
    model, _ = bench_model.train(seed=seed, examples=3000, epochs=1)
    pool = QueryPool(bench_model.world(seed), 1024)
    net = model.net
    rows: list[dict] = []
    for queries in BATCHES:
        decoded = [events.decode_query(pool.body(i, b"x")[1]) for i in range(queries)]
        inputs = [(q.context, [c.to_dict() for c in q.candidates]) for q in decoded]
        batch = model.encoder.encode_many(inputs)

        def torch_pass():
            with torch.inference_mode():
                return net(batch).numpy()

        gap = float(np.abs(torch_pass() - net.forward_numpy(batch)).max())
        rows.append({"queries": queries, "rows": len(batch),
                     "torch_us": round(_best_us(torch_pass, repeat), 1),
                     "numpy_us": round(_best_us(lambda: net.forward_numpy(batch), repeat), 1),
                     "embed_many_us": round(_best_us(lambda: model.embed_many(inputs), repeat), 1),
                     "max_abs_difference": gap})
    return {"net": str(net.config.hidden), "output_dim": model.output_dim, "torch": torch.__version__,
            "numpy": np.__version__, "repeat": repeat, "batches": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.forward_pass", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is kept (default 5)")
    ap.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measure(args.repeat)}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"forward-pass-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print("| queries | rows | torch us | numpy us | torch / numpy | embed_many us | max abs difference |")
    print("|---|---|---|---|---|---|---|")
    for r in result["batches"]:
        print(f"| {r['queries']} | {r['rows']} | {r['torch_us']} | {r['numpy_us']} | "
              f"{r['torch_us'] / r['numpy_us']:.1f}x | {r['embed_many_us']} | {r['max_abs_difference']:.1e} |")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
