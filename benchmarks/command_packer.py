"""A batch's Redis commit with redis-py's command packer and with the store's, side by side.

    python -m benchmarks.command_packer [--repeat 100] [--output-dir benchmarks/results]

The commit script's arguments are every key and value the batch writes: about 12 per feedback
update. redis-py's packer runs two Python passes over them (a type check and an encode call each)
before hiredis packs them; :class:`stream.store.HiredisPacker` hands them to hiredis in one call.
This commits the engine's own writes for the benchmark's queries (batches of 32 and 256) and for
256 feedback events joined to them, on a fresh key prefix of the configured Redis, through two stores
that differ only in their packer, alternating commit by commit so that a neighbour's burst lands on
both. Figures are the median commit's wall milliseconds (Redis's own work included) and this
process's CPU milliseconds. Keys are deleted afterwards. Writes ``command-packer-<timestamp>.json``.
"""

from __future__ import annotations

import time
import uuid
from functools import partial

from tqdm import tqdm

from benchmarks.commit_size import run, time_commits

VARIANTS = ("redis-py", "hiredis")
QUERY_BATCHES = (32, 256)
FEEDBACK_BATCH = 256


def _writes(prefix: str) -> dict:
    """The engine's BatchWrites: query batches, then one feedback batch that joins the last of them."""
    from benchmarks import model as bench_model
    from benchmarks.engine_ceiling import engine_for
    from benchmarks.loadgen import QueryPool
    from stream import events
    from stream.config import Settings
    from stream.engine import InRecord
    from stream.engine.memory import MemoryState

    s = Settings()
    model, _ = bench_model.train(seed=0, examples=2000, epochs=1)
    pool = QueryPool(bench_model.world(0), 1024)
    out = {}
    for b in QUERY_BATCHES:
        engine, state = engine_for(model, s), MemoryState()
        rids = [f"{prefix}{b}-{i}" for i in range(b)]
        records = [InRecord("query", "q", 0, i, *pool.body(i, rid.encode())) for i, rid in enumerate(rids)]
        batch = engine.process(records, state)
        out[f"{b} queries"] = batch.write
        state.commit(batch.write)
        if b == max(QUERY_BATCHES):
            fbs = []
            for i, rid in enumerate(rids[:FEEDBACK_BATCH]):
                j = i % len(pool.users)
                fb = events.Feedback(request_id=rid, user_id=pool.users[j].decode(), item_id=pool.first_item[j],
                                     reward=float(i % 2), ts=time.time())
                fbs.append(InRecord("feedback", "f", 0, i, pool.users[j], events.encode(fb)))
            learned = engine.process(fbs, state)
            if learned.counts.get("feedback_applied", 0) != len(fbs):
                raise SystemExit(f"command-packer: {learned.counts.get('feedback_applied', 0)} of {len(fbs)} "
                                 "feedback events joined their decisions")
            out[f"{FEEDBACK_BATCH} feedback"] = learned.write
    return out


def _stores(settings, prefix: str) -> dict:
    """Two stores on the same Redis; the first packs with redis-py's own packer."""
    from stream.store import RedisStore

    stores = {v: RedisStore(settings.redis_url, prefix, **settings.redis_options()) for v in VARIANTS}
    pool = stores["redis-py"]._r.connection_pool
    pool.connection_kwargs["command_packer"] = None  # redis-py then builds its default for each connection
    pool.disconnect()
    return stores


def measure(repeat: int, settings) -> dict:
    prefix = f"command-packer-{uuid.uuid4().hex[:8]}."
    writes = _writes(prefix)
    stores = _stores(settings, prefix)
    group = "command-packer"
    epochs = stores["hiredis"].claim(group, [0])
    result: dict = {"batches": {}}
    try:
        with tqdm(total=len(writes) * repeat * len(VARIANTS), desc="commits", unit="commit") as bar:
            for name, write in writes.items():
                result["batches"][name] = time_commits(
                    {v: partial(stores[v].commit, write, group=group, epochs=epochs) for v in VARIANTS}, repeat, bar)
    finally:
        stores["hiredis"].delete_deployment()
    return result


def main(argv: list[str] | None = None) -> int:
    result, path = run("command-packer", __doc__, measure, argv, default_repeat=100)
    print("| batch | commit wall ms | commit CPU ms |\n|---|---|---|")
    for name, row in result["batches"].items():
        cells = [" / ".join(f"{row[v][k]:,}" for v in VARIANTS) for k in ("wall_ms", "cpu_ms")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"(each cell: {' / '.join(VARIANTS)}; median commit)\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
