"""Thompson sampling learns: feedback moves the user's posterior and with it the policy's pmf.

The policy itself is stateless; what learns is the Bayesian user model whose posterior it
reads. These tests close that loop the way the worker does (embeddings gain a constant
column for the bias, as in stream.engine.serving.policy_candidates), with one-hot item
embeddings so every number below can be worked out by hand.
"""

import numpy as np
import pytest

from bandits import Candidates, ThompsonSampling
from learners import BayesianLinearUserModel

pytestmark = pytest.mark.unit

K = 3
NOISE_SD = 0.5
ARM_MEANS = np.array([0.0, 1.0, 0.2])  # arm 1 pays best
BEST = 1
ITEMS = np.eye(K)  # item k's embedding


def candidates(user):
    mean, cov = user.posterior()
    x = np.hstack([ITEMS, np.ones((K, 1))])
    return Candidates(scores=x @ mean, embeddings=x, posterior_mean=mean, posterior_cov=cov)


def new_user():
    return BayesianLinearUserModel(K, prior_precision=1.0, noise_variance=NOISE_SD**2)


def test_one_rewarded_observation_raises_that_arms_probability():
    # Each arm's value v_k = w_k + b has prior variance 2 * 0.25 = 0.5, so the arms tie
    # (pmf 1/3 each). After y = 1 on arm 1 the posterior means are 0.67 (arm 1) and 0.33
    # (the others, through the shared bias), variances 0.17 and 0.42: P(arm 1 is best) ~ 0.54.
    # With 4000 draws the Monte Carlo pmf has a standard deviation below 0.008.
    policy = ThompsonSampling(n_samples=4000)
    user = new_user()
    before = policy.distribution(candidates(user), np.random.default_rng(0))
    np.testing.assert_allclose(before, 1 / K, atol=0.04)
    user.learn_one(ITEMS[BEST], 1.0)
    after = policy.distribution(candidates(user), np.random.default_rng(0))
    assert after[BEST] > 0.45, after
    assert np.all(np.delete(after, BEST) < 0.3), after


def test_closed_loop_concentrates_on_the_best_arm():
    policy = ThompsonSampling(n_samples=64, min_propensity=1e-3)
    user = new_user()
    rng = np.random.default_rng(1)
    chosen = []
    for t in range(300):
        d = policy.decide(candidates(user), np.random.default_rng(10_000 + t))
        user.learn_one(ITEMS[d.chosen], ARM_MEANS[d.chosen] + NOISE_SD * rng.standard_normal())
        chosen.append(d.chosen)
    counts = np.bincount(chosen, minlength=K)
    # exploitation: the gap to the runner-up is 0.8, many posterior sds once each arm was tried
    assert np.sum(np.array(chosen[-100:]) == BEST) >= 90, counts
    # concentration: with x~ = [e_k, 1], the precision is at least n_k x~ x~', so the variance
    # of arm k's value is at most noise_var / n_k (an exact bound, no slack needed)
    variance = user.predict_var_many(ITEMS)
    assert np.all(variance <= NOISE_SD**2 / counts + 1e-12), (variance, counts)
    # and the posterior mean of the best arm is within 4 of its standard errors of the truth
    assert abs(user.predict_one(ITEMS[BEST]) - ARM_MEANS[BEST]) < 4 * NOISE_SD / np.sqrt(counts[BEST])
    pmf = policy.distribution(candidates(user), np.random.default_rng(0))
    assert pmf[BEST] == pytest.approx(1 - (K - 1) * 1e-3)  # every draw ranks the best arm first
