"""The worker's durable state, behind one small interface, kept in Redis.

What lives here, all under the deployment's key prefix:

* ``user:<fn>:<user>``: a user's online model (bytes from ``learners``) for
  feature-net version ``fn``; ``users:<fn>:<partition>`` lists the users a
  partition owns, so a worker can warm its cache when it is assigned one.
* ``decision:<request>``: the decision record the feedback join needs,
  expiring after twice the join window.
* ``applied:<request>``: the marker that a request's feedback was applied,
  with the source offset and the outputs it produced. It makes updates
  idempotent: a redelivered feedback (same offset) re-emits the stored
  outputs, a second feedback (other offset) is a duplicate.
* ``pop:<fn>:<partition>``: additive population statistics per partition.
* ``epoch:<group>:<partition>``: a fencing token bumped on every assignment;
  a batch commits only while the worker still holds the epoch it was given,
  so a worker that lost a partition in a rebalance cannot write over the
  state its successor already read.

Each batch's writes go in one MULTI/EXEC under WATCH of the epochs: all or
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import redis

APPLIED_TTL_S = 7 * 24 * 3600


@dataclass
class BatchWrite:
    """Everything one batch changes, committed atomically by :meth:`RedisStore.commit`."""

    users: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)  # (fn, user) -> (state, partition)
    applied: dict[str, bytes] = field(default_factory=dict)  # request id -> marker
    population: dict[tuple[str, int], bytes] = field(default_factory=dict)  # (fn, partition) -> stats
    decisions: dict[str, bytes] = field(default_factory=dict)  # request id -> decision record

    def __bool__(self) -> bool:
        return bool(self.users or self.applied or self.population or self.decisions)


class RedisStore:
    def __init__(self, url: str, prefix: str, *, decision_ttl_s: float):
        self._r = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._p = prefix
        self._decision_ttl = max(1, int(decision_ttl_s))

    @property
    def client(self) -> redis.Redis:
        return self._r

    def ping(self) -> bool:
        return bool(self._r.ping())

    def key(self, *parts: object) -> str:
        return self._p + ":".join(str(p) for p in parts)

    # ----------------------------------------------------------- partitions
    def claim(self, group: str, partitions: Iterable[int]) -> dict[int, int]:
        parts = list(partitions)
        pipe = self._r.pipeline(transaction=True)
        for p in parts:
            pipe.incr(self.key("epoch", group, p))
        return dict(zip(parts, (int(e) for e in pipe.execute())))

    def users_of(self, fn: str, partition: int, limit: int) -> list[str]:
        members = self._r.srandmember(self.key("users", fn, partition), limit) or []
        return [m.decode() for m in members]

    # ---------------------------------------------------------------- reads
    def load_users(self, fn: str, user_ids: list[str]) -> dict[str, bytes]:
        if not user_ids:
            return {}
        vals = self._r.mget([self.key("user", fn, u) for u in user_ids])
        return {u: v for u, v in zip(user_ids, vals) if v is not None}

    def load_decisions(self, request_ids: list[str]) -> dict[str, bytes]:
        if not request_ids:
            return {}
        vals = self._r.mget([self.key("decision", r) for r in request_ids])
        return {r: v for r, v in zip(request_ids, vals) if v is not None}

    def load_applied(self, request_ids: list[str]) -> dict[str, bytes]:
        if not request_ids:
            return {}
        vals = self._r.mget([self.key("applied", r) for r in request_ids])
        return {r: v for r, v in zip(request_ids, vals) if v is not None}

    def population(self, fn: str, partitions: int) -> list[bytes]:
        vals = self._r.mget([self.key("pop", fn, p) for p in range(partitions)])
        return [v for v in vals if v is not None]

    # --------------------------------------------------------------- writes
    def commit(self, batch: BatchWrite, *, group: str, epochs: dict[int, int]) -> bool:
        """Write ``batch`` atomically if this worker still owns ``epochs``; False if fenced."""
        if not batch:
            return True
        epoch_keys = [self.key("epoch", group, p) for p in sorted(epochs)]
        with self._r.pipeline(transaction=True) as pipe:
            try:
                if epoch_keys:
                    pipe.watch(*epoch_keys)
                    current = pipe.mget(epoch_keys)
                    if [int(c or 0) for c in current] != [epochs[p] for p in sorted(epochs)]:
                        pipe.unwatch()
                        return False
                pipe.multi()
                for (fn, user), (state, partition) in batch.users.items():
                    pipe.set(self.key("user", fn, user), state)
                    pipe.sadd(self.key("users", fn, partition), user)
                for rid, marker in batch.applied.items():
                    pipe.set(self.key("applied", rid), marker, ex=APPLIED_TTL_S)
                for (fn, partition), stats in batch.population.items():
                    pipe.set(self.key("pop", fn, partition), stats)
                for rid, record in batch.decisions.items():
                    pipe.set(self.key("decision", rid), record, ex=self._decision_ttl)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    # ---------------------------------------------------------------- stats
    def publish_stats(self, group: str, instance: str, stats: dict[str, int]) -> None:
        key = self.key("stats", group, instance)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping={**{k: int(v) for k, v in stats.items()}, "updated": int(time.time())})
        pipe.expire(key, 24 * 3600)
        pipe.execute()

    def read_stats(self, group: str) -> dict[str, dict[str, int]]:
        out = {}
        for key in self._r.scan_iter(self.key("stats", group, "*")):
            inst = key.decode().rsplit(":", 1)[-1]
            out[inst] = {k.decode(): int(v) for k, v in self._r.hgetall(key).items()}
        return out

    def close(self) -> None:
        self._r.close()
