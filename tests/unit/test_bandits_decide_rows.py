"""Small batches decided in Python floats (``Policy._decide_rows``) give the array path's decisions bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bandits.base
from bandits import Candidates, EpsilonGreedy, make_policy
from bandits.base import SMALL_BATCH, numpy_sum
from bandits.errors import BanditError

pytestmark = pytest.mark.unit

score = st.floats(-1e3, 1e3, allow_nan=False)
requests = st.lists(st.tuples(st.lists(st.one_of(score, st.sampled_from([0.0, -0.0, 1.0])), min_size=1, max_size=40),
                              st.integers(0, 2**64 - 1)), min_size=1, max_size=SMALL_BATCH)


def _array_path(policy, scores, seeds):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bandits.base, "SMALL_BATCH", 0)
        return policy.decide_many(scores, seeds)


SPECS = ["epsilon_greedy:epsilon=0.1", "epsilon_greedy:epsilon=1.0", "greedy", "epsilon_greedy:epsilon=0.37"]


def _same(r, a):
    assert r.pmf.tolist() == a.pmf.tolist() and not r.pmf.flags.writeable
    assert (r.chosen, r.propensity, r.policy, r.policy_version) == (a.chosen, a.propensity, a.policy, a.policy_version)
    assert type(r.chosen) is int and type(r.propensity) is float


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=150, deadline=None)
@given(reqs=requests)
def test_rows_give_decide_one_by_one_bit_for_bit(spec, reqs):
    policy = make_policy(spec)
    scores, seeds = [np.array(s) for s, _ in reqs], [seed for _, seed in reqs]
    rows = policy._decide_rows(scores, seeds)
    assert rows is not None and len(rows) == len(reqs)
    for r, s, seed in zip(rows, scores, seeds):
        _same(r, policy.decide(Candidates(scores=s), np.random.default_rng(seed)))


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_rows_give_the_array_paths_decisions_bit_for_bit_when_no_request_is_padded(spec, n, data):
    """The usual batch: every request has as many candidates. (With fewer in some, the array path sums their
    padding too, which can move its pmf by the last bit; the rows keep decide's.)"""
    reqs = data.draw(st.lists(st.tuples(st.lists(st.one_of(score, st.sampled_from([0.0, -0.0, 1.0])), min_size=n,
                                                 max_size=n), st.integers(0, 2**64 - 1)),
                              min_size=1, max_size=SMALL_BATCH))
    policy = make_policy(spec)
    scores, seeds = [np.array(s) for s, _ in reqs], [seed for _, seed in reqs]
    for r, a in zip(policy._decide_rows(scores, seeds), _array_path(policy, scores, seeds), strict=True):
        _same(r, a)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False), max_size=300))
def test_numpy_sum_is_numpys_pairwise_sum(values):
    assert numpy_sum(values) == float(np.sum(np.array(values, dtype=np.float64)))


def test_decide_many_takes_the_row_path_up_to_small_batch_and_the_arrays_above():
    calls = []

    class Counted(EpsilonGreedy):
        def distribution_row(self, scores):
            calls.append(len(scores))
            return super().distribution_row(scores)

    policy = Counted(epsilon=0.2)
    policy.decide_many([np.zeros(3)] * SMALL_BATCH, list(range(SMALL_BATCH)))
    assert calls == [3] * SMALL_BATCH
    policy.decide_many([np.zeros(3)] * (SMALL_BATCH + 1), list(range(SMALL_BATCH + 1)))
    assert calls == [3] * SMALL_BATCH  # the array path


def test_a_policy_without_rows_is_decided_by_the_arrays():
    policy = make_policy("softmax:temperature=0.3")
    scores, seeds = [np.array([0.1, 0.5, 0.2])], [7]
    assert policy._decide_rows(scores, seeds) is None
    [d] = policy.decide_many(scores, seeds)  # the arrays, as decide would (to rounding)
    one = policy.decide(Candidates(scores=scores[0]), np.random.default_rng(7))
    np.testing.assert_allclose(d.pmf, one.pmf, rtol=1e-12)
    assert d.chosen == one.chosen


def test_rows_refuse_what_the_arrays_refuse():
    with pytest.raises(BanditError, match="request 1"):
        make_policy("greedy").decide_many([np.array([1.0]), np.array([np.inf, 0.0])], [1, 2])
    with pytest.raises(BanditError, match="at least one candidate"):
        make_policy("greedy").decide_many([np.array([])], [1])

    class Negative(EpsilonGreedy):
        def distribution_row(self, scores):
            return [-0.5, 1.5][: len(scores)]

    with pytest.raises(BanditError, match="negative or non-finite"):
        Negative().decide_many([np.zeros(2)], [1])

    class Short(EpsilonGreedy):
        def distribution_row(self, scores):
            return [1.0]

    with pytest.raises(BanditError, match="1 entries for 3 candidates"):
        Short().decide_many([np.zeros(3)], [1])

    class Half(EpsilonGreedy):
        def distribution_row(self, scores):
            return [0.25] * len(scores)

    with pytest.raises(BanditError, match="summing to 0.5"):
        Half().decide_many([np.zeros(2)], [1])


def test_actions_without_mass_are_never_chosen():
    class Front(EpsilonGreedy):
        def distribution_row(self, scores):
            return [0.5, 0.5] + [0.0] * (len(scores) - 2)

    policy = Front(epsilon=0.0)
    for seed in range(2000):
        [d] = policy.decide_many([np.zeros(4)], [seed])
        assert d.chosen in (0, 1) and d.propensity == 0.5


def test_a_draw_rounded_up_to_the_total_takes_the_last_action_with_mass(monkeypatch):
    """u * total can round up to total (here: a draw of exactly 1.0); every cdf entry is then <= it, and the
    choice must be the last action with mass, as on the array path, not one past the end."""
    class One:
        def random(self):
            return 1.0

    class Front(EpsilonGreedy):
        def distribution_row(self, scores):
            return [0.25, 0.75, 0.0]

    monkeypatch.setattr(np.random, "default_rng", lambda seed: One())
    [d] = Front(epsilon=0.0).decide_many([np.zeros(3)], [1])
    assert (d.chosen, d.propensity) == (1, 0.75)
