"""Slates: ``k`` > 1 positions filled without replacement, one decision logged per position, feedback joined
to its position's decision, and a batch read again re-emitting every position byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bandits import make_policy
from bandits.base import Decision as PolicyDecision
from stream import events
from stream.engine import Engine
from stream.engine.slates import fill, slot_key
from stream.events import Feedback, Item, Query
from tests.unit.test_engine import T0, Log, MemoryState, model, run  # noqa: F401 (model: a fixture)

pytestmark = pytest.mark.unit


def slate_query(rid: str, k: int = 3, items=("i1", "i2", "i3", "i4", "i5")) -> Query:
    return Query(request_id=rid, user_id="u1", ts=T0, context={"hour": 3.0},
                 candidates=tuple(Item(i) for i in items), k=k)


def decisions_of(batch) -> list[events.Decision]:
    return [events.decode_decision(v) for topic, _, v in batch.outputs.records if topic == "decisions"]


@pytest.fixture
def engine(model) -> Engine:  # noqa: F811
    return Engine(model, make_policy("softmax:temperature=0.5"), learner="river", join_window_s=60.0,
                  seed=7, clock=lambda: T0)


def test_fill_draws_without_replacement_and_each_position_renormalises():
    pmf = np.array([0.4, 0.3, 0.2, 0.1])
    first = PolicyDecision(pmf, 1, 0.3, "softmax", "softmax/1")
    for seed in range(50):
        slots = fill(first, np.zeros(4), 4, seed=seed)
        chosen = [s.chosen for s in slots]
        assert sorted(chosen) == [0, 1, 2, 3] and chosen[0] == 1
        for j, s in enumerate(slots[1:], start=1):
            free = np.ones(4, dtype=bool)
            free[chosen[:j]] = False
            expected = np.where(free, pmf, 0.0) / pmf[free].sum()
            assert np.allclose(s.pmf, expected) and s.propensity == pytest.approx(expected[s.chosen])


def test_fill_is_plackett_luce_over_the_policy_pmf():
    """The frequency of each ordered pair of the first two positions is the product of the positions' pmfs."""
    pmf = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(0)
    counts: dict[tuple[int, int], int] = {}
    n = 20_000
    for seed in range(n):
        first_choice = int(rng.choice(3, p=pmf))
        slots = fill(PolicyDecision(pmf, first_choice, float(pmf[first_choice]), "p", "p/1"), np.zeros(3), 2,
                     seed=seed)
        counts[(slots[0].chosen, slots[1].chosen)] = counts.get((slots[0].chosen, slots[1].chosen), 0) + 1
    for a, b in itertools.permutations(range(3), 2):
        truth = pmf[a] * pmf[b] / (1 - pmf[a])
        assert counts.get((a, b), 0) / n == pytest.approx(truth, abs=0.015)


def test_a_policy_without_mass_left_fills_by_score_with_probability_one():
    first = PolicyDecision(np.array([0.0, 1.0, 0.0]), 1, 1.0, "greedy", "greedy/1")
    slots = fill(first, np.array([0.1, 0.9, 0.5]), 3, seed=3)
    assert [s.chosen for s in slots] == [1, 2, 0] and [s.propensity for s in slots] == [1.0, 1.0, 1.0]


def test_a_slate_logs_one_decision_per_position_whose_propensities_multiply_to_the_slate(engine):
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(slate_query("r1"))])
    ds = decisions_of(batch)
    assert [d.position for d in ds] == [0, 1, 2]
    assert [d.taken for d in ds] == [(), (ds[0].chosen_index,), (ds[0].chosen_index, ds[1].chosen_index)]
    chosen = [d.chosen_item for d in ds]
    assert len(set(chosen)) == 3
    prediction = events.decode_prediction(batch.outputs.predictions[0][1])
    assert prediction.chosen == tuple(chosen) and [r.item_id for r in prediction.ranked[:3]] == chosen
    for j, d in enumerate(ds):  # taken items have probability 0 at later positions; each pmf sums to 1
        assert sum(d.pmf) == pytest.approx(1.0)
        assert all(d.pmf[ds[i].chosen_index] == 0.0 for i in range(j))
        assert d.propensity == d.pmf[d.chosen_index] > 0
    # the slate's probability: position 0's pmf, then each later one renormalised over what is left
    p0 = np.array(ds[0].pmf)
    taken, expected = [], 1.0
    for d in ds:
        free = np.ones(len(p0), dtype=bool)
        free[taken] = False
        expected *= p0[d.chosen_index] / p0[free].sum()
        taken.append(d.chosen_index)
    assert np.prod([d.propensity for d in ds]) == pytest.approx(expected)
    assert set(state.decisions) == {"r1", slot_key("r1", 1), slot_key("r1", 2)}


def test_k_one_is_unchanged_byte_for_byte(engine, model):  # noqa: F811
    """A query without a slate logs exactly what it logged before slates (no position on the wire)."""
    q = Query(request_id="r1", user_id="u1", ts=T0, context={"hour": 3.0}, candidates=(Item("i1"), Item("i2")))
    batch = run(engine, MemoryState(), [Log().rec(q)])
    [(topic, _, value)] = batch.outputs.records
    assert b"position" not in value and events.decode_decision(value).position == 0
    assert events.encode(Feedback("r1", "u1", "i1", 1.0, T0)).find(b"position") == -1


def test_feedback_joins_the_decision_of_its_position(engine):
    state, log = MemoryState(), Log()
    ds = decisions_of(run(engine, state, [log.rec(slate_query("r1"))]))
    fbs = [Feedback("r1", "u1", ds[j].chosen_item, float(j), T0 + 1, position=j) for j in (1, 2)]
    batch = run(engine, state, [log.rec(fb) for fb in fbs])
    outcomes = [events.decode_outcome(v) for t, _, v in batch.outputs.records if t == "outcomes"]
    assert [(o.decision.position, o.item_id, o.reward) for o in outcomes] == [
        (1, ds[1].chosen_item, 1.0), (2, ds[2].chosen_item, 2.0)]
    assert batch.counts["feedback_applied"] == 2 and not batch.outputs.dead
    # exactly once per position: the same position again is a duplicate, another position is not
    again = run(engine, state, [log.rec(Feedback("r1", "u1", ds[1].chosen_item, 1.0, T0 + 2, position=1)),
                                log.rec(Feedback("r1", "u1", ds[0].chosen_item, 1.0, T0 + 2))])
    assert [d.reason for d in again.outputs.dead] == ["duplicate_feedback"]
    assert again.counts["feedback_applied"] == 1


def test_feedback_for_a_position_the_query_did_not_have_is_unknown(engine):
    state, log = MemoryState(), Log()
    ds = decisions_of(run(engine, state, [log.rec(slate_query("r1", k=2))]))
    engine.held_max = 0  # no holding: an unknown request is a dead letter at once
    batch = run(engine, state, [log.rec(Feedback("r1", "u1", ds[0].chosen_item, 1.0, T0 + 1, position=2))])
    assert [d.reason for d in batch.outputs.dead] == ["unknown_request"]


def test_early_feedback_for_a_position_is_held_until_the_slate_is_decided(engine):
    state, log = MemoryState(), Log()
    # the item is known in advance only through the seed: decide once on a copy to learn it
    probe = decisions_of(run(engine, MemoryState(), [Log().rec(slate_query("r1"))]))
    held = run(engine, state, [log.rec(Feedback("r1", "u1", probe[2].chosen_item, 1.0, T0 + 1, position=2))])
    assert held.counts["feedback_held"] == 1
    batch = run(engine, state, [log.rec(slate_query("r1"))])
    outcomes = [events.decode_outcome(v) for t, _, v in batch.outputs.records if t == "outcomes"]
    assert [(o.decision.position, o.item_id) for o in outcomes] == [(2, probe[2].chosen_item)]


def test_a_slate_read_again_is_re_emitted_byte_for_byte(engine):
    state, log = MemoryState(), Log()
    rec = log.rec(slate_query("r1"))
    first = run(engine, state, [rec])
    again = run(engine, state, [rec])
    assert again.outputs.records == first.outputs.records
    assert again.outputs.predictions == first.outputs.predictions
    assert again.counts["predictions_redelivered"] == 1
    twice = run(engine, MemoryState(), [rec, rec])  # the same request twice in one batch
    assert len(decisions_of(twice)) == 6 and len(twice.outputs.predictions) == 2


def test_a_learning_policy_learns_from_the_decision_of_the_feedbacks_position(model):  # noqa: F811
    from tests.unit.test_engine_learning import RecordingPolicy

    policy = RecordingPolicy()
    engine = Engine(model, policy, learner="river", join_window_s=60.0, seed=7, clock=lambda: T0)
    state, log = MemoryState(), Log()
    ds = decisions_of(run(engine, state, [log.rec(slate_query("r1"))]))
    batch = run(engine, state, [log.rec(Feedback("r1", "u1", ds[2].chosen_item, 0.5, T0 + 1, position=2))])
    assert batch.counts["policy_learned"] == 1
    ((_, chosen, reward, propensity),) = policy.examples
    assert (chosen, reward, propensity) == (ds[2].chosen_index, 0.5, ds[2].propensity)
