"""The learning policy with ``policy_learner=role``: the engine decides with it but does not train or snapshot
it; a swapped-in snapshot decides from the next batch and is named in the decisions; and the learner role's
example, rebuilt from the outcome record, is the one the worker learns from the join record."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import VWExplorePolicy, make_policy
from stream import events
from stream.engine import Engine, serving
from stream.engine.joins import JoinRecord

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, run  # noqa: F401

pytestmark = pytest.mark.unit

VW = "vw:exploration=epsilon,epsilon=0.2"


def engine(model, *, learns: bool) -> Engine:
    return Engine(model, make_policy(VW), learner="river", join_window_s=60.0, seed=7, policy_learns=learns,
                  clock=lambda: T0)


def chosen(batch) -> str:
    (decision,) = outputs(batch, "decisions")
    return decision["candidates"][decision["chosen_index"]]["id"]


def test_a_worker_in_role_mode_neither_trains_nor_snapshots_the_policy_and_names_the_snapshot_it_serves(model):
    eng, state, log = engine(model, learns=False), MemoryState(), Log()
    first = run(eng, state, [log.rec(query("r1"))])
    assert "policy_snapshot" not in outputs(first, "decisions")[0]
    learned = run(eng, state, [log.rec(feedback("r1", chosen(first)))])
    assert learned.counts["feedback_applied"] == 1 and not learned.counts["policy_learned"]
    assert eng.policy.n_learned == 0 and learned.write.policy is None and eng.policy_snapshot() is None
    trained = make_policy(VW)
    eng.install_policy(trained, 7)
    (decision,) = outputs(run(eng, state, [log.rec(query("r2"))]), "decisions")
    assert decision["policy_snapshot"] == 7 and decision["policy_version"] == trained.version


def test_the_learner_roles_example_from_the_outcome_is_the_workers_example_from_the_join_record(model):
    worker, state, log = engine(model, learns=True), MemoryState(), Log()
    item = chosen(run(worker, state, [log.rec(query("r1", hour=5.0))]))
    batch = run(worker, state, [log.rec(feedback("r1", item, reward=1.0))])
    assert batch.counts["policy_learned"] == 1
    (raw,) = [v for t, _, v in batch.outputs.records if t == "outcomes"]
    outcome = events.decode_outcome(raw)
    (emb,) = serving.decision_embeddings(model, [outcome.decision])
    joined = JoinRecord.unpack(state.decisions["r1"])
    example = [VWExplorePolicy.to_vw_lines(serving.policy_candidates(
        np.asarray(d.scores), e, tuple(c.id for c in d.candidates))) for d, e in
        ((outcome.decision, emb), (joined.decision, joined.embeddings))]
    assert example[0] == example[1]  # the same VW example, byte for byte
    learner = make_policy(VW)
    serving.learn_policy(learner, outcome.decision, emb, outcome.reward)
    candidates = serving.policy_candidates(np.asarray(outcome.decision.scores), emb, ("i1", "i2", "i3", "i4"))
    rng = np.random.default_rng(0)
    assert learner.n_learned == worker.policy.n_learned == 1
    assert np.array_equal(learner.distribution(candidates, rng), worker.policy.distribution(candidates, rng))


def test_a_worker_that_trains_the_policy_snapshots_it_on_shutdown_and_a_greedy_one_has_nothing_to_snapshot(model):
    eng = engine(model, learns=True)
    snap = eng.policy_snapshot()
    assert snap is not None and snap.policy == (eng.policy.name, eng.policy.to_bytes())
    greedy = Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, seed=7, clock=lambda: T0)
    assert greedy.policy_snapshot() is None
