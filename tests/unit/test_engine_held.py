"""Early feedback: held in state until the batch that decides its request applies it, exactly once
(re-reading either record re-emits, never re-learns), bounded per partition, and left to the sweep
once its deadline has passed."""

from __future__ import annotations

import msgspec
import pytest

from bandits import make_policy
from stream.engine import Engine, InRecord
from stream.engine.batch import Held, decode_held

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, reconciles, run  # noqa: F401 (model: a fixture)

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(model, clock) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                  seed=7, held_max=2, clock=clock)


def test_early_feedback_is_held_then_applied_by_the_batch_that_decides(engine):
    state, log = MemoryState(), Log()
    early = run(engine, state, [log.rec(feedback("r1", "i2"))])
    assert early.counts["feedback_held"] == 1 and not early.outputs.dead and not early.outputs.records
    assert decode_held(state.held[(0, "r1")]).deadline == T0 + 60.0
    decided = run(engine, state, [log.rec(query("r1"))])
    assert decided.counts["held_applied"] == 1 and not decided.outputs.dead
    (outcome,) = outputs(decided, "outcomes")
    assert outcome["item_id"] == "i2" and outcome["decision"]["request_id"] == "r1"
    assert not state.held and (engine.model.version, "u1") in state.users
    assert reconciles(state.counts)


def test_a_reread_query_batch_re_emits_the_held_feedback_outputs_and_learns_nothing(engine):
    state, log = MemoryState(), Log()
    fb = log.rec(feedback("r1", "i2"))
    run(engine, state, [fb])
    q = log.rec(query("r1"))
    first = run(engine, state, [q])
    users = dict(state.users)
    again = run(engine, state, [q])  # its Kafka transaction aborted: the query is read again
    assert again.outputs.records == first.outputs.records and again.counts["held_applied"] == 0
    assert again.counts["held_redelivered"] == 1 and not again.write.users and state.users == users
    # The held record itself read again (its own span aborted too) emits nothing: the query's batch owns it.
    fb_again = run(engine, state, [fb])
    assert fb_again.counts["feedback_redelivered"] == 1 and not fb_again.outputs.records
    assert not fb_again.outputs.dead and not fb_again.write.users


def test_a_reread_held_record_stays_held_once_and_another_record_is_a_duplicate(engine):
    state, log = MemoryState(), Log()
    fb = log.rec(feedback("r1", "i2"))
    run(engine, state, [fb])
    again = run(engine, state, [fb])
    assert again.counts["feedback_held_redelivered"] == 1 and again.counts["feedback_held"] == 0
    other = run(engine, state, [log.rec(feedback("r1", "i3"))])
    assert [d.reason for d in other.outputs.dead] == ["duplicate_feedback"]
    assert len(state.held) == 1 and reconciles(state.counts)


def test_holding_is_bounded_per_partition(engine):
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(feedback(f"r{i}", "i1")) for i in range(3)]
                + [log.rec(feedback("r9", "i1"), partition=1)])
    assert batch.counts["feedback_held"] == 3  # two on partition 0 (held_max=2), one on partition 1
    assert [d.reason for d in batch.outputs.dead] == ["unknown_request"]
    assert "already holds 2" in batch.outputs.dead[0].detail


def test_held_feedback_past_its_deadline_is_not_applied(engine, clock):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2"))])
    clock.now = T0 + 60.0
    batch = run(engine, state, [log.rec(query("r1"))])
    assert batch.counts["held_applied"] == 0 and not outputs(batch, "outcomes")
    assert (0, "r1") in state.held  # the sweep dead-letters it


def test_held_feedback_for_another_user_is_a_dead_letter_counted_apart(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2", user="u2"), partition=0)])
    batch = run(engine, state, [log.rec(query("r1", user="u1"))])
    assert [d.reason for d in batch.outputs.dead] == ["user_mismatch"]
    assert batch.counts["held_dead_lettered"] == 1 and batch.counts["dead_lettered"] == 0
    assert not state.held and reconciles(state.counts)


class CountingState(MemoryState):
    """Counts the held lookups (one store round trip each)."""

    def __init__(self) -> None:
        super().__init__()
        self.held_lookups = 0

    def load_held(self, wanted):
        self.held_lookups += 1
        return super().load_held(wanted)


def test_a_partition_read_empty_skips_the_held_lookup_until_a_batch_holds_feedback_there(engine):
    state, log = CountingState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    assert state.held_lookups == 1  # nothing known: every query batch looks
    engine.held_counts({0: 0, 1: 3})  # the sweep read partition 0 empty, 1 not
    run(engine, state, [log.rec(query("r2"))])
    assert state.held_lookups == 1
    run(engine, state, [log.rec(query("r3"), partition=1)])
    assert state.held_lookups == 2  # partition 1 holds some: look

    # Feedback held on partition 0 by this engine's batch: its query must find it.
    run(engine, state, [log.rec(feedback("r4", "i2"))])
    before = state.held_lookups
    decided = run(engine, state, [log.rec(query("r4"))])
    assert decided.counts["held_applied"] == 1 and state.held_lookups == before + 1 and not state.held


def test_what_is_known_about_held_feedback_is_forgotten_with_the_partitions(engine, model, clock):
    state, log = CountingState(), Log()
    engine.held_counts({0: 0})
    engine.forget()  # revoked: partition 0 moves to another worker, which holds early feedback there
    other = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                   seed=7, held_max=2, clock=clock)
    run(other, state, [log.rec(feedback("r1", "i2"))])
    before = state.held_lookups
    decided = run(engine, state, [log.rec(query("r1"))])  # partition 0 back: its query finds the held feedback
    assert state.held_lookups == before + 1 and decided.counts["held_applied"] == 1


def test_a_held_record_read_again_keeps_its_key(engine):
    """``Held.record`` and ``_hold`` (mutmut: the re-read record's kind or key lost, ``Held(..., None, ...)``):
    a held feedback that is dead-lettered when its request is decided goes to the dead-letter topic as the
    very record consumed, key included (the worker keys the dead letter by it)."""
    state, log = MemoryState(), Log()
    early = log.rec(feedback("r1", "i2", user="u2"))
    run(engine, state, [early])
    batch = run(engine, state, [log.rec(query("r1", user="u1"))])
    (dead,) = batch.outputs.dead
    assert dead.reason == "user_mismatch" and dead.record == early and dead.record.key == b"u2"
    assert dead.value == early.value


def test_a_held_record_that_no_longer_decodes_is_a_dead_letter_with_its_bytes_counted_apart(engine):
    """``_release_held``: a held value a newer decoder refuses is released and dead-lettered as the record it
    was (its key and bytes), counted with the held records, not consumed twice."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2"))])
    held = decode_held(state.held[(0, "r1")])
    state.held[(0, "r1")] = msgspec.msgpack.encode(Held(held.source, b"k1", b"{not json", held.deadline))
    batch = run(engine, state, [log.rec(query("r1"))])
    (dead,) = batch.outputs.dead
    assert dead.record == InRecord("feedback", "eddy.feedback", 0, 0, b"k1", b"{not json")
    assert dead.reason == "undecodable" and dead.detail.startswith("EventError: ")
    assert batch.counts["held_dead_lettered"] == 1 and batch.counts["held_dead_lettered.undecodable"] == 1
    assert batch.counts["dead_lettered"] == 0 and not state.held and reconciles(state.counts)


def test_the_dead_letters_of_unheld_feedback_name_the_request_and_why(engine):
    """``_hold``'s texts (mutmut: the details' words): a second record for a held request, held before or in
    this batch, names the record already held; a partition at its limit names the request, the partition
    and the limit."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2"))])
    batch = run(engine, state, [log.rec(feedback("r1", "i3")), log.rec(feedback("r2", "i1")),
                                log.rec(feedback("r2", "i4")), log.rec(feedback("r3", "i1"))])
    assert [(d.reason, d.detail) for d in batch.outputs.dead] == [
        ("duplicate_feedback", "request 'r1' already has feedback held from ['eddy.feedback', 0, 0]"),
        ("duplicate_feedback", "request 'r2' already has feedback held from ['eddy.feedback', 0, 2]"),
        ("unknown_request", "no decision for request 'r3', and partition 0 already holds 2 early feedbacks")]
    assert [d.record.offset for d in batch.outputs.dead] == [1, 3, 4]
    assert batch.counts["feedback_held"] == 1 and decode_held(state.held[(0, "r2")]).source == ("eddy.feedback", 0, 2)


def test_each_held_record_read_again_is_counted(engine):
    """``feedback_held_redelivered += 1`` (mutmut: ``= 1``): two held records read again in one batch are two
    records consumed, so the counts reconcile."""
    state, log = MemoryState(), Log()
    held = [log.rec(feedback("r1", "i2")), log.rec(feedback("r2", "i2"))]
    run(engine, state, held)
    again = run(engine, state, held)
    assert again.counts["feedback_held_redelivered"] == 2 and reconciles(state.counts)
