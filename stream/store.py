"""The worker's durable state, behind one small interface, kept in Redis.

This module owns every Redis key Eddy uses (:class:`Keys` lists them all) and
is the only code that holds a Redis client: a plain ``redis.Redis``, or a
``redis.RedisCluster`` when the URL's scheme is ``redis+cluster://`` (or
``rediss+cluster://``). What lives there, all under the deployment's key
prefix; ``{p<N>}`` is partition N's hash tag (one Redis Cluster slot):

* ``{pN}:user:<fn>:<user>``: a user's online model (bytes from ``learners``)
  for feature-net version ``fn``; ``{pN}:users:<fn>`` lists the users
  partition N owns, so a worker can warm its cache when it is assigned it.
* ``{pN}:decision:<request>``: the join record the feedback join needs,
  expiring after the TTL its batch gives (twice the join window).
* ``{pN}:applied:<request>``: the marker that a request's feedback was
  applied, with the source offset and the outputs it produced. It makes
  updates idempotent: a redelivered feedback (same offset) re-emits the
  stored outputs, a second feedback (other offset) is a duplicate.
* ``{pN}:held`` (request id -> early feedback) and ``{pN}:helddue`` (request
  id scored by its deadline): feedback that came before its decision, held
  until the batch that decides the request applies it, or until the sweep
  (:mod:`stream.held`) dead-letters it once the join window has passed.
  Bounded per partition (``held_feedback_max``).
* ``{pN}:pending``: decisions still waiting for their reward, scored by their
  deadline (decision time + ``reward_wait_s``); the reward timer
  (:mod:`stream.rewards`) emits the default reward for those past it.
* ``{pN}:rsum:<request>``: with ``reward_aggregation=sum``, the rewards a
  request got so far within its wait (one field per source record), summed
  and deleted by the batch that applies the sum (:mod:`stream.engine.aggregation`).
* ``{pN}:pop:<fn>``: additive population statistics of partition N.
* ``{pN}:select``: model selection's state of partition N (the selector's
  estimated losses per feature-net version and the versions' shadow errors,
  :mod:`stream.engine.selection`).
* ``{pN}:epoch:<group>``: a fencing token bumped on every assignment; a batch
  commits only while the worker still holds the epoch it was given, so a
  worker that lost a partition in a rebalance cannot write over the state its
  successor already read.
* ``policy:<group>:<name>``: the snapshot of a learning policy (VW) that workers learn.
* ``{learner}:policy:<group>:<name>``: the learner role's snapshot, version, input
  offsets and counts (one hash, :mod:`stream.learner`); ``{learner}:epoch:...`` fences it.
* ``stats:<group>:<instance>``: a worker's batch counters (consumed,
  processed, dead-lettered...), incremented with each batch's commit, so
  they count what is durable and survive restarts;
  ``procstats:<group>:<instance>``: its process-level figures (rebalances,
  outages, swaps), replaced whole every second.
* ``{registry}:*``: the feature-net registry (:mod:`stream.registry`).

A batch's writes go in one Lua script that first checks the epochs (atomic,
like MULTI/EXEC under WATCH, in one round trip instead of three): against one
Redis, one script for the whole batch; against a Redis Cluster, one per
partition (one slot), then the counters and the policy snapshot
(docs/design.md, "Redis Cluster", gives the argument).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import hiredis
import redis
from redis.exceptions import ClusterError, RedisClusterException

from stream.engine.state import BatchWrite, DecisionsExist
from stream.errors import StoreAuthFailed, StoreUnavailable, redis_failure
from stream.keys import Keys
from stream.registry import Registry

if TYPE_CHECKING:
    from stream.config import Settings

__all__ = ["BatchWrite", "Keys", "RedisStore", "StoreAuthFailed", "StoreUnavailable", "connect", "open_registry",
           "redis_client"]

APPLIED_TTL_S = 7 * 24 * 3600
STATS_TTL_S = 7 * 24 * 3600

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that select redis-py's cluster client, and the scheme it is given instead."""

_COMMIT_SCRIPT = """
-- KEYS: the fenced partitions' epoch keys, the keys that must not exist, then one key per command.
-- ARGV: the number of epochs, the epoch this worker holds for each, the number of keys that
--       must not exist, then per command its name, its argument count and its arguments
--       (the key is KEYS').
-- Writes nothing and returns 0 if any epoch moved on (a rebalance gave the partition
-- to another worker); writes nothing and returns the keys found if any that must not
-- exist does (an optimistic batch's decisions, stored already); else runs every command
-- and returns 1. A script is atomic, so no other client sees part of a batch, and it
-- reaches the AOF in one write (one fsync under always).
local ne = tonumber(ARGV[1])
for i = 1, ne do
  if (tonumber(redis.call('GET', KEYS[i])) or 0) ~= tonumber(ARGV[i + 1]) then return 0 end
end
local nn = tonumber(ARGV[ne + 2])
local any = 0
for i = ne + 1, ne + nn, 1000 do  -- one EXISTS per 1,000 keys (unpack's stack), one per key only to name them
  any = any + redis.call('EXISTS', unpack(KEYS, i, math.min(i + 999, ne + nn)))
end
if any > 0 then
  local found = {}
  for i = ne + 1, ne + nn do
    if redis.call('EXISTS', KEYS[i]) == 1 then found[#found + 1] = KEYS[i] end
  end
  return found
end
local a, k = ne + 3, ne + nn + 1
while a <= #ARGV do
  local n = tonumber(ARGV[a + 1])
  redis.call(ARGV[a], KEYS[k], unpack(ARGV, a + 2, a + 1 + n))
  a, k = a + 2 + n, k + 1
end
return 1
"""
"""A batch's commit in one round trip: check the epochs, then write (WATCH + GET + MULTI/EXEC took three)."""

class _Commands:
    """The commit script's list of writes, spelled like redis-py's commands (``set(k, v, ex=...)``,
    ``zadd(k, {m: s}, xx=True)``...) but only recorded: building them through redis-py's own
    command methods cost more client CPU than the round trip. Each entry: (name, key, *args)."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[tuple] = []

    def set(self, key: str, value: bytes, ex: int | None = None) -> None:
        self.commands.append(("SET", key, value) if ex is None else ("SET", key, value, "EX", ex))

    def sadd(self, key: str, *members: str) -> None:
        self.commands.append(("SADD", key, *members))

    def hset(self, key: str, field: str | None = None, value: bytes | None = None,
             mapping: dict | None = None) -> None:
        pairs = [] if field is None else [field, value]
        for f, v in (mapping or {}).items():
            pairs += (f, v)
        self.commands.append(("HSET", key, *pairs))

    def hdel(self, key: str, *fields: str) -> None:
        self.commands.append(("HDEL", key, *fields))

    def hincrby(self, key: str, field: str, amount: int) -> None:
        self.commands.append(("HINCRBY", key, field, amount))

    def zadd(self, key: str, mapping: dict, xx: bool = False) -> None:
        args = ["XX"] if xx else []
        for member, score in mapping.items():
            args += (score, member)
        self.commands.append(("ZADD", key, *args))

    def zrem(self, key: str, *members: str) -> None:
        self.commands.append(("ZREM", key, *members))

    def expire(self, key: str, seconds: int) -> None:
        self.commands.append(("EXPIRE", key, seconds))

    def delete(self, key: str) -> None:
        self.commands.append(("DEL", key))


_OUTAGES = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException)
"""What says "Redis did not answer" (a cluster adds: slots not covered, cluster down, no node reachable)."""


def _unavailable(exc: Exception) -> StoreUnavailable | StoreAuthFailed:
    return redis_failure(exc)


class HiredisPacker:
    """Packs a command with one call into hiredis's C packer.

    redis-py's own packer runs two Python passes over a command's arguments before it calls hiredis
    (a type check, then an encode call per argument): 12.5 us of the worker's CPU per feedback update,
    whose commit sends about 12 arguments, against 1.7 us for hiredis alone (docs/benchmarks.md). For the
    types Eddy sends (str, bytes, int, float, memoryview) hiredis writes the same bytes
    (tests/unit/test_store_packer.py), str as UTF-8: redis-py's default encoding, which ``connect``
    never changes. Anything else (bool, None, bytearray), and a command name of
    several words (``CLIENT SETINFO``), goes to redis-py's packer, which packs it or raises its DataError.
    """

    __slots__ = ("_redis_py",)

    def __init__(self) -> None:
        self._redis_py = redis.Connection().pack_command  # never connects: only its packer is used

    def pack(self, *args) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) and " " not in name:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:  # a type hiredis does not take
                pass
        return self._redis_py(*args)


def connect(url: str, *, socket_timeout_s: float = 10.0, **client_options) -> redis.Redis | redis.RedisCluster:
    """The client for ``url``: ``redis+cluster://host:port`` (any one node) is a Redis Cluster.
    ``client_options``: the ACL user and the TLS CA (:meth:`Settings.redis_options`).

    A cluster client asks its seed node for the cluster's layout at once, so this
    raises :class:`StoreUnavailable` when no node answers.

    A plain client packs commands with :class:`HiredisPacker`; a cluster client keeps redis-py's
    packer (it does not pass a packer on to the clients it makes for each node).
    """
    scheme, sep, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES:
        return redis.Redis.from_url(url, socket_timeout=socket_timeout_s, socket_connect_timeout=5,
                                    command_packer=HiredisPacker(), **client_options)
    try:
        return redis.RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}{sep}{rest}", socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=5, **client_options)
    except _OUTAGES as exc:
        raise _unavailable(exc) from None


class RedisStore:
    """Eddy's state in Redis. Connection failures raise :class:`StoreUnavailable`."""

    def __init__(self, url: str, prefix: str, *, socket_timeout_s: float = 10.0, applied_ttl_s: float = APPLIED_TTL_S,
                 **client_options):
        """``client_options``: the ACL user and TLS CA (:meth:`Settings.redis_options`); ``applied_ttl_s``: how long
        an applied-marker lives (:attr:`Settings.applied_ttl_s`)."""
        self._r = connect(url, socket_timeout_s=socket_timeout_s, **client_options)
        self.applied_ttl_s = max(1, int(applied_ttl_s))
        self.cluster = isinstance(self._r, redis.RedisCluster)
        self._pool: ThreadPoolExecutor | None = None  # a cluster's per-partition commits
        self._commit_script = self._r.register_script(_COMMIT_SCRIPT)
        self.keys = Keys(prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        return cls(settings.redis_url, settings.topic_prefix, applied_ttl_s=settings.applied_ttl_s,
                   **settings.redis_options())

    def registry(self, model_dir: str) -> Registry:
        """The feature-net registry over this store's connection (its keys are :meth:`Keys.registry`)."""
        return Registry(self._r, self.keys, model_dir)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _OUTAGES as exc:
            raise _unavailable(exc) from None

    def ping(self) -> bool:
        return bool(self._call(self._r.ping))

    # ----------------------------------------------------------- partitions
    def claim(self, group: str, partitions: Iterable[int]) -> dict[int, int]:
        """Bump each partition's epoch (one INCR each: every epoch is its own fence)."""
        parts = list(partitions)

        def run():
            pipe = self._r.pipeline(transaction=False)
            for p in parts:
                pipe.incr(self.keys.epoch(group, p))
            return dict(zip(parts, (int(e) for e in pipe.execute())))

        return self._call(run)

    def epochs(self, group: str, partitions: list[int]) -> dict[int, int]:
        vals = self._get_each({p: p for p in partitions}, lambda p, _: self.keys.epoch(group, p))
        return {p: int(vals.get(p) or 0) for p in partitions}

    def users_of(self, fn: str, partition: int, limit: int) -> list[str]:
        members = self._call(self._r.srandmember, self.keys.users(fn, partition), limit) or []
        return [m.decode() for m in members]

    def partitions_of_users(self, fn: str, user_ids: list[str], partitions: int) -> dict[str, int]:
        """Which partition holds each user's model (from the partitions' member sets); unknown users are absent.

        For readers that know users but not their records' partitions (replay).
        """
        if not user_ids:
            return {}

        def run():
            pipe = self._r.pipeline(transaction=False)
            for p in range(partitions):
                pipe.smismember(self.keys.users(fn, p), user_ids)
            found: dict[str, int] = {}
            for p, flags in enumerate(pipe.execute()):
                found.update({u: p for u, f in zip(user_ids, flags) if f and u not in found})
            return found

        return self._call(run)

    # ---------------------------------------------------------------- reads
    def _get_each(self, ids: Mapping, key_of: Callable[[object, int], str]) -> dict:
        """``{id: value}`` for ``ids`` (``{id: partition}``), in one round trip.

        One Redis: one MGET. A cluster: one MGET per slot, pipelined (``mget_nonatomic``)."""
        if not ids:
            return {}
        order = list(ids.items())
        keys = [key_of(i, p) for i, p in order]
        mget = self._r.mget_nonatomic if self.cluster else self._r.mget
        vals = self._call(mget, keys)
        return {i: v for (i, _), v in zip(order, vals) if v is not None}

    def load_users(self, fn: str, users: Mapping[str, int]) -> dict[str, bytes]:
        """Stored models of ``users`` (``{user id: partition}``)."""
        return self._get_each(users, lambda u, p: self.keys.user(fn, u, p))

    def load_decisions(self, requests: Mapping[str, int]) -> dict[str, bytes]:
        """Join records of ``requests`` (``{request id: partition}``)."""
        return self._get_each(requests, lambda r, p: self.keys.decision(r, p))

    def load_applied(self, requests: Mapping[str, int]) -> dict[str, bytes]:
        """Applied-markers of ``requests`` (``{request id: partition}``)."""
        return self._get_each(requests, lambda r, p: self.keys.applied(r, p))

    def load_together(self, fn: str, users: Mapping[str, int], decisions: Mapping[str, int],
                      applied: Mapping[str, int]) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]]:
        """:meth:`load_users`, :meth:`load_decisions` and :meth:`load_applied` in one round trip (one MGET)."""
        key_of = {"u": lambda u, p: self.keys.user(fn, u, p), "d": self.keys.decision, "a": self.keys.applied}
        ids = {("u", u): p for u, p in users.items()}
        ids.update({("d", r): p for r, p in decisions.items()})
        ids.update({("a", r): p for r, p in applied.items()})
        found = self._get_each(ids, lambda i, p: key_of[i[0]](i[1], p))
        out: dict[str, dict[str, bytes]] = {"u": {}, "d": {}, "a": {}}
        for (kind, i), v in found.items():
            out[kind][i] = v
        return out["u"], out["d"], out["a"]

    def load_outboxes(self, refs: list[tuple[int, str]]) -> dict[tuple[int, str], bytes]:
        """Outboxes of ``(partition, outbox id)`` refs that are still there, in one round trip."""
        return self._get_each({ref: ref[0] for ref in refs}, lambda ref, p: self.keys.outbox(ref[1], p))

    def delete_outboxes(self, refs: Iterable[tuple[int, str]]) -> None:
        """Delete outboxes whose outputs committed (one round trip; a cluster: one per key, pipelined).

        ``UNLINK``: an outbox holds a batch's outputs (hundreds of KB), which Redis then frees off its main
        thread. Best effort by design: one left behind (Redis away now) expires with its markers."""
        keys = [self.keys.outbox(outbox_id, p) for p, outbox_id in refs]
        if not keys:
            return

        def run():
            if not self.cluster:
                return self._r.unlink(*keys)
            pipe = self._r.pipeline(transaction=False)
            for key in keys:
                pipe.unlink(key)
            return pipe.execute()

        self._call(run)

    def load_held(self, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], bytes]:
        """Held feedback of ``(partition, request)`` pairs, in one round trip."""
        by_partition: dict[int, list[str]] = {}
        for p, rid in dict.fromkeys(wanted):
            by_partition.setdefault(p, []).append(rid)
        if not by_partition:
            return {}

        def run():
            pipe = self._r.pipeline(transaction=False)
            for p, rids in by_partition.items():
                pipe.hmget(self.keys.held(p), rids)
            return pipe.execute()

        out = {}
        for (p, rids), vals in zip(by_partition.items(), self._call(run)):
            out.update({(p, r): v for r, v in zip(rids, vals) if v is not None})
        return out

    def load_reward_sums(self, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], dict[str, bytes]]:
        """The reward accumulators (``reward_aggregation=sum``) of ``(partition, request)`` pairs, in one round trip."""
        keys = list(dict.fromkeys(wanted))
        if not keys:
            return {}

        def run():
            pipe = self._r.pipeline(transaction=False)
            for p, rid in keys:
                pipe.hgetall(self.keys.reward_sum(rid, p))
            return pipe.execute()

        return {k: {f.decode(): v for f, v in fields.items()} for k, fields in zip(keys, self._call(run)) if fields}

    def held_count(self, partition: int) -> int:
        return int(self._call(self._r.zcard, self.keys.held_due(partition)))

    def expired_held(self, partition: int, now: float, limit: int) -> dict[str, bytes]:
        """Held feedback whose deadline is ``now`` or earlier (oldest first, at most ``limit``)."""
        rids = [r.decode() for r in self._call(self._r.zrangebyscore, self.keys.held_due(partition),
                                                "-inf", now, start=0, num=limit)]
        return {rid: blob for (_, rid), blob in self.load_held([(partition, r) for r in rids]).items()}

    def due_pending(self, partition: int, now: float, limit: int) -> list[str]:
        """Requests whose reward deadline (or lease) is ``now`` or earlier, oldest first."""
        return [r.decode() for r in self._call(self._r.zrangebyscore, self.keys.pending(partition),
                                               "-inf", now, start=0, num=limit)]

    def load_population(self, fn: str, partition: int) -> bytes | None:
        return self._call(self._r.get, self.keys.population(fn, partition))

    def populations(self, fn: str, partitions: int) -> list[bytes]:
        vals = self._get_each({p: p for p in range(partitions)}, lambda p, _: self.keys.population(fn, p))
        return [vals[p] for p in sorted(vals)]

    def load_selection(self, partition: int) -> bytes | None:
        return self._call(self._r.get, self.keys.selection(partition))

    def selections(self, partitions: int) -> dict[int, bytes]:
        """Every partition's model-selection state (``eddy models shadow``, the selectors' sharing)."""
        return self._get_each({p: p for p in range(partitions)}, lambda p, _: self.keys.selection(p))

    def load_policy(self, group: str, name: str) -> bytes | None:
        return self._call(self._r.get, self.keys.policy(group, name))

    def apprentice_state(self) -> bytes | None:
        """Apprentice mode's current switch (JSON, :mod:`stream.apprentice`), or None if never switched."""
        return self._call(self._r.get, self.keys.apprentice("state"))

    def apprentice_history(self, limit: int = 20) -> list[bytes]:
        """The last ``limit`` switches, newest first."""
        return self._call(self._r.lrange, self.keys.apprentice("history"), 0, limit - 1)

    def set_apprentice_state(self, state: bytes, *, keep: int = 1000) -> None:
        """Make ``state`` the switch and add it to the history (at most ``keep`` entries), in one MULTI."""
        def run():
            pipe = self._r.pipeline(transaction=True)
            pipe.set(self.keys.apprentice("state"), state)
            pipe.lpush(self.keys.apprentice("history"), state)
            pipe.ltrim(self.keys.apprentice("history"), 0, keep - 1)
            pipe.execute()
        self._call(run)

    # ------------------------------------------------------ the learner role
    def claim_learner(self, group: str, name: str) -> int:
        """Bump the learner's epoch: a learner still running with an older one can no longer publish."""
        return int(self._call(self._r.incr, self.keys.learner_epoch(group, name)))

    def load_learner(self, group: str, name: str) -> dict[str, bytes]:
        """The learner's last commit: ``version``, ``snapshot``, ``offsets``, ``counts`` (empty: none yet)."""
        raw = self._call(self._r.hgetall, self.keys.learner_snapshot(group, name)) or {}
        return {k.decode(): v for k, v in raw.items()}

    def learner_snapshot(self, group: str, name: str, *, newer_than: int = 0) -> tuple[int, bytes] | None:
        """``(version, snapshot)`` of the learner's policy if its version is above ``newer_than``, else None.

        One HGET of the version while nothing changed; the blob is read with its version (one HMGET)."""
        key = self.keys.learner_snapshot(group, name)
        version = self._call(self._r.hget, key, "version")
        if version is None or int(version) <= newer_than:
            return None
        version, blob = self._call(self._r.hmget, key, ["version", "snapshot"])
        return int(version), blob

    def learners(self, group: str) -> dict[str, dict[str, int]]:
        """Per policy with a learner role: its snapshot version and its committed counts (``eddy stats``)."""
        import json

        def run():
            out = {}
            for key in self._r.scan_iter(self.keys.learner_snapshot(group, "*")):
                name = key.decode().rsplit(":", 1)[-1]
                version, counts = self._r.hmget(key, ["version", "counts"])
                out[name] = {"snapshot": int(version or 0), **json.loads(counts or b"{}")}
            return out

        return self._call(run)

    def commit_learner(self, group: str, name: str, epoch: int, fields: dict[str, bytes | str | int]) -> bool:
        """Replace the learner's snapshot, version, offsets and counts in one atomic write, if ``epoch`` is still
        the learner's; False if another learner claimed it since (fenced)."""
        key, epoch_key = self.keys.learner_snapshot(group, name), self.keys.learner_epoch(group, name)
        pairs = [x for item in fields.items() for x in item]
        # the batch commit's script: check the epoch, no keys that must not exist, then one HSET (one {learner} slot)
        return bool(self._call(self._commit_script, keys=[epoch_key, key], args=[1, epoch, 0, "HSET", len(pairs), *pairs]))

    # --------------------------------------------------------------- writes
    def commit(self, batch: BatchWrite, *, group: str, epochs: dict[int, int], instance: str = "") -> bool:
        """Write ``batch`` if this worker still owns ``epochs``; False if fenced.

        One Redis: one script run (:data:`_COMMIT_SCRIPT`) for the whole batch, which
        checks every epoch first. A Redis Cluster: one script run per partition the
        batch writes (its keys share a slot), checking that partition's epoch, all at
        once; then, if every one committed, the policy snapshot and the counters (one
        key, one MULTI). A fence on one partition leaves the others written: their
        records are then read again and find their join records and markers, as after a crash.

        Raises :class:`StoreUnavailable` when Redis does not answer; the batch may or may
        not have landed, and reading it again finds out (as after a crash).
        """
        if not batch:
            return True
        try:
            if not self.cluster:
                return self._transaction(batch, group, epochs, instance, partitions=None)
            if not all(self._per_partition(batch, group, epochs, instance)):
                return False
            self._write_global(batch, group, instance)
            return True
        except _OUTAGES as exc:
            raise _unavailable(exc) from None

    def _per_partition(self, batch: BatchWrite, group: str, epochs: dict[int, int], instance: str) -> list[bool]:
        """One transaction per partition written, all at once (their nodes fsync in parallel).

        Returns only when every one has finished, so no transaction of this attempt
        can land after a re-read of the batch; then raises the first error, if any."""
        def one(p: int) -> bool:
            held = {p: epochs[p]} if p in epochs else {}
            return self._transaction(batch, group, held, instance, partitions={p})

        parts = sorted(_partitions_written(batch))
        if len(parts) <= 1:
            return [one(p) for p in parts]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eddy-redis-commit")
        futures = [self._pool.submit(one, p) for p in parts]
        wait(futures)
        return [f.result() for f in futures]

    def _transaction(self, batch: BatchWrite, group: str, epochs: dict[int, int], instance: str,
                     partitions: set[int] | None) -> bool:
        """One atomic write of the writes to ``partitions`` (None: every write, the counters and the policy too),
        if ``epochs`` still hold: one round trip (:data:`_COMMIT_SCRIPT`)."""
        k = self.keys
        mine = (lambda p: True) if partitions is None else partitions.__contains__
        ttl = max(1, int(batch.decision_ttl_s))
        # The writes are recorded (:class:`_Commands`), spelled like redis-py's commands so that
        # ``_queue_counts`` also serves a cluster's real pipeline; the script runs the list.
        pipe = _Commands()
        for (fn, user), (state, p) in batch.users.items():
            if mine(p):
                pipe.set(k.user(fn, user, p), state)
                pipe.sadd(k.users(fn, p), user)
        for rid, (marker, p) in batch.applied.items():
            if mine(p):
                pipe.set(k.applied(rid, p), marker, ex=self.applied_ttl_s)
        for (p, outbox_id), outputs in batch.outboxes.items():  # deleted once committed; else gone with the markers
            if mine(p):
                pipe.set(k.outbox(outbox_id, p), outputs, ex=self.applied_ttl_s)
        for (fn, p), stats in batch.population.items():
            if mine(p):
                pipe.set(k.population(fn, p), stats)
        for rid, (record, p) in batch.decisions.items():
            if mine(p):
                pipe.set(k.decision(rid, p), record, ex=ttl)
        for (p, rid), (blob, deadline) in batch.held.items():
            if mine(p):
                pipe.hset(k.held(p), rid, blob)
                pipe.zadd(k.held_due(p), {rid: deadline})
        for p, rid in batch.released:
            if mine(p):
                pipe.hdel(k.held(p), rid)
                pipe.zrem(k.held_due(p), rid)
        for (p, rid), deadline in batch.pending.items():
            if mine(p):
                pipe.zadd(k.pending(p), {rid: deadline})
        for (p, rid), until in batch.leased.items():
            if mine(p):
                pipe.zadd(k.pending(p), {rid: until}, xx=True)  # only if no reward removed it
        for p, rid in batch.rewarded:
            if mine(p):
                pipe.zrem(k.pending(p), rid)
        for p, blob in batch.selection.items():
            if mine(p):
                pipe.set(k.selection(p), blob)
        for (p, rid), added in batch.reward_sums.items():
            if mine(p):
                pipe.hset(k.reward_sum(rid, p), mapping=added)
                pipe.expire(k.reward_sum(rid, p), ttl)
        for p, rid in batch.sums_closed:  # after the adds: a batch may add to a sum and close it
            if mine(p):
                pipe.delete(k.reward_sum(rid, p))
        if partitions is None:
            self._queue_global(pipe, batch, group, instance)
        fenced = sorted(epochs)
        # An optimistic batch's decisions must be new, and so must their applied-markers: the engine then
        # joins their feedback from memory, knowing the store holds no marker (stream/engine/fresh.py).
        new = ([key for rid, (_, p) in batch.decisions.items() if mine(p) for key in (k.decision(rid, p), k.applied(rid, p))]
               if batch.expect_new else [])
        keys = [*(k.epoch(group, p) for p in fenced), *new]
        args: list = [len(fenced), *(epochs[p] for p in fenced), len(new)]
        for name, key, *rest in pipe.commands:
            keys.append(key)
            args += [name, len(rest), *rest]
        out = self._commit_script(keys=keys, args=args)
        if isinstance(out, list):
            raise DecisionsExist([key.decode() for key in out])
        return bool(out)

    def _write_global(self, batch: BatchWrite, group: str, instance: str) -> None:
        """The policy snapshot, then the counters, after a cluster's per-partition transactions.

        Each is one key (so one slot); the counters' fields go in one MULTI so that
        consumed = processed + dead-lettered holds whatever moment a crash picks."""
        if batch.policy is not None:
            name, blob = batch.policy
            self._r.set(self.keys.policy(group, name), blob)
        if batch.counts:
            with self._r.pipeline(transaction=True) as pipe:
                self._queue_counts(pipe, batch, group, instance)
                pipe.execute()

    def _queue_global(self, pipe, batch: BatchWrite, group: str, instance: str) -> None:
        if batch.policy is not None:
            name, blob = batch.policy
            pipe.set(self.keys.policy(group, name), blob)
        self._queue_counts(pipe, batch, group, instance)

    def _queue_counts(self, pipe, batch: BatchWrite, group: str, instance: str) -> None:
        if batch.counts:
            stats = self.keys.stats(group, instance)
            for name, n in batch.counts.items():
                pipe.hincrby(stats, name, int(n))
            pipe.expire(stats, STATS_TTL_S)

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

    def process_figures(self, group: str, instances: list[str]) -> dict[str, dict[str, int]]:
        """What :meth:`publish_stats` last wrote for each of ``instances``, in one round trip (no scan of
        the keyspace, which :meth:`read_stats` needs to find the instances); one that wrote none is left out."""
        def run():
            pipe = self._r.pipeline(transaction=False)
            for inst in instances:
                pipe.hgetall(self.keys.process_stats(group, inst))
            return {inst: {k.decode(): int(v) for k, v in got.items()}
                    for inst, got in zip(instances, pipe.execute()) if got}

        return self._call(run)

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
            by_part: dict[int, list[str]] = {}
            for u in states:
                by_part.setdefault(partition_of[u], []).append(u)
            mset = self._r.mset_nonatomic if self.cluster else self._r.mset
            mset({self.keys.user(fn, u, partition_of[u]): s for u, s in states.items()})
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

    # -------------------------------------------------------------- upgrade
    def migrate_untagged_keys(self) -> dict[str, int]:
        """Rename this deployment's keys from the layout before hash tags (:meth:`Keys.untagged_to_tagged`).

        One Redis only (the old layout never ran on a cluster); run it with the workers
        stopped. A user's partition comes from the old member sets, a marker's from the
        source offset it holds, a decision's from its user's; what cannot be placed is
        left as it is (decisions expire with their join window). RENAMENX keeps a
        tagged key that already exists, so it is safe to run twice. Returns the counts
        ``renamed``, ``kept`` (a tagged key was already there) and ``left``.
        """
        if self.cluster:
            raise ValueError("the untagged layout never ran on a Redis Cluster: migrate on the standalone Redis")
        from stream.engine.joins import JoinRecord
        from stream.engine.markers import decode_marker

        def run():
            prefix = self.keys.prefix
            old = [k.decode() for k in self._r.scan_iter(f"{prefix}*", count=5000)]
            of_user: dict[tuple[str, str], int] = {}
            for key in old:
                kind, _, rest = key[len(prefix):].partition(":")
                fn, _, p = rest.rpartition(":")
                if kind == "users" and p.isdigit():
                    of_user.update({(fn, m.decode()): int(p) for m in self._r.smembers(key)})
            user_partition = {u: p for (_, u), p in of_user.items()}
            of_request: dict[str, int] = {}
            for key in old:
                kind, _, rid = key[len(prefix):].partition(":")
                if kind == "applied" and (blob := self._r.get(key)) is not None:
                    of_request[rid] = decode_marker(blob).source[1]  # the marker's (topic, partition, offset)
                elif kind == "decision" and (blob := self._r.get(key)) is not None:
                    p = user_partition.get(JoinRecord.unpack(blob).head.user_id)
                    if p is not None:
                        of_request.setdefault(rid, p)
            counts = {"renamed": 0, "kept": 0, "left": 0}
            for key in old:
                new = self.keys.untagged_to_tagged(key, of_user, of_request)
                if new is None:
                    counts["left"] += key.startswith(tuple(f"{prefix}{k}:" for k in _UNTAGGED_KINDS))
                elif self._r.renamenx(key, new):
                    counts["renamed"] += 1
                else:
                    counts["kept"] += 1
            return counts

        return self._call(run)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._r.close()


_UNTAGGED_KINDS = ("user", "users", "pop", "epoch", "decision", "applied", "registry")
"""Key kinds whose names gained a hash tag (the old layout's names start with these)."""


def _partitions_written(batch: BatchWrite) -> set[int]:
    return ({p for _, p in batch.users.values()} | {p for _, p in batch.applied.values()}
            | {p for _, p in batch.population} | {p for _, p in batch.decisions.values()}
            | {p for p, _ in batch.held} | {p for p, _ in batch.released} | {p for p, _ in batch.pending}
            | {p for p, _ in batch.leased} | {p for p, _ in batch.rewarded} | set(batch.selection)
            | {p for p, _ in batch.reward_sums} | {p for p, _ in batch.sums_closed} | {p for p, _ in batch.outboxes})


def redis_client(settings: Settings, **kwargs) -> redis.Redis | redis.RedisCluster:
    """A raw client of the deployment's Redis, authenticated like the store's (benchmarks, tests)."""
    return connect(settings.redis_url, **settings.redis_options(), **kwargs)


def open_registry(settings: Settings) -> Registry:
    """The one way to get the deployment's feature-net registry from settings."""
    return RedisStore.from_settings(settings).registry(settings.model_dir)
