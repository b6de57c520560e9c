"""What the engine reads from and writes to durable state, with no I/O of its own.

The engine reads through a :class:`StateReader` (the Redis store implements
it; unit tests use a dict) and returns everything a batch changes as one
:class:`BatchWrite`, which the store commits in one atomic write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol


class StateReader(Protocol):
    """Bulk reads the engine needs; missing keys are absent from the returned dicts.

    Every read names the partition of the record it is for (``{id: partition}``):
    a partition's state lives together (one Redis Cluster slot, ``stream/keys.py``).
    """

    def load_users(self, fn: str, users: Mapping[str, int]) -> dict[str, bytes]: ...

    def load_decisions(self, requests: Mapping[str, int]) -> dict[str, bytes]: ...

    def load_applied(self, requests: Mapping[str, int]) -> dict[str, bytes]: ...

    def load_together(self, fn: str, users: Mapping[str, int], decisions: Mapping[str, int],
                      applied: Mapping[str, int]) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]]:
        """``load_users(fn, users)``, ``load_decisions(decisions)`` and ``load_applied(applied)`` in one
        round trip (``stream/engine/prefetch.py``)."""

    def load_outboxes(self, refs: list[tuple[int, str]]) -> dict[tuple[int, str], bytes]: ...  # (partition, id)

    def load_population(self, fn: str, partition: int) -> bytes | None: ...

    def load_held(self, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], bytes]: ...  # (partition, request)

    def held_count(self, partition: int) -> int: ...

    def load_selection(self, partition: int) -> bytes | None: ...  # model selection's state (selection.py)
    def load_reward_sums(self, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], dict[str, bytes]]: ...


class DecisionsExist(Exception):
    """An optimistic batch's commit found decisions of its requests already stored; it wrote nothing.

    ``requests``: those found (slot keys). The batch is processed again with the check."""

    def __init__(self, requests: list[str]):
        super().__init__(f"{len(requests)} request(s) already decided, e.g. {requests[0]!r}" if requests
                         else "requests already decided")
        self.requests = requests


@dataclass
class BatchWrite:
    """Everything one batch changes, committed atomically (:meth:`stream.store.RedisStore.commit`)."""

    decision_ttl_s: float = 1200.0
    users: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)  # (fn, user) -> (state, partition)
    applied: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # request id -> (marker, partition)
    outboxes: dict[tuple[int, str], bytes] = field(default_factory=dict)  # (partition, id) -> the markers' outputs
    population: dict[tuple[str, int], bytes] = field(default_factory=dict)  # (fn, partition) -> stats
    decisions: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # request id -> (join record, partition)
    policy: tuple[str, bytes] | None = None  # (policy name, snapshot)
    counts: dict[str, int] = field(default_factory=dict)  # the batch's counters, durable with its state
    held: dict[tuple[int, str], tuple[bytes, float]] = field(default_factory=dict)  # (partition, request) -> (early feedback, deadline)
    released: set[tuple[int, str]] = field(default_factory=set)  # held feedback applied (or dropped) by this batch
    pending: dict[tuple[int, str], float] = field(default_factory=dict)  # (partition, request) -> reward deadline
    rewarded: set[tuple[int, str]] = field(default_factory=set)  # requests whose reward this batch applied
    leased: dict[tuple[int, str], float] = field(default_factory=dict)  # pending entries re-scored (if still there)
    selection: dict[int, bytes] = field(default_factory=dict)  # partition -> model selection's state
    reward_sums: dict[tuple[int, str], dict[str, bytes]] = field(default_factory=dict)  # rewards added (sum)
    sums_closed: set[tuple[int, str]] = field(default_factory=set)  # accumulators applied: deleted after the adds
    expect_new: bool = False
    """The batch decided without reading for stored decisions (``Engine.process(optimistic=True)``): the
    commit writes nothing and raises :class:`DecisionsExist` if any of ``decisions``, or an applied-marker of
    one of them, is stored already."""

    def __bool__(self) -> bool:
        return bool(self.users or self.applied or self.outboxes or self.population or self.decisions or self.policy
                    or self.counts or self.held or self.released or self.pending or self.rewarded or self.leased
                    or self.selection or self.reward_sums or self.sums_closed)
