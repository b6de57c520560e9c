"""Reward wait time and default reward in the engine: a decision waits for its reward; the default
reward (a feedback event Eddy emits when the wait ends) is applied once, marked ``default``; a real
reward after the wait is late; a default after a real reward, or emitted twice, changes nothing."""

from __future__ import annotations

import msgspec

import pytest

from bandits import make_policy
from stream.engine import Engine

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, reconciles, run  # noqa: F401

pytestmark = pytest.mark.unit

WAIT = 10.0


@pytest.fixture
def engine(model) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                  seed=7, reward_wait_s=WAIT, clock=lambda: T0)


def default(rid: str, item: str = "i1", user: str = "u1"):
    return msgspec.structs.replace(feedback(rid, item, user=user, reward=0.0, ts=T0 + WAIT), default=True)


def test_a_decision_waits_for_its_reward_until_the_deadline(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1", ts=T0 - 3))])
    assert state.pending == {(0, "r1"): T0 - 3 + WAIT}


def test_a_default_reward_is_applied_once_marked_default_and_a_later_real_reward_is_late(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    d = log.rec(default("r1"))
    first = run(engine, state, [d])
    (outcome,) = outputs(first, "outcomes")
    assert outcome["default"] is True and outcome["reward"] == 0.0
    assert first.counts["default_rewards"] == 1 and not state.pending
    again = run(engine, state, [d])  # its span aborted: re-read, re-emitted, not learned
    assert again.outputs.records == first.outputs.records and not again.write.users
    late = run(engine, state, [log.rec(feedback("r1", "i2", ts=T0 + 2))])  # in time, but after the default
    assert [d.reason for d in late.outputs.dead] == ["late_feedback"] and not late.write.users
    assert reconciles(state.counts)


def test_a_real_reward_in_time_wins_and_its_default_changes_nothing(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    real = run(engine, state, [log.rec(feedback("r1", "i2", ts=T0 + WAIT))])
    assert "default" not in outputs(real, "outcomes")[0] and not state.pending
    for _ in range(2):  # emitted before the timer saw the reward, or twice (a lost lease)
        d = run(engine, state, [log.rec(default("r1"))])
        assert d.counts["default_reward_superseded"] == 1 and not d.outputs.dead and not d.outputs.records
    assert reconciles(state.counts)


def test_a_real_reward_after_the_wait_is_late_even_before_the_default_lands(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    late = run(engine, state, [log.rec(feedback("r1", "i2", ts=T0 + WAIT + 0.5))])
    assert [d.reason for d in late.outputs.dead] == ["late_feedback"] and "reward wait" in late.outputs.dead[0].detail
    assert (0, "r1") in state.pending
    assert run(engine, state, [log.rec(default("r1"))]).counts["default_rewards"] == 1


def test_early_feedback_held_then_applied_ends_the_wait(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2"))])
    batch = run(engine, state, [log.rec(query("r1"))])
    assert batch.counts["held_applied"] == 1 and not state.pending


def test_a_default_reward_for_an_unknown_request_is_not_held(engine):
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(default("gone"))])
    assert [d.reason for d in batch.outputs.dead] == ["unknown_request"] and not state.held
