"""A batch's point reads in one round trip (``stream/engine/prefetch.py``): users not in memory, the
queries' stored decisions, the feedback's join records and markers, read together when the batch
starts. Each read is a Redis round trip on the batch's critical path in the worker; these tests
count them, and check that a read the prefetch did not cover still reaches the store."""

from __future__ import annotations

import pytest

from stream.engine.memory import MemoryState
from stream.engine.prefetch import Prefetched
from tests.unit.test_engine import Log, engine, feedback, model, outputs, query, run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit


class RoundTrips(MemoryState):
    """MemoryState that counts its point reads as the Redis store would make them: one per call."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self._inner = False

    def _count(self, what: str) -> None:
        if not self._inner:
            self.reads.append(what)

    def load_together(self, fn, users, decisions, applied):
        self._count("together")
        self._inner = True
        try:
            return super().load_together(fn, users, decisions, applied)
        finally:
            self._inner = False

    def load_users(self, fn, users):
        self._count("users")
        return super().load_users(fn, users)

    def load_decisions(self, requests):
        self._count("decisions")
        return super().load_decisions(requests)

    def load_applied(self, requests):
        self._count("applied")
        return super().load_applied(requests)


def test_a_batch_of_queries_and_feedback_reads_the_store_once(engine):
    state, log = RoundTrips(), Log()
    first = run(engine, state, [log.rec(query("r1", user="u1")), log.rec(query("r2", user="u2"))])
    chosen = {d["request_id"]: d["candidates"][d["chosen_index"]]["id"] for d in outputs(first, "decisions")}
    engine.forget()  # a cold cache: the users must be read too
    state.reads.clear()
    batch = run(engine, state, [log.rec(query("r3", user="u1")), log.rec(feedback("r1", chosen["r1"], user="u1")),
                                log.rec(query("r4", user="u3")), log.rec(feedback("r2", chosen["r2"], user="u2"))])
    assert state.reads == ["together"]
    assert batch.counts["feedback_applied"] == 2 and len(outputs(batch, "decisions")) == 2


def test_users_in_memory_and_an_optimistic_batch_read_nothing(engine):
    state, log = RoundTrips(), Log()
    engine.held_counts({0: 0})
    run(engine, state, [log.rec(query("r1"))])
    state.reads.clear()
    batch = engine.process([log.rec(query("r2"))], state, optimistic=True)
    assert state.reads == [] and batch.write.expect_new


def test_a_read_the_prefetch_did_not_cover_reaches_the_store():
    store = RoundTrips()
    store.decisions.update({"r1": b"one", "r2": b"two"})
    view = Prefetched.read(store, "fn", users={}, decisions={"r1": 0}, applied={})
    assert view.load_decisions({"r1": 0}) == {"r1": b"one"} and store.reads == ["together"]
    assert view.load_decisions({"r1": 0, "r2": 0}) == {"r1": b"one", "r2": b"two"}
    assert store.reads == ["together", "decisions"]


def test_a_key_prefetched_under_another_partition_is_read_again():
    """The store's keys carry the partition; an answer for partition 0 is not one for partition 1."""
    store = RoundTrips()
    view = Prefetched.read(store, "fn", users={"u1": 0}, decisions={}, applied={"r1": 0})
    store.users[("fn", "u1")] = b"state"
    store.applied["r1"] = b"marker"
    assert view.load_users("fn", {"u1": 0}) == {} and view.load_applied({"r1": 0}) == {}
    assert view.load_users("fn", {"u1": 1}) == {"u1": b"state"}
    assert view.load_applied({"r1": 1}) == {"r1": b"marker"}
    assert view.load_users("other-fn", {"u1": 0}) == {}  # another feature net: not prefetched, read
    assert store.reads == ["together", "users", "applied", "users"]
