"""The engine's own ceiling: queries and feedback per CPU-second with no Kafka and no Redis.

    python -m benchmarks.engine_ceiling [--n 6000] [--output-dir benchmarks/results]

The worker is the pure engine (:mod:`stream.engine`) inside an I/O shell. Here the engine
runs alone, on the benchmark's feature net and simulated queries, against in-memory state
(:class:`stream.engine.memory.MemoryState`), one process, one thread: what it does per
CPU-second bounds what any shell around it can carry on one core, before the broker,
Redis and the load generator take their share of the machine. Side by side in one run:
queries in batches of 1 (low load: each query its own batch), 4 (about 1,000/s), 32 and 256, and feedback
(the join, river's per-user update, the markers) in batches of 500. Each is reported over
the whole run and in the median batch: the median is what to compare between two commits on
a shared machine (a full garbage collection, or a neighbour's burst, lands in a few batches and
moves the whole-run figure by up to 40% between runs of the same code). Writes
``engine-ceiling-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tqdm import tqdm

from bandits import make_policy
from benchmarks import model as bench_model
from benchmarks.loadgen import QueryPool
from features.model import limit_threads
from stream import events
from stream.config import Settings
from stream.engine import Engine, InRecord
from stream.engine.memory import MemoryState

QUERY_BATCHES = (1, 4, 32, 256)
FEEDBACK_BATCH = 500


def engine_for(model, s: Settings) -> Engine:
    """The engine the benchmarks run outside a worker: the worker's settings, a join window that no
    benchmark outlives."""
    return Engine(model, make_policy(s.policy), learner=s.learner, join_window_s=3600.0, seed=s.seed,
                  cache_users=s.cache_users, join_memory_bytes=int(s.join_memory_mb * 2**20))


def _run(engine: Engine, state: MemoryState, records: list[InRecord], batch: int, bar: tqdm) -> tuple[float, float]:
    """Process ``records`` in batches of ``batch``, committing each like the worker: the records per
    CPU-second over the whole run, and in the median batch (a batch that a full garbage collection or
    another tenant of the machine slowed down moves the first, not the second)."""
    cpu, per_batch = time.process_time(), []
    for k in range(0, len(records), batch):
        c = time.process_time()
        b = engine.process(records[k:k + batch], state)
        state.commit(b.write)
        engine.commit(b)
        n = min(batch, len(records) - k)
        per_batch.append((time.process_time() - c) / n)
        bar.update(n)
    return len(records) / (time.process_time() - cpu), 1.0 / statistics.median(per_batch)


def measure(n: int, *, seed: int = 0, model=None, pool: QueryPool | None = None) -> dict:
    """The ceilings on ``n`` queries per batch size and ``n`` feedback events. ``model`` and ``pool``: the
    feature net and queries to use (``python -m benchmarks`` passes its own, so the bounds it reports are
    on the very net and queries its systems served); by default a small net is trained here."""
    s = Settings()
    limit_threads(s.torch_threads)
    if model is None:
        model, _ = bench_model.train(seed=seed, examples=3000, epochs=1)
    if pool is None:
        pool = QueryPool(bench_model.world(seed), 1024)
    out: dict = {"n": n, "learner": s.learner, "policy": s.policy, "torch_threads": s.torch_threads,
                 "queries_per_cpu_s": {}, "queries_per_cpu_s_median_batch": {},
                 "candidates": len(events.decode_query(pool.body(0, b"x")[1]).candidates)}
    with tqdm(total=n * (len(QUERY_BATCHES) + 1), desc="engine ceiling", unit="rec") as bar:
        for batch in QUERY_BATCHES:
            engine, state = engine_for(model, s), MemoryState()
            recs = [InRecord("query", "q", 0, i, *pool.body(i, f"{batch}-{i}".encode())) for i in range(n)]
            _run(engine, state, recs[:200], batch, tqdm(disable=True))  # warm: allocators, torch, user cache
            whole, median = _run(engine, state, recs[200:], batch, bar)
            out["queries_per_cpu_s"][str(batch)] = round(whole)
            out["queries_per_cpu_s_median_batch"][str(batch)] = round(median)
            bar.update(200)
        # Feedback on the last run's requests (the first candidate, rewards 0/1): each joins its decision.
        last = QUERY_BATCHES[-1]
        fbs = []
        for i in range(n):
            j = i % len(pool.users)
            fb = events.Feedback(request_id=f"{last}-{i}", user_id=pool.users[j].decode(),
                                 item_id=pool.first_item[j], reward=float(i % 2), ts=time.time())
            fbs.append(InRecord("feedback", "f", 0, i, pool.users[j], events.encode(fb)))
        whole, median = _run(engine, state, fbs, FEEDBACK_BATCH, bar)
        out["feedback_per_cpu_s"], out["feedback_per_cpu_s_median_batch"] = round(whole), round(median)
        out["feedback_applied"] = int(state.counts["feedback_applied"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine_ceiling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6000, help="queries per batch size, then as many feedback events")
    ap.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    if args.n < 400:
        ap.error("--n must be at least 400 (200 of them warm the engine up)")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measure(args.n)}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"engine-ceiling-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    q, qm = result["queries_per_cpu_s"], result["queries_per_cpu_s_median_batch"]
    print("| per CPU-second | queries, batch " + " | queries, batch ".join(q) + " | feedback |\n|" + "---|" * (len(q) + 2))
    print("| whole run | " + " | ".join(f"{v:,}" for v in q.values()) + f" | {result['feedback_per_cpu_s']:,} |")
    print("| median batch | " + " | ".join(f"{v:,}" for v in qm.values())
          + f" | {result['feedback_per_cpu_s_median_batch']:,} |")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
