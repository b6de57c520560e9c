"""Cost as users grow: Redis bytes per user, and prediction latency for random users with a cold cache.

For each population size N, under its own prefix: N per-user states (real
learner bytes: river models that each learned a few observations) are
written with the worker's key layout (``user:<fn>:<user>`` plus the
partition's ``users:<fn>:<p>`` set), and Redis memory is read before and
after (``INFO memory`` delta / N; ``MEMORY USAGE`` of sampled keys as a
cross-check, since other clients of a shared Redis move the delta). Those two
read the server itself, so they use a client of their own; every key is named
by the store and written through it. The
partition sets are then dropped so a fresh worker warms nothing: every
user's first query misses the in-process cache and reads Redis. One
open-loop step at a fixed rate then queries users drawn uniformly from N.
"""

from __future__ import annotations

import time

import numpy as np
import redis

from benchmarks.systems import BenchError
from learners import make_user_model
from stream.store import RedisStore


def sample_states(dim: int, kinds: int = 64, observations: int = 5, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(kinds):
        m = make_user_model("river", dim)
        for _ in range(observations):
            m.learn_one(rng.normal(size=dim) / np.sqrt(dim), float(rng.random() < 0.3))
        out.append(m.to_bytes())
    return out


def write_users(store: RedisStore, fn: str, n: int, states: list[bytes], partitions: int, progress=None) -> None:
    """The worker's layout, written in bulk through the store (states, and each partition's members)."""
    chunk = 20_000
    for start in range(0, n, chunk):
        ids = [f"cu{u}" for u in range(start, min(n, start + chunk))]
        store.seed_users(fn, {uid: states[(start + i) % len(states)] for i, uid in enumerate(ids)},
                         {uid: (start + i) % partitions for i, uid in enumerate(ids)})
        if progress:
            progress(start + len(ids), n)


def redis_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def measure_memory(r: redis.Redis, store: RedisStore, fn: str, n: int, states: list[bytes], partitions: int,
                   progress=None) -> dict:
    before = redis_memory(r)
    t0 = time.perf_counter()
    write_users(store, fn, n, states, partitions, progress)
    write_s = time.perf_counter() - t0
    after = redis_memory(r)
    rng = np.random.default_rng(0)
    sample = rng.integers(0, n, size=min(n, 200))  # user cu<i> is in partition i % partitions (write_users)
    key_bytes = np.mean([r.memory_usage(store.keys.user(fn, f"cu{u}", int(u) % partitions), samples=0) for u in sample])
    set_bytes = sum(r.memory_usage(store.keys.users(fn, p), samples=0) or 0 for p in range(partitions)) / n
    return {
        "users": n, "state_bytes": len(states[0]), "write_seconds": round(write_s, 2),
        "writes_per_s": round(n / write_s, 1),
        "info_used_memory_delta": after - before, "bytes_per_user_info": round((after - before) / n, 1),
        "bytes_per_user_memory_usage": round(float(key_bytes + set_bytes), 1),
        "memory_usage_user_key": round(float(key_bytes), 1), "memory_usage_partition_set_per_user": round(set_bytes, 1),
    }


def settle_persistence(r: redis.Redis, timeout_s: float = 180.0) -> float | None:
    """Rewrite the AOF now and wait for it; returns the seconds it took (0.0 without AOF, None
    where Redis refuses ``BGREWRITEAOF``, as a managed one may).

    Writing a million users in seconds grows the AOF far past ``auto-aof-rewrite-percentage``:
    Redis then forks and rewrites the whole dataset, once or twice, at moments set by its cron,
    which may fall in the latency step that follows, so the step would time the fork and not
    the population's cost. A rewrite started here, after the bulk write, leaves an AOF whose
    base holds every user: the step's few writes cannot double it. A rewrite already running
    started before the last users were written, so it is waited out and another one started.
    (A population grown by real traffic rewrites at random moments; that cost is Redis's
    durability, measured apart by ``benchmarks.redis_durability``.)"""
    if r.info("persistence").get("aof_enabled") in (0, "0"):
        return 0.0
    t0 = time.monotonic()

    def wait_idle() -> None:
        while any(int(r.info("persistence").get(k, 0)) for k in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")):
            if time.monotonic() - t0 > timeout_s:
                raise BenchError(f"Redis's AOF rewrite did not finish within {timeout_s:g} s")
            time.sleep(0.1)

    for attempt in range(2):
        try:
            r.bgrewriteaof()  # while an RDB save runs, Redis schedules this rewrite after it
            break
        except redis.exceptions.NoPermissionError:
            return None
        except redis.ResponseError as exc:
            if "unknown command" in str(exc):  # renamed away, as on some managed Redis
                return None
            if "already in progress" not in str(exc) or attempt:
                raise BenchError(f"Redis refused BGREWRITEAOF: {exc}") from exc
            wait_idle()
    wait_idle()
    return round(time.monotonic() - t0, 2)


def drop_partition_sets(store: RedisStore, fn: str, partitions: int) -> None:
    store.drop_partition_members(fn, partitions)


def user_ids(n: int, count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [f"cu{u}".encode() for u in rng.integers(0, n, size=count)]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (``VmRSS`` from /proc), in MiB; None where /proc has no such figure."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
