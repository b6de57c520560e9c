"""The join records of this engine's own recent decisions, so that their feedback joins without a read.

Feedback usually comes soon after its query, to the worker that decided it (both are keyed
by user). Reading the decision's join record and applied-marker back from Redis costs the
feedback's batch a round trip. This worker wrote both keys' state itself, so it can answer
from memory when it knows what Redis holds:

* the decision was new when committed: its batch was optimistic, and the commit script
  refused to write if the decision *or an applied-marker* of the request existed already
  (``BatchWrite.expect_new``), so no marker predates it;
* since then, only this partition's owner writes the request's marker, and this engine
  drops the entry when a batch of its own applies feedback for it (:meth:`applied`), so an
  entry that is still here means "no marker";
* a rebalance, a fence or an outage drops every entry (:meth:`clear`, by ``Engine.forget``);
* an entry answers only while younger than the join window; Redis keeps the decision for
  twice that, and an older decision is read from Redis as before. Age is by the engine's
  clock (wall time, like held feedback's deadlines): a clock stepped back by more than the
  join window would keep entries answering past it.

So every answer is the one the two reads would have given. Memory is bounded in bytes; the
oldest entries go first.

>>> fresh = FreshDecisions(max_bytes=10, max_age_s=60.0)
>>> fresh.add("r1", b"join", partition=0, t=0.0)
>>> fresh.get("r1", partition=0, now=30.0), fresh.get("r1", partition=1, now=30.0)
(b'join', None)
>>> fresh.get("r1", partition=0, now=60.0)  # as old as the join window: read from the store
>>> fresh.applied(["r1"]); fresh.get("r1", partition=0, now=1.0)
>>> fresh.add("r2", b"12345678", partition=0, t=1.0); fresh.add("r3", b"1234", partition=0, t=2.0)
>>> len(fresh), fresh.nbytes  # r2 went: over 10 bytes
(1, 4)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

__all__ = ["FreshDecisions"]


class FreshDecisions:
    """Join records of decisions this engine committed as new, oldest first, at most ``max_bytes`` of
    them (0: none kept), each answering for ``max_age_s`` (the join window)."""

    __slots__ = ("max_bytes", "max_age_s", "nbytes", "lookups", "hits", "_entries")

    def __init__(self, *, max_bytes: int, max_age_s: float) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.nbytes = 0
        self.lookups = 0  # feedback looked up, and answered from here (eddy_join_memory_*)
        self.hits = 0
        self._entries: OrderedDict[str, tuple[bytes, int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, slot: str, record: bytes, *, partition: int, t: float) -> None:
        """``slot``'s join record, committed as new in ``partition`` by a batch that started at ``t``."""
        if len(record) > self.max_bytes:
            return
        old = self._entries.pop(slot, None)
        if old is not None:
            self.nbytes -= len(old[0])
        self._entries[slot] = (record, partition, t)
        self.nbytes += len(record)
        while self.nbytes > self.max_bytes:
            self.nbytes -= len(self._entries.popitem(last=False)[1][0])

    def get(self, slot: str, *, partition: int, now: float) -> bytes | None:
        """The join record, if this engine holds it for ``partition`` and it is younger than the join
        window: then the store holds the same record and no applied-marker for it."""
        self.lookups += 1
        entry = self._entries.get(slot)
        if entry is None or entry[1] != partition or now - entry[2] >= self.max_age_s:
            return None
        self.hits += 1
        return entry[0]

    def applied(self, slots: Iterable[str]) -> None:
        """A committed batch wrote applied-markers for ``slots``: the store must be asked from now on."""
        for slot in slots:
            entry = self._entries.pop(slot, None)
            if entry is not None:
                self.nbytes -= len(entry[0])

    def expire(self, now: float) -> None:
        """Drop the entries past the join window (they answer nothing any more)."""
        entries = self._entries
        while entries:
            record, _, t = next(iter(entries.values()))
            if now - t < self.max_age_s:
                break
            entries.popitem(last=False)
            self.nbytes -= len(record)

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
