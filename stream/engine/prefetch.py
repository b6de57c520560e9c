"""A batch's point reads in one round trip: users, join records and applied-markers read together
when the batch starts, instead of one read per stage.

A batch with queries and feedback read the store up to four times before its commit: the
queries' stored decisions, their users' models on a cache miss, the feedback's join records
and their applied-markers. Each is a Redis round trip (a few hundred microseconds of the
worker's Python and a wait on Redis), on the batch's critical path. Which keys the batch
needs is known once it is decoded, so :meth:`Engine.process` asks for them at once
(:meth:`StateReader.load_together`) and reads through this view: a read the prefetch
covered is answered from it, anything else (held feedback's join records, a user of an
older feature net, a re-emitted batch's markers) goes to the store as before. Nothing is
written between the prefetch and the reads (a batch's writes are its commit), so the
answers are the ones the separate reads would have given.

>>> from stream.engine.memory import MemoryState
>>> store = MemoryState()
>>> store.decisions["r1"] = b"join"
>>> view = Prefetched.read(store, "fn", users={"u1": 0}, decisions={"r1": 0, "r2": 0}, applied={})
>>> view.load_decisions({"r1": 0}), view.load_users("fn", {"u1": 0})
({'r1': b'join'}, {})
>>> store.decisions["r3"] = b"later"   # not prefetched: read through
>>> view.load_decisions({"r2": 0, "r3": 0})
{'r3': b'later'}
"""

from __future__ import annotations

from typing import Callable, Mapping

from stream.engine.state import StateReader

__all__ = ["Prefetched"]


class _Known:
    """The keys a prefetch asked for and the values it found."""

    __slots__ = ("asked", "found")

    def __init__(self, asked: Mapping, found: dict) -> None:
        self.asked = asked
        self.found = found

    def answer(self, wanted: Mapping, read: Callable[[dict], dict]) -> dict:
        """``wanted`` (``{id: partition}``) from the prefetch where it asked for the same key, the rest read."""
        asked = self.asked
        rest = {k: p for k, p in wanted.items() if asked.get(k) != p}
        out = {k: self.found[k] for k, p in wanted.items() if k in self.found and asked[k] == p}
        if rest:
            out.update(read(rest))
        return out


class Prefetched:
    """A :class:`StateReader` over ``state`` that answers the reads one bulk read covered."""

    def __init__(self, state: StateReader, fn: str, users: _Known, decisions: _Known, applied: _Known) -> None:
        self._state = state
        self._fn = fn
        self._users = users
        self._decisions = decisions
        self._applied = applied

    @classmethod
    def read(cls, state: StateReader, fn: str, *, users: Mapping[str, int], decisions: Mapping[str, int],
             applied: Mapping[str, int]) -> Prefetched:
        """One bulk read of ``users`` (of feature net ``fn``), ``decisions`` and ``applied`` (each
        ``{id: partition}``)."""
        got_users, got_decisions, got_applied = state.load_together(fn, users, decisions, applied)
        return cls(state, fn, _Known(users, got_users), _Known(decisions, got_decisions),
                   _Known(applied, got_applied))

    def load_users(self, fn, users):
        if fn != self._fn:
            return self._state.load_users(fn, users)
        return self._users.answer(users, lambda rest: self._state.load_users(fn, rest))

    def load_decisions(self, requests):
        return self._decisions.answer(requests, self._state.load_decisions)

    def load_applied(self, requests):
        return self._applied.answer(requests, self._state.load_applied)

    def load_together(self, fn, users, decisions, applied):
        return self._state.load_together(fn, users, decisions, applied)

    def load_outboxes(self, refs):
        return self._state.load_outboxes(refs)

    def load_population(self, fn, partition):
        return self._state.load_population(fn, partition)

    def load_held(self, wanted):
        return self._state.load_held(wanted)

    def held_count(self, partition):
        return self._state.held_count(partition)

    def load_selection(self, partition):
        return self._state.load_selection(partition)

    def load_reward_sums(self, wanted):
        return self._state.load_reward_sums(wanted)
