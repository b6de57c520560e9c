"""The Redis commit script's cost against the size of the join records it writes, side by side.

    python -m benchmarks.commit_size [--repeat 200] [--output-dir benchmarks/results]

Each decision's join record (:class:`stream.engine.joins.JoinRecord`) holds the decision as
published, the prediction as published and the candidates' embeddings: 2.8 KB on the benchmark's
queries, most of what a batch's commit sends to Redis. This times :meth:`stream.store.RedisStore.commit`
on real batches (the engine's own writes for the benchmark's queries, on a fresh key prefix of the
configured Redis) in batches of 4, 32 and 256 queries, as written today (``as stored``) and with
each record's prediction left out (``no prediction``: what a record would weigh if a re-read rebuilt
the prediction from the decision instead of storing it). The two alternate, commit by commit, so a
neighbour's burst lands on both. Figures are the median commit's wall milliseconds (the round trip,
Redis's own work included) and this process's CPU milliseconds. Keys are deleted afterwards.
Writes ``commit-size-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

from tqdm import tqdm

BATCHES = (4, 32, 256)
VARIANTS = ("as stored", "no prediction")


def _writes(prefix: str):
    """The engine's BatchWrites for each batch size of the benchmark's queries (partition 0), both ways."""
    from benchmarks import model as bench_model
    from benchmarks.engine_ceiling import engine_for
    from benchmarks.loadgen import QueryPool
    from stream.config import Settings
    from stream.engine import InRecord
    from stream.engine.joins import JoinRecord
    from stream.engine.memory import MemoryState

    s = Settings()
    model, _ = bench_model.train(seed=0, examples=2000, epochs=1)
    pool = QueryPool(bench_model.world(0), 1024)

    def _without_prediction(record: JoinRecord) -> bytes:
        return JoinRecord(record.decision_bytes, b"", record.embeddings, record.others).pack()

    out = {}
    for b in BATCHES:
        engine = engine_for(model, s)
        records = [InRecord("query", "q", 0, i, *pool.body(i, f"{prefix}{b}-{i}".encode())) for i in range(b)]
        stored = engine.process(records, MemoryState()).write
        lean = replace(stored, decisions={rid: (_without_prediction(JoinRecord.unpack(blob)), p)
                                          for rid, (blob, p) in stored.decisions.items()})
        out[b] = {"as stored": stored, "no prediction": lean}
    return out


def time_commits(commits: dict[str, Callable[[], bool]], repeat: int, bar: tqdm) -> dict[str, dict[str, float]]:
    """Each variant's commit ``repeat`` times, the variants alternating commit by commit so that a
    neighbour's burst lands on all of them: the median commit's wall and CPU milliseconds per variant."""
    wall: dict[str, list[float]] = {v: [] for v in commits}
    cpu: dict[str, list[float]] = {v: [] for v in commits}
    for _ in range(repeat):
        for v, commit in commits.items():
            c, w = time.process_time(), time.perf_counter()
            if not commit():
                raise SystemExit("the benchmark's own epoch was fenced")
            wall[v].append(time.perf_counter() - w)
            cpu[v].append(time.process_time() - c)
            bar.update(1)
    return {v: {"wall_ms": round(statistics.median(wall[v]) * 1e3, 3), "cpu_ms": round(statistics.median(cpu[v]) * 1e3, 3)}
            for v in commits}


def run(prog: str, doc: str, measure: Callable[[int, object], dict], argv: list[str] | None, *,
        default_repeat: int) -> tuple[dict, Path]:
    """The command line these commit benchmarks share: ``--repeat``, ``--output-dir``, the Redis URL; runs
    ``measure(repeat, settings)`` and writes ``<prog>-<timestamp>.json`` with when and where it ran."""
    from stream import config

    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.{prog.replace('-', '_')}", description=doc.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=default_repeat, help="commits of each variant per batch")
    ap.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    config.add_arguments(ap, only=("redis_url",))
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    settings = config.from_args(args)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "repeat": args.repeat,
              "redis_url": settings.redis_url, **measure(args.repeat, settings)}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"{prog}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    return result, path


def measure(repeat: int, settings) -> dict:
    from stream.store import RedisStore

    prefix = f"commit-size-{uuid.uuid4().hex[:8]}."
    store = RedisStore(settings.redis_url, prefix, **settings.redis_options())
    writes = _writes(prefix)
    group = "commit-size"
    epochs = store.claim(group, [0])
    result: dict = {"batches": {}}
    try:
        with tqdm(total=len(BATCHES) * repeat * len(VARIANTS), desc="commits", unit="commit") as bar:
            for b in BATCHES:
                timed = time_commits({v: partial(store.commit, writes[b][v], group=group, epochs=epochs)
                                      for v in VARIANTS}, repeat, bar)
                result["batches"][str(b)] = {
                    v: {"record_bytes": round(statistics.mean(len(blob) for blob, _ in writes[b][v].decisions.values())),
                        **timed[v]}
                    for v in VARIANTS}
    finally:
        store.delete_deployment()
    return result


def main(argv: list[str] | None = None) -> int:
    result, path = run("commit-size", __doc__, measure, argv, default_repeat=200)
    print("| queries per batch | record bytes | commit wall ms | commit CPU ms |\n|---|---|---|---|")
    for b, row in result["batches"].items():
        cells = [" / ".join(f"{row[v][k]:,}" for v in VARIANTS) for k in ("record_bytes", "wall_ms", "cpu_ms")]
        print(f"| {b} | " + " | ".join(cells) + " |")
    print(f"(each cell: {' / '.join(VARIANTS)}; median commit)\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
