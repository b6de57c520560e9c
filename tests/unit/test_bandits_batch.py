"""``decide_many`` (one batch at once) gives the decisions ``decide`` gives one at a time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import Candidates, make_policy
from bandits.errors import BanditError

pytestmark = pytest.mark.unit

SPECS = ["epsilon_greedy:epsilon=0.1", "epsilon_greedy:epsilon=1.0", "greedy", "softmax:temperature=0.3",
         "softmax:temperature=50"]
score = st.floats(-1e3, 1e3, allow_nan=False)
requests = st.lists(st.tuples(st.lists(st.one_of(score, st.sampled_from([0.0, 1.0])), min_size=1, max_size=12),
                              st.integers(0, 2**63 - 1)), min_size=1, max_size=20)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=60, deadline=None)
@given(reqs=requests)
def test_decide_many_equals_decide_one_by_one(spec, reqs):
    policy = make_policy(spec)
    scores = [np.array(s) for s, _ in reqs]
    seeds = [seed for _, seed in reqs]
    many = policy.decide_many(scores, seeds)
    for d, s, seed in zip(many, scores, seeds):
        one = policy.decide(Candidates(scores=s), np.random.default_rng(seed))
        np.testing.assert_allclose(d.pmf, one.pmf, rtol=1e-12, atol=1e-15)
        assert d.chosen == one.chosen and d.propensity == pytest.approx(one.propensity, rel=1e-12)
        assert (d.policy, d.policy_version) == (one.policy, one.policy_version)


def test_decide_many_refuses_non_finite_scores_and_policies_that_need_more():
    with pytest.raises(BanditError, match="request 1"):
        make_policy("greedy").decide_many([np.array([1.0]), np.array([np.nan, 0.0])], [1, 2])
    with pytest.raises(BanditError, match="needs"):
        make_policy("thompson").decide_many([np.array([1.0])], [1])


def test_a_policy_without_a_batch_pmf_still_draws_each_request_under_its_own_seed():
    """``decide_many``'s fallback, for a policy whose ``distribution_many`` returns None (mutmut
    ``default_rng(None)``: the logged seed would no longer reproduce the draw)."""
    from bandits.base import Policy

    class Uniform(Policy):
        name = "uniform"

        def distribution(self, candidates, rng):
            return np.full(candidates.n, 1.0 / candidates.n)

    policy, scores, seeds = Uniform(), [np.zeros(4)] * 50, list(range(100, 150))
    many = [d.chosen for d in policy.decide_many(scores, seeds)]
    assert many == [policy.decide(Candidates(scores=s), np.random.default_rng(seed)).chosen
                    for s, seed in zip(scores, seeds)]
