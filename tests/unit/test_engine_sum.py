"""Reward aggregation ``sum`` in the engine: rewards within the wait are accumulated (idempotently per source
record) and applied once, summed, by the default event that ends the wait; a reward after it is late; with
no reward the default reward applies as under ``earliest``."""

from __future__ import annotations

import pytest

from bandits import make_policy
from stream.engine import Engine
from stream.config import ConfigError, from_env

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, reconciles, run  # noqa: F401
from .test_engine_rewards import WAIT, default

pytestmark = pytest.mark.unit


class SumState(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.sums: dict[tuple[int, str], dict[str, bytes]] = {}

    def load_reward_sums(self, wanted):
        return {k: dict(self.sums[k]) for k in wanted if k in self.sums}

    def commit(self, w) -> None:
        super().commit(w)
        for k, added in w.reward_sums.items():
            self.sums.setdefault(k, {}).update(added)
        for k in w.sums_closed:
            self.sums.pop(k, None)


@pytest.fixture
def engine(model) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                  seed=7, reward_wait_s=WAIT, reward_aggregation="sum", clock=lambda: T0)


def test_three_rewards_are_summed_and_applied_once_when_the_wait_ends(engine):
    state, log = SumState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    rewards = [log.rec(feedback("r1", "i2", reward=r, ts=T0 + 1 + i)) for i, r in enumerate((1.0, 0.5, 2.0))]
    first = run(engine, state, rewards[:2])
    assert first.counts["feedback_summed"] == 2 and not first.outputs.records and not first.write.users
    again = run(engine, state, rewards[:2])  # the same records read again add nothing
    assert again.counts["feedback_redelivered"] == 2 and len(state.sums[(0, "r1")]) == 2
    run(engine, state, [rewards[2]])
    closed = run(engine, state, [log.rec(default("r1"))])
    (outcome,) = outputs(closed, "outcomes")
    assert outcome["reward"] == 3.5 and outcome["item_id"] == "i2" and "default" not in outcome
    assert closed.counts["reward_sums_applied"] == 1 and not state.sums and not state.pending
    (user,) = closed.write.users.values()
    assert closed.counts["feedback_applied"] == 1
    late = run(engine, state, [log.rec(feedback("r1", "i2", ts=T0 + 2))])  # in time by its ts, after the close
    assert [d.reason for d in late.outputs.dead] == ["late_feedback"]
    reread = run(engine, state, rewards)  # the summed records read once more: redelivered, no outputs
    assert reread.counts["feedback_redelivered"] == 3 and not reread.outputs.records and not reread.outputs.dead
    assert reconciles(state.counts)


def test_a_reward_and_the_close_in_one_batch_are_summed_and_a_second_close_is_superseded(engine):
    state, log = SumState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    batch = run(engine, state, [log.rec(feedback("r1", "i3", reward=2.0)), log.rec(default("r1"))])
    assert [o["reward"] for o in outputs(batch, "outcomes")] == [2.0]
    twice = run(engine, state, [log.rec(default("r1"))])
    assert twice.counts["default_reward_superseded"] == 1 and not twice.outputs.records


def test_with_no_reward_the_default_reward_applies_and_another_item_is_refused(engine):
    state, log = SumState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    other = run(engine, state, [log.rec(feedback("r2", "i1")), log.rec(feedback("r2", "i4"))])
    assert [d.reason for d in other.outputs.dead] == ["duplicate_feedback"]
    (outcome,) = outputs(run(engine, state, [log.rec(default("r1"))]), "outcomes")
    assert outcome["default"] is True and outcome["reward"] == 0.0


def test_sum_needs_a_reward_wait():
    with pytest.raises(ConfigError, match="^EDDY_REWARD_AGGREGATION=sum needs reward_wait_s > 0"):
        from_env({"EDDY_REWARD_AGGREGATION": "sum"})
    with pytest.raises(ConfigError, match="reward_aggregation must be earliest or sum"):
        from_env({}, reward_aggregation="max")
    assert from_env({}, reward_aggregation="sum", reward_wait_s=5.0).reward_aggregation == "sum"


def test_early_feedback_held_then_released_joins_the_sum(engine):
    state, log = SumState(), Log()
    early = log.rec(feedback("r1", "i1", reward=1.5))
    held = run(engine, state, [early])
    assert held.counts["feedback_held"] == 1
    released = run(engine, state, [log.rec(query("r1"))])
    assert released.counts["held_summed"] == 1 and not state.held and not outputs(released, "outcomes")
    run(engine, state, [early, log.rec(feedback("r1", "i1", reward=0.5))])  # the early record read again adds nothing
    (outcome,) = outputs(run(engine, state, [log.rec(default("r1"))]), "outcomes")
    assert outcome["reward"] == 2.0
    assert reconciles(state.counts)


def test_a_reward_for_another_item_is_a_dead_letter_that_names_the_request_and_the_item_summed(engine):
    """``_sum``'s dead letter (mutmut: the record, its text, counted as held): the second item's record
    itself, with the request and the item whose rewards are being added up, counted as consumed now."""
    state, log = SumState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    run(engine, state, [log.rec(feedback("r1", "i2", reward=1.0))])
    other = log.rec(feedback("r1", "i3", reward=1.0))
    batch = run(engine, state, [other])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (other, "duplicate_feedback",
         "request 'r1' already has rewards for item 'i2': reward_aggregation=sum adds up the rewards of one item")]
    assert batch.counts["dead_lettered"] == 1 and batch.counts["held_dead_lettered"] == 0
    assert list(state.sums[(0, "r1")].values()) and reconciles(state.counts)
