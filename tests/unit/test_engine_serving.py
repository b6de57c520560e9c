"""What a policy sees of one request (stream.engine.serving), and the draw made from it.

The engine's unit tests use a scores-only policy, which decides a whole batch at once and
never builds per-request candidates; these reach the path a Thompson policy takes."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import EpsilonGreedy, ThompsonSampling
from learners import BayesianLinearUserModel, RiverUserModel
from stream.engine import serving

pytestmark = pytest.mark.unit

SCORES = np.array([0.3, 0.9, 0.1])
EMB = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
IDS = ("a", "b", "c")


def _bayesian_user() -> BayesianLinearUserModel:
    user = BayesianLinearUserModel(dim=2)
    for x, y in (([1.0, 0.0], 1.0), ([0.0, 1.0], -1.0), ([1.0, 1.0], 0.5)):
        user.learn_one(np.array(x), y)
    return user


def test_without_a_posterior_the_policy_sees_scores_and_embeddings_only():
    for user in (None, RiverUserModel(dim=2)):
        c = serving.policy_candidates(SCORES, EMB, IDS, user)
        assert np.array_equal(c.scores, SCORES) and np.array_equal(c.embeddings, EMB)
        assert c.posterior_mean is None and c.posterior_cov is None and c.action_ids == IDS


def test_a_bayesian_user_adds_its_posterior_over_weights_and_bias():
    """The posterior is over [w, b], so each embedding gains a constant 1 for the bias."""
    user = _bayesian_user()
    c = serving.policy_candidates(SCORES, EMB, IDS, user)
    mean, cov = user.posterior()
    assert np.array_equal(c.embeddings, np.hstack([EMB, np.ones((3, 1))]))
    assert np.array_equal(c.posterior_mean, mean) and np.array_equal(c.posterior_cov, cov)
    assert np.array_equal(c.scores, SCORES) and c.action_ids == IDS


def test_the_draw_is_the_policys_own_under_the_requests_seed():
    candidates = serving.policy_candidates(SCORES, EMB, IDS, _bayesian_user())
    policy = ThompsonSampling(n_samples=32)
    seed = serving.request_seed(7, "r1")
    d = serving.decide(policy, candidates, seed)
    ref = policy.decide(candidates, np.random.default_rng(seed))
    assert (d.chosen, d.propensity) == (ref.chosen, ref.propensity) and np.array_equal(d.pmf, ref.pmf)
    # the seed drives the draw, not a constant: a uniform policy over 60 requests picks every arm
    chosen = {serving.decide(EpsilonGreedy(epsilon=1.0), candidates, serving.request_seed(7, f"r{i}")).chosen
              for i in range(60)}
    assert chosen == {0, 1, 2}


def test_the_prediction_puts_the_chosen_item_first_then_the_rest_by_score_ties_in_order():
    from bandits.base import Decision as PolicyDecision
    from stream.events import Item, Query

    query = Query("r1", "u1", 1.5, {"device": "tv"}, tuple(Item(i) for i in "abcd"), 2)
    scores = np.array([0.2, 0.9, 0.5, 0.5])
    d = PolicyDecision(pmf=np.array([0.1, 0.2, 0.3, 0.4]), chosen=0, propensity=0.1, policy="epsilon_greedy",
                       policy_version="epsilon_greedy/0.1")
    decision, prediction = serving.records(query, scores, d, seed=11, feature_net_version="v2",
                                           user_weights_version=4, latency_ms=3.5, now=9.0)
    assert [(r.item_id, r.score, r.probability) for r in prediction.ranked] == [
        ("a", 0.2, 0.1), ("b", 0.9, 0.2), ("c", 0.5, 0.3), ("d", 0.5, 0.4)]
    assert prediction.chosen == ("a", "b")
    assert (prediction.request_id, prediction.user_id, prediction.feature_net_version, prediction.user_weights_version,
            prediction.policy, prediction.latency_ms, prediction.ts) == ("r1", "u1", "v2", 4, "epsilon_greedy/0.1",
                                                                         3.5, 9.0)
    assert decision.context == {"device": "tv"} and decision.ts == 1.5 and decision.seed == 11
    assert (decision.chosen_index, decision.propensity, decision.pmf) == (0, 0.1, (0.1, 0.2, 0.3, 0.4))
    # Left out, a query is not approximated, escalated, coarsened or decided by a snapshot.
    assert (decision.approximated, decision.escalated, decision.coarsened, decision.policy_snapshot) == ((), False, (), None)
    assert (prediction.approximated, prediction.coarsened) == ((), ())


def test_integer_scores_and_pmf_are_logged_as_floats():
    """The counterfactual log's numbers are JSON floats whatever array a policy or scorer hands over."""
    from bandits.base import Decision as PolicyDecision
    from stream.events import Item, Query, encode

    query = Query("r1", "u1", 1.5, {}, (Item("a"), Item("b")), 1)
    d = PolicyDecision(pmf=np.array([0, 1]), chosen=1, propensity=1.0, policy="greedy", policy_version="greedy")
    decision, prediction = serving.records(query, np.array([2, 3]), d, seed=0, feature_net_version="v1",
                                           user_weights_version=0, latency_ms=0.0, now=0.0)
    assert b'"scores":[2.0,3.0],"pmf":[0.0,1.0]' in encode(decision)
    assert [(r.score, r.probability) for r in prediction.ranked] == [(3.0, 1.0), (2.0, 0.0)]
    assert all(type(r.score) is float and type(r.probability) is float for r in prediction.ranked)


def test_a_new_user_starts_from_the_offline_users_mean_weights_and_bias():
    from types import SimpleNamespace

    model = SimpleNamespace(user_weights={"u": None}, mean_user_weights=lambda: (np.array([1.0, 2.0], np.float32), 0.5))
    assert np.array_equal(serving.base_prior(model), [1.0, 2.0, 0.5])
    assert serving.base_prior(SimpleNamespace(user_weights={})) is None


def test_ties_keep_the_candidates_order_in_a_long_list():
    """numpy's default sort keeps ties in order only for short arrays (insertion sort up to
    16 items); the ranking must not depend on the length of the candidate list."""
    from bandits.base import Decision as PolicyDecision
    from stream.events import Item, Query

    n = 40
    query = Query("r1", "u1", 1.5, {}, tuple(Item(f"i{j}") for j in range(n)), 1)
    scores = (np.arange(n) % 3).astype(float)
    d = PolicyDecision(pmf=np.full(n, 1 / n), chosen=5, propensity=1 / n, policy="p", policy_version="p/1")
    _, prediction = serving.records(query, scores, d, seed=0, feature_net_version="v1", user_weights_version=0,
                                    latency_ms=0.0, now=0.0)
    rest = [j for s in (2, 1, 0) for j in range(n) if j % 3 == s and j != 5]
    assert [r.item_id for r in prediction.ranked] == ["i5"] + [f"i{j}" for j in rest]
