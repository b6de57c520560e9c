"""Learning benchmarks: feedback updates per second at saturation, and learning latency.

* Feedback throughput: ``n`` queries make ``n`` decisions; then ``n``
  feedback events are produced at once (far above what one worker applies)
  and the model-update events are counted as they are consumed:
  ``updates / (last update consumed - first feedback sent)``. With the
  worker's process id, also the CPU time the worker spent per update over
  that span (from /proc): a cost that a busy neighbour on the shared cores
  moves far less than the rate.
* Redis bytes per applied feedback: ``MEMORY USAGE`` of a sample of the applied-markers the
  throughput step left (each lives ``applied_ttl_s``, a week by default: what learning costs Redis
  at a sustained feedback rate is about rate x ttl x these bytes).
* Learning latency: for a user never seen before, query once, send feedback
  for the chosen item at ``t0``, then query that user until
  a prediction's ``versions.user_weights`` is higher: ``latency = (that
  prediction consumed) - t0``. One probe is in flight at a time (the next is
  sent when the last is answered), so probing never overloads the system;
  the resolution is one query's round trip. Measured on an otherwise idle system.
"""

from __future__ import annotations

import itertools
import json
import time

import numpy as np

from benchmarks.cpu_watch import cpu_seconds
from benchmarks.httpload import HttpLoad
from benchmarks.loadgen import KafkaLoad, poll_batch, request_id
from benchmarks.stats import percentile
from stream import events
from stream.client import reader


def _answers(gen: KafkaLoad, rids: set[bytes], timeout_s: float) -> dict[bytes, dict]:
    out: dict[bytes, dict] = {}
    end = time.monotonic() + timeout_s
    while len(out) < len(rids) and time.monotonic() < end:
        for m in poll_batch(gen.consumer, 0.05):
            if m.error():
                continue
            rid = request_id(m.value())
            if rid in rids and rid not in out:
                out[rid] = json.loads(m.value())
    return out


def _per_update(cpu0: float | None, cpu1: float | None, updates: int) -> float | None:
    """Microseconds of CPU per update, or None when unmeasured."""
    if cpu0 is None or cpu1 is None or updates <= 0:
        return None
    return round(1e6 * (cpu1 - cpu0) / updates, 1)


def kafka_feedback_throughput(gen: KafkaLoad, n: int, *, tag: str, timeout_s: float = 120.0,
                              pid: int | None = None) -> dict:
    updates = reader(gen.s, [gen.s.topic("model-updates")])
    try:
        rids = set()
        for i in range(n):
            key, body = gen.pool.body(i, f"{tag}{i}".encode())
            rids.add(request_id(body))
            gen.produce(gen.t_queries, key, body)
        gen.producer.flush(30)
        answers = _answers(gen, rids, timeout_s)
        fbs = []
        for p in answers.values():
            fb = events.Feedback(p["request_id"], p["user_id"], p["chosen"][0], 1.0, time.time())
            fbs.append((p["user_id"].encode(), events.encode(fb)))
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        for key, value in fbs:
            gen.produce(gen.t_feedback, key, value)
        gen.producer.flush(30)
        seen = 0
        last = t0
        end = time.monotonic() + timeout_s
        while seen < len(fbs) and time.monotonic() < end:
            msgs = [m for m in poll_batch(updates, 0.05) if not m.error()]
            if msgs:
                seen += len(msgs)
                last = time.perf_counter()
        cpu1 = cpu_seconds(pid)
    finally:
        updates.close()
    span = last - t0
    return {"feedback_sent": len(fbs), "updates": seen, "seconds": round(span, 3),
            "updates_per_s": round(seen / span, 1) if span > 0 else None,
            "worker_cpu_us_per_update": _per_update(cpu0, cpu1, seen)}


def applied_marker_bytes(settings, *, sample: int = 200) -> dict:
    """Redis bytes per applied feedback: the mean ``MEMORY USAGE`` of up to ``sample`` applied-markers."""
    from stream.store import RedisStore, redis_client

    r, keys = redis_client(settings), RedisStore.from_settings(settings).keys
    found: list = []
    for p in range(settings.partitions):
        found += itertools.islice(r.scan_iter(match=keys.applied("*", p), count=1000), sample - len(found))
    sizes = [r.memory_usage(k, samples=0) or 0 for k in found]
    return {"markers_sampled": len(sizes), "bytes_per_marker": round(float(np.mean(sizes)), 1) if sizes else None,
            "applied_ttl_s": settings.applied_ttl_s}


def kafka_learning_latency(gen: KafkaLoad, samples: int, *, tag: str, timeout_s: float = 10.0) -> dict:
    out = []
    for j in range(samples):
        uid = f"{tag}user{j}".encode()
        key, body = gen.pool.body(j, f"{tag}{j}-0".encode(), uid)
        gen.produce(gen.t_queries, key, body)
        gen.producer.flush(10)
        first = _answers(gen, {request_id(body)}, timeout_s)
        if not first:
            continue
        p = next(iter(first.values()))
        v0 = p["versions"]["user_weights"]
        fb = events.Feedback(p["request_id"], p["user_id"], p["chosen"][0], 1.0, time.time())
        t0 = time.perf_counter()
        gen.produce(gen.t_feedback, uid, events.encode(fb))
        k, found, waiting = 0, None, None
        while found is None and time.perf_counter() - t0 < timeout_s:
            if waiting is None:  # one probe at a time: the next goes out when the last is answered
                k += 1
                key, body = gen.pool.body(j, f"{tag}{j}-{k}".encode(), uid)
                gen.produce(gen.t_queries, key, body)
                waiting = request_id(body)
            gen.producer.poll(0)
            for m in poll_batch(gen.consumer, 0.001):
                if m.error() or request_id(m.value()) != waiting:
                    continue
                waiting = None
                if json.loads(m.value())["versions"]["user_weights"] > v0:
                    found = (time.perf_counter() - t0) * 1000
                    break
        if found is not None:
            out.append((found, k))
        gen.settle(idle_s=0.2, max_s=5)
    res = _latency_summary([f for f, _ in out], samples)
    res["mean_probes"] = round(float(np.mean([k for _, k in out])), 2) if out else None
    return res


def _latency_summary(values: list[float], samples: int, **extra) -> dict:
    arr = np.asarray(values, dtype=float)
    res = {"samples": samples, "observed": int(arr.size), **extra}
    if arr.size:
        res.update(p50=round(percentile(arr, 50), 3), p99=round(percentile(arr, 99), 3),
                   max=round(float(arr.max()), 3), mean=round(float(arr.mean()), 3))
    return res


def http_feedback_throughput(gen: HttpLoad, n: int, *, tag: str, pid: int | None = None) -> dict:
    bodies = [(b"/predict", gen.pool.body(i, f"{tag}{i}".encode())[1]) for i in range(n)]
    answers, _ = gen.run(gen.closed_loop(bodies))
    fbs = []
    for data in answers:
        p = json.loads(data)
        fb = events.Feedback(p["request_id"], p["user_id"], p["chosen"][0], 1.0, time.time())
        fbs.append((b"/feedback", events.encode(fb)))
    cpu0 = cpu_seconds(pid)
    replies, span = gen.run(gen.closed_loop(fbs))
    cpu1 = cpu_seconds(pid)
    applied = sum(1 for r in replies if json.loads(r)["applied"])
    return {"feedback_sent": len(fbs), "updates": applied, "seconds": round(span, 3),
            "updates_per_s": round(applied / span, 1) if span > 0 else None,
            "worker_cpu_us_per_update": _per_update(cpu0, cpu1, applied), "concurrency": gen.connections}


def http_learning_latency(gen: HttpLoad, samples: int, *, tag: str) -> dict:
    async def one(j: int) -> float | None:
        uid = f"{tag}user{j}".encode()
        p = json.loads(await gen.call(b"POST", b"/predict", gen.pool.body(j, f"{tag}{j}-0".encode(), uid)[1]))
        v0 = p["versions"]["user_weights"]
        fb = events.Feedback(p["request_id"], p["user_id"], p["chosen"][0], 1.0, time.time())
        t0 = time.perf_counter()
        await gen.call(b"POST", b"/feedback", events.encode(fb))
        for k in range(1, 1000):
            q = json.loads(await gen.call(b"POST", b"/predict", gen.pool.body(j, f"{tag}{j}-{k}".encode(), uid)[1]))
            if q["versions"]["user_weights"] > v0:
                return (time.perf_counter() - t0) * 1000
        return None

    async def all_() -> list[float]:
        await gen._top_up()
        got = [await one(j) for j in range(samples)]
        return [g for g in got if g is not None]

    return _latency_summary(gen.run(all_()), samples)
