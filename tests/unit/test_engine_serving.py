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
