"""The engine's users in memory, through its public API: the prior new users start from
(:meth:`Engine.set_prior`, which the worker calls with every partition's statistics), warming a newly
assigned partition's users (:meth:`Engine.warm`), and one user cache per feature-net version
(:meth:`Engine.version_cache`, and the cache made for feedback to a version no longer installed).

Each docstring names the mutants of ``stream/engine/batch.py`` it was written against.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandits import make_policy
from features.model import FeatureModel
from learners import PopulationModel, make_user_model
from stream.engine import Engine
from stream.engine.joins import JoinRecord
from stream.engine.serving import base_prior

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, run  # noqa: F401 (model: a fixture)

pytestmark = pytest.mark.unit

NEW = "newcomer"  # not one of the users the feature net was trained on (u0...u49 have offline weights)


def make_engine(model, **kw) -> Engine:
    return Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, seed=7, clock=lambda: T0, **kw)


def scores_of(state: MemoryState, rid: str) -> tuple[np.ndarray, np.ndarray]:
    """The scores a stored decision logged, and the embeddings it scored."""
    record = JoinRecord.unpack(state.decisions[rid])
    return np.asarray(record.decision.scores), record.embeddings.astype(np.float64)


def expected_scores(model, prior: np.ndarray, emb: np.ndarray) -> np.ndarray:
    return make_user_model("river", model.output_dim, prior_mean=prior).predict_many(emb)


def statistics(model, rows: int, seed: int) -> PopulationModel:
    """A partition's population statistics after ``rows`` observations around the offline prior."""
    rng = np.random.default_rng(seed)
    pop = PopulationModel(model.output_dim, prior_mean=base_prior(model))
    for _ in range(rows):
        pop.learn_one(rng.normal(size=model.output_dim), float(rng.normal()))
    return pop


def test_new_users_start_from_every_partitions_statistics_merged(model):
    """``set_prior`` (mutmut: the statistics not merged, ``is None`` inverted, the mean not passed): after the
    worker's refresh, a user the store has never seen is scored with the merged statistics' mean, and a
    user already in memory with no observation of its own follows it."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r0", user=NEW))])  # in memory now, no observation yet
    before, emb = scores_of(state, "r0")
    np.testing.assert_allclose(before, expected_scores(model, base_prior(model), emb), rtol=1e-9, atol=1e-12)
    a, b = statistics(model, 5, seed=1), statistics(model, 7, seed=2)
    engine.set_prior([a.to_bytes(), b.to_bytes()])
    run(engine, state, [log.rec(query("r1", user=NEW)), log.rec(query("r2", user="another newcomer"))])
    merged = a.merge(b).mean()
    for rid in ("r1", "r2"):
        scores, emb = scores_of(state, rid)
        np.testing.assert_allclose(scores, expected_scores(model, merged, emb), rtol=1e-9, atol=1e-12)
    assert not np.allclose(merged, base_prior(model))


def test_statistics_without_observations_leave_the_prior_as_it_was(model):
    """``set_prior`` with nothing to merge (no partition yet, or none observed anything) changes nothing."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    engine.set_prior([])
    engine.set_prior([PopulationModel(model.output_dim, prior_mean=base_prior(model)).to_bytes()])
    run(engine, state, [log.rec(query("r1", user=NEW))])
    scores, emb = scores_of(state, "r1")
    np.testing.assert_allclose(scores, expected_scores(model, base_prior(model), emb), rtol=1e-9, atol=1e-12)


def test_a_user_observed_online_keeps_its_own_weights_when_the_prior_moves(model):
    """``set_prior`` moves only users with no observation of their own."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1", user=NEW))])
    run(engine, state, [log.rec(feedback("r1", "i1", user=NEW))])
    engine.set_prior([statistics(model, 5, seed=1).to_bytes()])
    batch = run(engine, state, [log.rec(query("r2", user=NEW))])
    assert outputs(batch, "decisions")[0]["user_weights_version"] == 1


def test_warming_loads_a_partitions_users_so_their_first_query_is_a_hit_on_their_stored_state(model):
    """``warm`` (mutmut: nothing warmed; no unit test called it): the worker warms a newly assigned
    partition's users from the store; their next query reads nothing and scores with the stored weights."""
    state, log = MemoryState(), Log()
    owner = make_engine(model)
    run(owner, state, [log.rec(query("r1", user=NEW)), log.rec(query("r2", user=NEW))])
    run(owner, state, [log.rec(feedback("r1", "i1", user=NEW)), log.rec(feedback("r2", "i2", user=NEW))])
    stored = state.users[(model.version, NEW)]

    class NoUserReads(MemoryState):
        def load_users(self, fn, users):
            raise AssertionError(f"read users {sorted(users)} from the store")

    after = NoUserReads()
    after.decisions = state.decisions
    engine = make_engine(model)  # the partition's new owner
    engine.warm({NEW: stored})
    assert engine.cached_users() == 1
    batch = run(engine, after, [log.rec(query("r3", user=NEW))])
    assert outputs(batch, "decisions")[0]["user_weights_version"] == 2
    ((_, held, _, lookups, hits),) = [f for f in engine.cache_figures() if f[0] == model.version]
    assert (held, lookups, hits) == (1, 1, 1)


@pytest.fixture
def v2(model, tmp_path) -> FeatureModel:
    model.save(tmp_path / "v2")
    out = FeatureModel.load(tmp_path / "v2")
    out.version = "v2"
    return out


@pytest.mark.parametrize("cache_users, capacity", [(100_000, 10_000), (12_345, 1_234), (50, 1_000)])
def test_feedback_for_a_version_no_longer_installed_gets_a_tenth_of_the_cache_at_least_1000(
        model, v2, cache_users, capacity):
    """``_cache`` (mutmut: ``max(1001, ...)``, ``// 11``, ``/ 10``, ``* 10``): the cache of a retired
    version holds a tenth of the live one's users, and at least 1,000."""
    state, log = MemoryState(), Log()
    run(make_engine(model), state, [log.rec(query("r1"))])
    restarted = make_engine(v2, cache_users=cache_users)
    batch = run(restarted, state, [log.rec(feedback("r1", "i2"))])
    assert batch.counts["feedback_applied"] == 1
    figures = {f[0]: f for f in restarted.cache_figures()}
    assert figures[model.version] == (model.version, 1, capacity, 1, 0)
    assert figures["v2"] == ("v2", 0, cache_users, 0, 0)


def test_each_feature_net_version_has_one_user_cache_with_its_own_prior(model, v2):
    """``version_cache`` (mutmut: ``or`` for ``and``, ``is not None``, the kind, dimension, capacity, prior
    or offline weights not passed): the live version's cache is the one serving queries (its users stay);
    a challenger's is made once with the worker's capacity, its base prior and its offline users."""
    engine, state, log = make_engine(model, cache_users=500), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    live = engine.version_cache(model)
    assert len(live) == 1 and engine.version_cache(model) is live
    challenger = engine.version_cache(v2)
    assert engine.version_cache(v2) is challenger and challenger is not live
    assert challenger.capacity == 500 and len(challenger) == 0
    np.testing.assert_array_equal(challenger.base_prior, base_prior(v2))
    w, b = v2.user_weights["u1"]
    offline = challenger.fresh("u1")
    assert type(offline).__name__ == "RiverUserModel" and offline.dim == v2.output_dim
    np.testing.assert_allclose(offline.predict_one(np.ones(v2.output_dim)), float(np.sum(w) + b), rtol=1e-6)
    np.testing.assert_allclose(challenger.fresh(NEW).predict_one(np.ones(v2.output_dim)),
                               float(np.sum(base_prior(v2))), rtol=1e-6)


def test_a_version_first_seen_through_its_feedback_gets_its_prior_once_it_is_served(model, v2):
    """``version_cache`` replaces the prior-less cache that feedback for a retired version made (``_cache``)
    when the version is served again, e.g. as a challenger (mutmut: ``is not None``)."""
    state, log = MemoryState(), Log()
    run(make_engine(v2), state, [log.rec(query("r1"))])
    engine = make_engine(model)
    run(engine, state, [log.rec(feedback("r1", "i2"))])  # v2's users, learned in a cache without a prior
    assert {f[0]: f[2] for f in engine.cache_figures()}["v2"] == 10_000
    cache = engine.version_cache(v2)
    assert cache.capacity == 100_000
    np.testing.assert_array_equal(cache.base_prior, base_prior(v2))
