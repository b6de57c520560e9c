"""The expensive feature net and its cache: CPU cost per query, and a live worker's hit rate and p99.

``python -m benchmarks.feature_cache [--candidates 10] [--queries 150] [--rate 5]`` on the demo's data
(MovieLens-100K with each movie's "title | genres" as its text, or the simulator when MovieLens cannot
be had; the result says which):

1. **CPU cost** (no broker): the text kind (all-MiniLM-L6-v2 + trained head) and the MLP kind, trained
   on the first ratings, score queries of ``--candidates`` candidates on one torch thread: ms per query
   with no cache, and with a warm cache (every text encoding a hit).
2. **Live** (the local Kafka and Redis, topics and keys of its own, removed afterwards): a worker
   thread serving the text kind answers ``--queries`` queries offered at ``--rate`` per second, once
   with the feature cache off and once on (default size). Each query is a streamed rating's user and
   context with the rated movie and others drawn from the ``--pool`` most rated movies as candidates. Reported: the cache's hit rate,
   and the p50/p99 of the worker's answer latency (``latency_ms``: poll to prediction) and of the
   end-to-end latency (query ``ts`` to the prediction read back), over all queries and over the
   second half (by then the cache has met most of the candidate pool).

Writes ``benchmarks/results/feature-cache-<timestamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _queries(stream: list[dict], pool: list[dict], n: int, k: int, seed: int) -> list[tuple[dict, dict, list]]:
    """(record, context, candidates): the rated item and ``k - 1`` others drawn from ``pool``."""
    rng = random.Random(seed)
    out = []
    for r in stream[:n]:
        others = [c for c in rng.sample(pool, k) if c["id"] != r["item"]["id"]][: k - 1]
        out.append((r, r["context"], [r["item"], *others]))
    return out


def cpu_cost(text_model, mlp_model, queries, repeat: int = 1) -> dict:
    from features.cache import FeatureCache

    def per_query(model, cache) -> tuple[float, float]:
        """Wall and CPU ms per query (on a shared machine the wall time includes waiting for a core)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeat):
            for _, ctx, cands in queries:
                model.embed_many([(ctx, cands)], cache=cache)
        n = repeat * len(queries)
        return (time.perf_counter() - t0) * 1000 / n, (time.process_time() - c0) * 1000 / n

    warm = FeatureCache(text_model.version, capacity=1_000_000)
    for _, ctx, cands in queries:
        text_model.embed_many([(ctx, cands)], cache=warm)
    out: dict = {"queries": len(queries), "candidates": len(queries[0][2])}
    for name, model, cache in (("text_no_cache", text_model, None), ("text_warm_cache", text_model, warm),
                               ("mlp_no_cache", mlp_model, None)):
        out[f"{name}_ms"], out[f"{name}_cpu_ms"] = per_query(model, cache)
    return out


def live(settings_base: dict, model, queries, *, rate: float, cache_size: int) -> dict:
    from stream import config, events
    from stream.client import EddyClient, drain, reader
    from stream.kafka_io import delete_topics, ensure_topics
    from stream.store import RedisStore, open_registry
    from stream.worker import Worker

    prefix = f"bfc{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory() as tmp:
        s = config.from_env({}, topic_prefix=prefix, group=f"{prefix}workers", instance_id="bench",
                            model_dir=tmp, metrics_port=0, feature_cache_size=cache_size, torch_threads=1,
                            **settings_base)
        topics = ensure_topics(s)
        try:
            registry = open_registry(s)
            registry.register(model, {"source": "benchmark"})
            registry.promote(model.version)
            worker = Worker(s)
            thread = threading.Thread(target=worker.run, daemon=True)
            thread.start()
            preds = reader(s, [s.topic("predictions")])
            client = EddyClient(s)
            # one warm-up query: the consumer group's assignment and the first batch are not the feature net
            r0, ctx0, c0 = queries[0]
            client.send(events.Query(request_id="warmup", user_id=r0["user_id"], ts=time.time(), context=ctx0,
                                     candidates=tuple(events.Item(c["id"], c.get("features")) for c in c0)))
            client.flush()
            drain(preds, until=lambda got: len(got) >= 1, timeout_s=120)
            caches = worker.feature_caches
            before = caches.totals() if caches.enabled else {"hits": 0, "misses": 0}
            received: dict[str, float] = {}
            latency_ms: dict[str, float] = {}
            sent: dict[str, float] = {}
            start = time.monotonic()
            for i, (r, ctx, cands) in enumerate(queries):
                while time.monotonic() < start + i / rate:
                    for m in preds.consume(100, 0.001):
                        if not m.error():
                            p = json.loads(m.value())
                            received.setdefault(p["request_id"], time.time())
                            latency_ms[p["request_id"]] = p["latency_ms"]
                rid = f"q{i}"
                ts = time.time()
                sent[rid] = ts
                client.send(events.Query(request_id=rid, user_id=r["user_id"], ts=ts, context=ctx,
                                         candidates=tuple(events.Item(c["id"], c.get("features")) for c in cands)))
            client.flush()
            deadline = time.monotonic() + 300
            while len([r for r in sent if r in received]) < len(sent) and time.monotonic() < deadline:
                for m in preds.consume(100, 0.1):
                    if not m.error():
                        p = json.loads(m.value())
                        received.setdefault(p["request_id"], time.time())
                        latency_ms[p["request_id"]] = p["latency_ms"]
            took = time.monotonic() - start
            after = caches.totals() if caches.enabled else {"hits": 0, "misses": 0}
            worker.stop()
            thread.join(60)
            preds.close()
        finally:
            delete_topics(s, topics)
            RedisStore.from_settings(s).delete_deployment()
    answered = [rid for rid in sent if rid in received]
    late = set(list(sent)[len(sent) // 2 :])  # the second half: the cache (if any) has met the pool by then
    e2e = np.array([(received[rid] - sent[rid]) * 1000 for rid in answered])
    worker_ms = np.array([latency_ms[rid] for rid in answered])
    e2e_late = np.array([(received[rid] - sent[rid]) * 1000 for rid in answered if rid in late])
    worker_late = np.array([latency_ms[rid] for rid in answered if rid in late])
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]

    def q(a, p):
        return None if len(a) == 0 else float(np.percentile(a, p))

    return {"cache_size": cache_size, "offered_rate": rate, "sent": len(sent), "answered": len(answered),
            "seconds": round(took, 1), "hit_rate": hits / (hits + misses) if hits + misses else None,
            "hits": hits, "misses": misses,
            "worker_latency_ms": {"p50": q(worker_ms, 50), "p99": q(worker_ms, 99)},
            "end_to_end_ms": {"p50": q(e2e, 50), "p99": q(e2e, 99)},
            "second_half": {"worker_latency_ms": {"p50": q(worker_late, 50), "p99": q(worker_late, 99)},
                            "end_to_end_ms": {"p50": q(e2e_late, 50), "p99": q(e2e_late, 99)}}}


def run(args) -> dict:
    from features.model import limit_threads
    from stream import config, training
    from stream.demo import data

    limit_threads(1)
    ds = data.load("movielens", limit=args.limit)
    records = data.with_text(ds.records, ds.texts)
    catalog = data.with_text(ds.catalog, ds.texts)
    half = len(records) // 2
    train, stream = records[:half], records[half:]
    opts = training.TrainOptions(epochs=1, progress=False)
    t0 = time.perf_counter()
    text_model = training.train(train, replace(opts, kind="text", item_text="title"), version="text", seed=0)
    text_train_s = time.perf_counter() - t0
    mlp_model = training.train(ds.records[:half], opts, version="mlp", seed=0)
    # Candidates beside the rated movie come from the --pool most rated movies of the training half, as a
    # recommender's candidate generator would give them: the cache's working set is the pool plus the rated ones.
    counts = Counter(r["item"]["id"] for r in train)
    by_id = {c["id"]: c for c in catalog}
    pool = [by_id[i] for i, _ in counts.most_common(args.pool)]
    queries = _queries(stream, pool, args.queries, args.candidates, seed=1)
    result = {"benchmark": "feature-cache", "started_at": time.time(), "source": ds.source,
              "dataset": ds.description, "fallback_reason": ds.fallback_reason, "n_train": half,
              "text_train_s": round(text_train_s, 1), "text_val_rmse": text_model.metrics.get("val_rmse"),
              "mlp_val_rmse": mlp_model.metrics.get("val_rmse"), "device": str(text_model.device)}
    result["cpu_cost"] = cpu_cost(text_model, mlp_model, queries[: args.cost_queries])
    print(json.dumps(result["cpu_cost"]), flush=True)
    if not args.no_live:
        d = config.from_env({})
        base = {"bootstrap": d.bootstrap, "redis_url": d.redis_url}
        result["live"] = [live(base, text_model, queries, rate=args.rate, cache_size=size)
                          for size in (0, config.Settings.__dataclass_fields__["feature_cache_size"].default)]
        for row in result["live"]:
            print(json.dumps(row), flush=True)
    return result


def table(result: dict) -> str:
    c = result["cpu_cost"]
    lines = [f"CPU cost per query of {c['candidates']} candidates (one torch thread, {c['queries']} queries):", "",
             "| feature net | wall ms per query | CPU ms per query |", "|---|---|---|",
             *(f"| {label} | {c[f'{key}_ms']:.2f} | {c[f'{key}_cpu_ms']:.2f} |"
               for key, label in (("text_no_cache", "text kind, no cache"),
                                  ("text_warm_cache", "text kind, warm cache"), ("mlp_no_cache", "MLP kind"))), ""]
    if result.get("live"):
        lines += ["| live worker, text kind | offered | answered | hit rate | worker p50 / p99 ms | "
                  "end-to-end p50 / p99 ms | second half: worker p50 / p99 | end-to-end p50 / p99 |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in result["live"]:
            name = "cache off" if r["cache_size"] == 0 else f"cache on ({r['cache_size']:,})"
            hr = "-" if r["hit_rate"] is None else f"{r['hit_rate']:.1%}"
            w, e = r["worker_latency_ms"], r["end_to_end_ms"]
            fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
            lines.append(f"| {name} | {r['offered_rate']:g}/s x {r['sent']} | {r['answered']} | {hr} | "
                         f"{fmt(w['p50'])} / {fmt(w['p99'])} | {fmt(e['p50'])} / {fmt(e['p99'])} | "
                         f"{fmt(r['second_half']['worker_latency_ms']['p50'])} / "
                         f"{fmt(r['second_half']['worker_latency_ms']['p99'])} | "
                         f"{fmt(r['second_half']['end_to_end_ms']['p50'])} / "
                         f"{fmt(r['second_half']['end_to_end_ms']['p99'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.feature_cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=20_000, help="ratings read (half trains, half is streamed)")
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--cost-queries", type=int, default=30)
    p.add_argument("--pool", type=int, default=200, help="candidates are drawn from the N most rated movies")
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--no-live", action="store_true", help="only the CPU cost (no broker)")
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    result = run(args)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out = Path(args.output) if args.output else RESULTS / f"feature-cache-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
