"""The engine over the real Redis, no Kafka: what a batch of queries and feedback costs its shell's store.

    python -m benchmarks.engine_redis [--batches 1500] [--queries 4] [--feedback 2] [--pool 1024]
                                      [--join-memory-mb MB] [--redis-url URL]

The engine ceiling (:mod:`benchmarks.engine_ceiling`) runs on in-memory state, so it cannot see
what the worker's store reads and writes cost. Here the pure engine runs on the benchmark's
feature net and simulated queries against a :class:`stream.store.RedisStore` under a prefix of
its own, one process, one thread, processing and committing each batch like the worker
(optimistic, one commit script; refused, again with the reads): batches of ``--queries`` new
queries and ``--feedback`` feedback events for earlier ones (about what a worker at 1,000
queries/s batches), with the users' models in memory, and their join records too unless
``--join-memory-mb 0`` (stream/engine/fresh.py). It reports the median
batch's wall and CPU time and how many Redis commands of each kind a batch sent (``INFO
commandstats``: one ``MGET`` is one round trip; ``EVALSHA`` is the commit). Run it from two commits
in turn to compare their store traffic. Writes ``engine-redis-<timestamp>.json``; leaves no key.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from benchmarks import model as bench_model
from benchmarks.engine_ceiling import engine_for
from benchmarks.loadgen import QueryPool
from features.model import limit_threads
from stream import events
from stream.engine import DecisionsExist, InRecord

WARM = 200  # batches before the clock starts: allocators, torch, the users' models in memory


def _commands(client) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}


def measure(batches: int, queries: int, feedback: int, settings, pool: int = 1024) -> dict:
    from stream.store import RedisStore, redis_client

    limit_threads(settings.torch_threads)
    model, _ = bench_model.train(seed=0, examples=3000, epochs=1)
    pool = QueryPool(bench_model.world(0), pool)
    store = RedisStore(settings.redis_url, f"engine-redis-{uuid.uuid4().hex[:8]}.", **settings.redis_options())
    client = redis_client(settings)
    engine = engine_for(model, settings)
    group = "engine-redis"
    epochs = store.claim(group, [0])
    engine.held_counts({0: 0})  # what the worker's held sweep tells it when no feedback comes early
    decided: list[tuple[str, str, str]] = []
    wall, cpu = [], []
    offsets = {"query": 0, "feedback": 0}

    def record(kind: str, key: bytes, value: bytes) -> InRecord:
        offsets[kind] += 1
        return InRecord(kind, kind, 0, offsets[kind] - 1, key, value)

    try:
        before = None
        for b in tqdm(range(WARM + batches), desc="batches", unit="batch"):
            recs = [record("query", *pool.body(offsets["query"] % len(pool.users), f"q-{offsets['query']}".encode()))
                    for _ in range(queries)]
            for rid, uid, item in decided[:feedback]:
                fb = events.Feedback(request_id=rid, user_id=uid, item_id=item, reward=1.0, ts=time.time())
                recs.append(record("feedback", uid.encode(), events.encode(fb)))
            del decided[:feedback]
            if b == WARM:
                before = _commands(client)
            c, w = time.process_time(), time.perf_counter()
            batch = engine.process(recs, store, optimistic=True)
            try:
                committed = store.commit(batch.write, group=group, epochs=epochs, instance="engine-redis")
            except DecisionsExist:
                engine.refused(batch)
                batch = engine.process(recs, store)
                committed = store.commit(batch.write, group=group, epochs=epochs, instance="engine-redis")
            if not committed:
                raise SystemExit("engine-redis: the benchmark's own epoch was fenced")
            engine.commit(batch)
            if b >= WARM:
                wall.append(time.perf_counter() - w)
                cpu.append(time.process_time() - c)
            for r in recs[:queries]:
                q = events.decode_query(r.value)
                decided.append((q.request_id, q.user_id, q.candidates[0].id))
        after = _commands(client)
    finally:
        store.delete_deployment()
    sent = {k: round((after.get(k, 0) - before.get(k, 0)) / batches, 2) for k in after
            if after.get(k, 0) - before.get(k, 0) >= batches / 10 and k != "info"}
    return {"batches": batches, "queries": queries, "feedback": feedback, "pool": len(pool),
            "join_memory_mb": settings.join_memory_mb,
            "wall_ms_median": round(statistics.median(wall) * 1e3, 3),
            "cpu_ms_median": round(statistics.median(cpu) * 1e3, 3),
            "commands_per_batch": dict(sorted(sent.items(), key=lambda kv: -kv[1]))}


def main(argv: list[str] | None = None) -> int:
    from stream import config

    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine_redis", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=1500, help="batches timed, after 200 that warm up")
    ap.add_argument("--queries", type=int, default=4, help="new queries per batch")
    ap.add_argument("--feedback", type=int, default=2, help="feedback events per batch, for earlier queries")
    ap.add_argument("--pool", type=int, default=1024, help="distinct simulated queries cycled through (their users "
                                                           "repeat; a small pool keeps every user in memory)")
    ap.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    config.add_arguments(ap, only=("redis_url", "join_memory_mb"))
    args = ap.parse_args(argv)
    if args.batches < 1 or args.queries < 1 or args.feedback < 0 or args.pool < 1:
        ap.error("--batches, --queries and --pool must be at least 1, --feedback at least 0")
    settings = config.from_args(args)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **measure(args.batches, args.queries, args.feedback, settings, args.pool)}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"engine-redis-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    sent = ", ".join(f"{k} {v:g}" for k, v in result["commands_per_batch"].items())
    print(f"batches of {args.queries} queries + {args.feedback} feedback: median batch {result['wall_ms_median']} ms "
          f"wall, {result['cpu_ms_median']} ms CPU; Redis commands per batch: {sent}\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
