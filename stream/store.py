"""The worker's durable state, behind one small interface, kept in Redis.

This module owns every Redis key Eddy uses (:class:`Keys` lists them all) and
is the only code that holds a Redis client. What lives there, all under the
deployment's key prefix:

* ``user:<fn>:<user>``: a user's online model (bytes from ``learners``) for
  feature-net version ``fn``; ``users:<fn>:<partition>`` lists the users a
  partition owns, so a worker can warm its cache when it is assigned one.
* ``decision:<request>``: the join record the feedback join needs, expiring
  after the TTL its batch gives (twice the join window).
* ``applied:<request>``: the marker that a request's feedback was applied,
  with the source offset and the outputs it produced. It makes updates
  idempotent: a redelivered feedback (same offset) re-emits the stored
  outputs, a second feedback (other offset) is a duplicate.
* ``pop:<fn>:<partition>``: additive population statistics per partition.
* ``policy:<group>:<name>``: the snapshot of a learning policy (VW).
* ``epoch:<group>:<partition>``: a fencing token bumped on every assignment;
  a batch commits only while the worker still holds the epoch it was given,
  so a worker that lost a partition in a rebalance cannot write over the
  state its successor already read.
* ``stats:<group>:<instance>``: a worker's batch counters (consumed,
  processed, dead-lettered...), incremented in each batch's MULTI/EXEC, so
  they count exactly what is durable and survive restarts;
  ``procstats:<group>:<instance>``: its process-level figures (rebalances,
  outages, swaps), replaced whole every second.
* ``registry:*``: the feature-net registry (:mod:`stream.registry`).

Each batch's writes (users, markers, population statistics, decisions and
the policy snapshot) go in one MULTI/EXEC under WATCH of the epochs: all or
nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable

import redis

from stream.engine.state import BatchWrite
from stream.errors import StoreUnavailable
from stream.keys import Keys
from stream.registry import Registry

if TYPE_CHECKING:
    from stream.config import Settings

__all__ = ["BatchWrite", "Keys", "RedisStore", "StoreUnavailable", "open_registry"]

APPLIED_TTL_S = 7 * 24 * 3600
STATS_TTL_S = 7 * 24 * 3600


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"Redis did not answer: {exc}")


class RedisStore:
    """Eddy's state in Redis. Connection failures raise :class:`StoreUnavailable`."""

    def __init__(self, url: str, prefix: str, *, socket_timeout_s: float = 10.0):
        self._r = redis.Redis.from_url(url, socket_timeout=socket_timeout_s, socket_connect_timeout=5)
        self.keys = Keys(prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        return cls(settings.redis_url, settings.topic_prefix)

    def registry(self, model_dir: str) -> Registry:
        """The feature-net registry over this store's connection (its keys are :meth:`Keys.registry`)."""
        return Registry(self._r, self.keys, model_dir)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from None

    def ping(self) -> bool:
        return bool(self._call(self._r.ping))

    # ----------------------------------------------------------- partitions
    def claim(self, group: str, partitions: Iterable[int]) -> dict[int, int]:
        parts = list(partitions)

        def run():
            pipe = self._r.pipeline(transaction=True)
            for p in parts:
                pipe.incr(self.keys.epoch(group, p))
            return dict(zip(parts, (int(e) for e in pipe.execute())))

        return self._call(run)

    def epochs(self, group: str, partitions: list[int]) -> dict[int, int]:
        vals = self._mget([self.keys.epoch(group, p) for p in partitions])
        return {p: int(v or 0) for p, v in zip(partitions, vals)}

    def users_of(self, fn: str, partition: int, limit: int) -> list[str]:
        members = self._call(self._r.srandmember, self.keys.users(fn, partition), limit) or []
        return [m.decode() for m in members]

    # ---------------------------------------------------------------- reads
    def _mget(self, keys: list[str]) -> list[bytes | None]:
        return self._call(self._r.mget, keys) if keys else []

    def load_users(self, fn: str, user_ids: list[str]) -> dict[str, bytes]:
        vals = self._mget([self.keys.user(fn, u) for u in user_ids])
        return {u: v for u, v in zip(user_ids, vals) if v is not None}

    def load_decisions(self, request_ids: list[str]) -> dict[str, bytes]:
        vals = self._mget([self.keys.decision(r) for r in request_ids])
        return {r: v for r, v in zip(request_ids, vals) if v is not None}

    def load_applied(self, request_ids: list[str]) -> dict[str, bytes]:
        vals = self._mget([self.keys.applied(r) for r in request_ids])
        return {r: v for r, v in zip(request_ids, vals) if v is not None}

    def load_population(self, fn: str, partition: int) -> bytes | None:
        return self._call(self._r.get, self.keys.population(fn, partition))

    def populations(self, fn: str, partitions: int) -> list[bytes]:
        vals = self._mget([self.keys.population(fn, p) for p in range(partitions)])
        return [v for v in vals if v is not None]

    def load_policy(self, group: str, name: str) -> bytes | None:
        return self._call(self._r.get, self.keys.policy(group, name))

    # --------------------------------------------------------------- writes
    def commit(self, batch: BatchWrite, *, group: str, epochs: dict[int, int], instance: str = "") -> bool:
        """Write ``batch`` atomically if this worker still owns ``epochs``; False if fenced.

        Raises :class:`StoreUnavailable` when Redis does not answer. redis-py
        reports a connection lost while keys are WATCHed as a ``WatchError``;
        a ping tells that outage apart from a real fence.
        """
        if not batch:
            return True
        try:
            return self._commit(batch, group, epochs, instance)
        except redis.WatchError:
            self.ping()  # raises StoreUnavailable if the "fence" was a lost connection
            return False
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from None

    def _commit(self, batch: BatchWrite, group: str, epochs: dict[int, int], instance: str) -> bool:
        k = self.keys
        epoch_keys = [k.epoch(group, p) for p in sorted(epochs)]
        ttl = max(1, int(batch.decision_ttl_s))
        with self._r.pipeline(transaction=True) as pipe:
            if epoch_keys:
                pipe.watch(*epoch_keys)
                current = pipe.mget(epoch_keys)
                if [int(c or 0) for c in current] != [epochs[p] for p in sorted(epochs)]:
                    pipe.unwatch()
                    return False
            pipe.multi()
            for (fn, user), (state, partition) in batch.users.items():
                pipe.set(k.user(fn, user), state)
                pipe.sadd(k.users(fn, partition), user)
            for rid, marker in batch.applied.items():
                pipe.set(k.applied(rid), marker, ex=APPLIED_TTL_S)
            for (fn, partition), stats in batch.population.items():
                pipe.set(k.population(fn, partition), stats)
            for rid, record in batch.decisions.items():
                pipe.set(k.decision(rid), record, ex=ttl)
            if batch.policy is not None:
                name, blob = batch.policy
                pipe.set(k.policy(group, name), blob)
            if batch.counts:
                stats = k.stats(group, instance)
                for name, n in batch.counts.items():
                    pipe.hincrby(stats, name, int(n))
                pipe.expire(stats, STATS_TTL_S)
            pipe.execute()
            return True

    # ---------------------------------------------------------------- stats
    def publish_stats(self, group: str, instance: str, stats: dict[str, int]) -> None:
        """Replace this worker's process-level figures (no stale fields from a previous process)."""
        key = self.keys.process_stats(group, instance)

        def run():
            pipe = self._r.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={**{k: int(v) for k, v in stats.items()}, "updated": int(time.time())})
            pipe.expire(key, STATS_TTL_S)
            pipe.execute()

        self._call(run)

    def read_stats(self, group: str) -> dict[str, dict[str, int]]:
        """Per worker instance: its batch counters and its process-level figures."""
        def run():
            out: dict[str, dict[str, int]] = {}
            for pattern in (self.keys.stats(group, "*"), self.keys.process_stats(group, "*")):
                for key in self._r.scan_iter(pattern):
                    inst = key.decode().rsplit(":", 1)[-1]
                    fields = {k.decode(): int(v) for k, v in self._r.hgetall(key).items()}
                    out.setdefault(inst, {}).update(fields)
            return out

        return self._call(run)

    # ------------------------------------------------------ bulk (benchmarks)
    def seed_users(self, fn: str, states: dict[str, bytes], partition_of: dict[str, int]) -> None:
        """Write many users' states at once (benchmarks' user populations); not fenced."""
        def run():
            pipe = self._r.pipeline(transaction=False)
            pipe.mset({self.keys.user(fn, u): s for u, s in states.items()})
            by_part: dict[int, list[str]] = {}
            for u in states:
                by_part.setdefault(partition_of[u], []).append(u)
            for p, members in by_part.items():
                pipe.sadd(self.keys.users(fn, p), *members)
            pipe.execute()

        self._call(run)

    def drop_partition_members(self, fn: str, partitions: int) -> None:
        """Forget which users each partition has (a new owner then warms nothing; benchmarks' cold start)."""
        self._call(self._r.unlink, *[self.keys.users(fn, p) for p in range(partitions)])

    def delete_deployment(self) -> int:
        """Delete every key under this deployment's prefix (benchmarks' and tests' cleanup)."""
        def run():
            n, batch = 0, []
            for key in self._r.scan_iter(f"{self.keys.prefix}*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    n += self._r.unlink(*batch)
                    batch.clear()
            return n + (self._r.unlink(*batch) if batch else 0)

        return self._call(run)

    def close(self) -> None:
        self._r.close()


def open_registry(settings: Settings) -> Registry:
    """The one way to get the deployment's feature-net registry from settings."""
    return RedisStore.from_settings(settings).registry(settings.model_dir)
