"""State in dicts: the engine without Redis, for its unit tests and the engine-only benchmark.

:class:`MemoryState` reads like :class:`stream.store.RedisStore` (the
:class:`~stream.engine.state.StateReader` protocol) and applies a
:class:`~stream.engine.state.BatchWrite` the way the store's commit script does, all at
once. It keeps no TTLs and no partitions: the integration tests run the engine against
Redis for those.
"""

from __future__ import annotations

from collections import Counter

from stream.engine.state import BatchWrite, DecisionsExist

__all__ = ["MemoryState"]


class MemoryState:
    """Users, decisions, markers and their outboxes, population statistics, held feedback and reward
    deadlines, in dicts."""

    def __init__(self) -> None:
        self.users: dict[tuple[str, str], bytes] = {}
        self.decisions: dict[str, bytes] = {}
        self.applied: dict[str, bytes] = {}
        self.outboxes: dict[tuple[int, str], bytes] = {}
        self.population: dict[tuple[str, int], bytes] = {}
        self.held: dict[tuple[int, str], bytes] = {}
        self.pending: dict[tuple[int, str], float] = {}
        self.counts: Counter[str] = Counter()

    def load_users(self, fn, users):
        return {u: self.users[(fn, u)] for u in users if (fn, u) in self.users}

    def load_decisions(self, requests):
        return {r: self.decisions[r] for r in requests if r in self.decisions}

    def load_applied(self, requests):
        return {r: self.applied[r] for r in requests if r in self.applied}

    def load_together(self, fn, users, decisions, applied):
        # Each part through its own method, so that a test's counting subclass sees it.
        return (self.load_users(fn, users) if users else {}, self.load_decisions(decisions) if decisions else {},
                self.load_applied(applied) if applied else {})

    def load_outboxes(self, refs):
        return {k: self.outboxes[k] for k in refs if k in self.outboxes}

    def load_population(self, fn, partition):
        return self.population.get((fn, partition))

    def load_held(self, wanted):
        return {k: self.held[k] for k in wanted if k in self.held}

    def held_count(self, partition):
        return sum(1 for p, _ in self.held if p == partition)

    def commit(self, w: BatchWrite) -> None:
        if w.expect_new:
            found = [r for r in w.decisions if r in self.decisions or r in self.applied]
            if found:
                raise DecisionsExist(found)
        for (fn, u), (state, _) in w.users.items():
            self.users[(fn, u)] = state
        self.decisions.update({r: record for r, (record, _) in w.decisions.items()})
        self.applied.update({r: marker for r, (marker, _) in w.applied.items()})
        self.outboxes.update(w.outboxes)
        self.population.update(w.population)
        self.held.update({k: blob for k, (blob, _) in w.held.items()})
        for k in w.released:
            self.held.pop(k, None)
        self.pending.update(w.pending)
        self.pending.update({k: v for k, v in w.leased.items() if k in self.pending})
        for k in w.rewarded:
            self.pending.pop(k, None)
        self.counts.update(w.counts)
