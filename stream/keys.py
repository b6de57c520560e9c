"""Every Redis key Eddy uses, named in one place (the store and the registry build keys only here).

Keys of one partition share the hash tag ``{p<partition>}``, so Redis Cluster
puts them all in one slot and a batch's commit script on that partition
never crosses slots. The registry's keys share the tag ``{registry}`` (its
promotion is a MULTI over two of them). Every other key is global and only ever
used by a single-key command, so its slot does not matter: the policy snapshot,
the stats hashes. Apprentice mode's two keys share the tag ``{apprentice}``. The learner role's
snapshot and its fencing epoch share the tag ``{learner}`` (one atomic write checks the epoch and
writes the snapshot). Every key still starts with the deployment's prefix, so a
SCAN of ``<prefix>*`` finds them all. docs/design.md ("Redis Cluster") gives
the argument and what an upgrade from the untagged layout means.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Every key name, in one place."""

    prefix: str

    def _k(self, *parts: object) -> str:
        return self.prefix + ":".join(map(str, parts))

    def _in(self, partition: int, *parts: object) -> str:
        """A key in ``partition``'s slot."""
        return f"{self.prefix}{{p{int(partition)}}}:{':'.join(map(str, parts))}"

    # The four keys of every query and feedback are spelled out: a quarter of ``_in``'s cost.
    def user(self, fn: str, user: str, partition: int) -> str:
        return f"{self.prefix}{{p{int(partition)}}}:user:{fn}:{user}"

    def users(self, fn: str, partition: int) -> str:
        return f"{self.prefix}{{p{int(partition)}}}:users:{fn}"

    def decision(self, request_id: str, partition: int) -> str:
        return f"{self.prefix}{{p{int(partition)}}}:decision:{request_id}"

    def applied(self, request_id: str, partition: int) -> str:
        return f"{self.prefix}{{p{int(partition)}}}:applied:{request_id}"

    def outbox(self, outbox_id: str, partition: int) -> str:
        """The outputs of one batch's applied feedback in ``partition``, until their Kafka commit (markers.py)."""
        return self._in(partition, "outbox", outbox_id)

    def held(self, partition: int) -> str:
        return self._in(partition, "held")

    def held_due(self, partition: int) -> str:
        return self._in(partition, "helddue")

    def pending(self, partition: int) -> str:
        return self._in(partition, "pending")

    def reward_sum(self, request_id: str, partition: int) -> str:
        """``reward_aggregation=sum``: the rewards received for a request so far (one field per source record)."""
        return self._in(partition, "rsum", request_id)

    def population(self, fn: str, partition: int) -> str:
        return self._in(partition, "pop", fn)

    def selection(self, partition: int) -> str:
        return self._in(partition, "select")

    def epoch(self, group: str, partition: int) -> str:
        return self._in(partition, "epoch", group)

    def policy(self, group: str, name: str) -> str:
        return self._k("policy", group, name)

    def learner_snapshot(self, group: str, name: str) -> str:
        """The learner role's policy: one hash with the snapshot, its version and the input offsets it covers."""
        return self._k("{learner}", "policy", group, name)

    def learner_epoch(self, group: str, name: str) -> str:
        """Fences a learner that another learner of the same policy replaced (same slot as the snapshot)."""
        return self._k("{learner}", "epoch", group, name)

    def stats(self, group: str, instance: str) -> str:
        return self._k("stats", group, instance)

    def process_stats(self, group: str, instance: str) -> str:
        return self._k("procstats", group, instance)

    def registry(self, name: str) -> str:
        return self._k("{registry}", name)

    def apprentice(self, name: str) -> str:
        """Apprentice mode's switch (``state``) and its history (``history``), one slot: written in one MULTI."""
        return self._k("{apprentice}", name)

    def untagged_to_tagged(self, key: str, partition_of_user: dict[tuple[str, str], int],
                           partition_of_request: dict[str, int]) -> str | None:
        """The tagged name of ``key`` from the layout before hash tags, or None (already tagged, unchanged
        or not placeable: a user in no partition's member set, a request of unknown partition).

        Old names (all after the prefix): ``user:<fn>:<user>``, ``users:<fn>:<p>``, ``pop:<fn>:<p>``,
        ``epoch:<group>:<p>``, ``decision:<request>``, ``applied:<request>``, ``registry:<name>``.

        >>> k = Keys("eddy.")
        >>> k.untagged_to_tagged("eddy.users:v1:3", {}, {})
        'eddy.{p3}:users:v1'
        >>> k.untagged_to_tagged("eddy.user:v1:alice:x", {("v1", "alice:x"): 2}, {})
        'eddy.{p2}:user:v1:alice:x'
        >>> k.untagged_to_tagged("eddy.registry:live", {}, {}), k.untagged_to_tagged("eddy.{p1}:epoch:g", {}, {})
        ('eddy.{registry}:live', None)
        """
        if not key.startswith(self.prefix):
            return None
        kind, _, rest = key[len(self.prefix):].partition(":")
        if kind == "registry":
            return self.registry(rest)
        if kind in ("users", "pop", "epoch"):
            name, _, p = rest.rpartition(":")
            if not (name and p.isdigit()):
                return None
            return {"users": self.users, "pop": self.population, "epoch": self.epoch}[kind](name, int(p))
        if kind == "user":
            fn, _, user = rest.partition(":")
            p = partition_of_user.get((fn, user))
            return None if p is None else self.user(fn, user, p)
        if kind in ("decision", "applied"):
            p = partition_of_request.get(rest)
            return None if p is None else (self.decision if kind == "decision" else self.applied)(rest, p)
        return None
