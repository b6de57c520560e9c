"""Edges of the shared policy machinery that mutation testing found untested: exact error
messages (each names the parameter), documented defaults, version strings, the inverse-CDF
draw at u = 0 and u = 1, pmf checks, and the last-resort branches of covariance_factor."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import (
    UCB,
    BanditError,
    Candidates,
    EpsilonGreedy,
    Greedy,
    Softmax,
    ThompsonSampling,
    VWExplorePolicy,
    decision_seed,
    make_policy,
)
from bandits.base import Policy, check_probability
from bandits.factory import _parse_value
from bandits.ope.synthetic import make_synthetic_log
from bandits.thompson import covariance_factor

pytestmark = pytest.mark.unit


class FixedDraw(np.random.Generator):
    """A Generator whose uniform draw is fixed, to reach the ends of the inverse CDF."""

    def __init__(self, u: float):
        super().__init__(np.random.PCG64(0))
        self.u = u

    def random(self, *args, **kwargs):
        return self.u


class Returns(Policy):
    """A policy that returns a fixed pmf, to test what decide() does with it."""

    name = "returns"

    def __init__(self, pmf):
        self.pmf = pmf

    def distribution(self, candidates, rng):
        return self.pmf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Softmax(temperature=0), "temperature must be > 0 and finite; got 0"),
        (lambda: EpsilonGreedy(epsilon=1.5), "epsilon must be in [0, 1]; got 1.5"),
        (lambda: EpsilonGreedy(epsilon="0.1"), "epsilon must be a number in [0, 1]; got '0.1'"),
        (lambda: UCB(alpha=-1), "alpha must be >= 0 and finite; got -1"),
        (lambda: UCB(epsilon=2.0), "epsilon must be in [0, 1]; got 2.0"),
        (lambda: ThompsonSampling(n_samples=0), "n_samples must be > 0 and finite; got 0"),
        (lambda: ThompsonSampling(n_samples=2.5), "n_samples must be a integer; got 2.5"),
        (lambda: Softmax(temperature="1"), "temperature must be a number; got '1'"),
        (lambda: make_synthetic_log(n_rounds=0, n_actions=2, seed=0), "n_rounds must be > 0 and finite; got 0"),
        (lambda: make_synthetic_log(n_rounds=5, n_actions=0, seed=0), "n_actions must be > 0 and finite; got 0"),
        (lambda: make_synthetic_log(n_rounds=5, n_actions=2, dim=0, seed=0), "dim must be > 0 and finite; got 0"),
        (
            lambda: make_synthetic_log(n_rounds=5, n_actions=2, logging_temperature=0.0, seed=0),
            "logging_temperature must be > 0 and finite; got 0.0",
        ),
        (lambda: ThompsonSampling(min_propensity=-0.1), "min_propensity must be in [0, 1]; got -0.1"),
        (lambda: VWExplorePolicy(gamma_scale=0.0), "gamma_scale must be > 0 and finite; got 0.0"),
        (lambda: VWExplorePolicy(epsilon=1.5), "epsilon must be in [0, 1]; got 1.5"),
        (lambda: VWExplorePolicy(cover=0), "cover must be > 0 and finite; got 0"),
        (lambda: VWExplorePolicy(seed=-1), "seed must be >= 0 and finite; got -1"),
        (lambda: check_probability("propensity", 0.0, low_open=True), "propensity must be in (0, 1]; got 0.0"),
        (
            lambda: VWExplorePolicy().learn(Candidates(scores=[0.0, 1.0]), 0, 1.0, propensity=0.0),
            "propensity must be in (0, 1]; got 0.0",
        ),
        (lambda: decision_seed(42), "key must be str or bytes; got int"),
        (lambda: Candidates(scores=[1.0, np.inf, 2.0]), "scores must be finite; got inf at index [1]"),
        (lambda: Candidates(scores=["a"]), "scores must be numeric; got ['a']"),
        (lambda: Greedy().decide([1.0], np.random.default_rng(0)), "candidates must be a Candidates; got list"),
        (lambda: Greedy().decide(Candidates(scores=[1.0]), 0), "rng must be a numpy.random.Generator; got int"),
        (
            lambda: ThompsonSampling().distribution(Candidates(scores=[1.0]), np.random.default_rng(0)),
            "thompson needs candidates.embeddings, candidates.posterior_cov, candidates.posterior_mean; got None",
        ),
        (
            lambda: UCB().upper_bounds(Candidates(scores=[1.0], embeddings=[[1.0]])),
            "ucb needs candidates.posterior_cov, candidates.posterior_mean; got None",
        ),
        (
            lambda: Returns([0.5, 0.5]).decide(Candidates(scores=[1.0]), np.random.default_rng(0)),
            "returns returned a pmf of shape (2,); expected (1,)",
        ),
        (
            lambda: Returns([1.5, -0.5]).decide(Candidates(scores=[0.0, 1.0]), np.random.default_rng(0)),
            "returns returned a pmf with negative or non-finite values: array([ 1.5, -0.5])",
        ),
        (
            lambda: make_policy("softmax:temp=0.5"),
            "unknown parameter 'temp' for policy 'softmax'; expected one of ['temperature']",
        ),
        # a value may hold "=": only the first one splits key from value
        (lambda: make_policy("softmax:temperature=1=2"), "temperature must be a number; got '1=2'"),
    ],
)
def test_messages(call, message):
    with pytest.raises(BanditError) as info:
        call()
    assert str(info.value) == message


def test_documented_defaults():
    assert Softmax().params() == {"temperature": 1.0}
    assert ThompsonSampling().params() == {"n_samples": 64, "min_propensity": 1e-3}
    assert UCB().params() == {"alpha": 1.0, "epsilon": 0.05}
    assert VWExplorePolicy().params() == {
        "exploration": "squarecb", "gamma_scale": 10.0, "epsilon": 0.05, "cover": 3, "interactions": (), "seed": 0
    }
    log = make_synthetic_log(n_rounds=50, n_actions=3, seed=0)
    assert log.context.shape == (50, 5)
    explicit = make_synthetic_log(n_rounds=50, n_actions=3, seed=0, dim=5, logging_temperature=1.0)
    np.testing.assert_array_equal(log.pi_b, explicit.pi_b)


def test_version_and_repr_format_every_parameter_kind():
    class Every(Policy):
        name = "every"

        def __init__(self, a=None, b=True, c=False, d=0.5, e=("x", "y"), f=3):
            self.a, self.b, self.c, self.d, self.e, self.f = a, b, c, d, e, f

        def distribution(self, candidates, rng):
            return np.ones(candidates.n) / candidates.n

    assert Every().version == "every/1?a=none&b=true&c=false&d=0.5&e=x+y&f=3"
    assert repr(UCB(alpha=2.0, epsilon=0.1)) == "UCB(alpha=2.0, epsilon=0.1)"
    assert VWExplorePolicy(exploration="epsilon", interactions="ai+is").vw_args() == [
        "--cb_explore_adf", "--quiet", "--random_seed", "0", "--epsilon", "0.05",
        "--interactions", "ai", "--interactions", "is",
    ]


def test_parse_value_types():
    assert _parse_value(" TRUE ") is True and _parse_value("false") is False
    assert _parse_value("3") == 3 and isinstance(_parse_value("3"), int)
    assert _parse_value("0.5") == 0.5
    assert _parse_value(" squarecb ") == "squarecb"


def test_decide_never_picks_a_zero_probability_action_at_the_ends_of_the_draw():
    c = Candidates(scores=[0.0, 1.0, 1.0, 1.0, 0.0])  # greedy pmf [0, 1/3, 1/3, 1/3, 0]
    assert Greedy().decide(c, FixedDraw(0.0)).chosen == 1  # u = 0 lands on the first action with mass
    # u * total rounding up to total would index past the end: the last action with mass is taken
    assert Greedy().decide(c, FixedDraw(1.0)).chosen == 3


def test_decide_normalises_a_nearly_summing_pmf_and_accepts_integers():
    d = Returns([0.5, 0.5 + 5e-7]).decide(Candidates(scores=[0.0, 1.0]), np.random.default_rng(0))
    assert d.pmf.sum() == pytest.approx(1.0, abs=1e-15)
    assert not d.pmf.flags.writeable
    d = Returns([0, 1]).decide(Candidates(scores=[0.0, 1.0]), np.random.default_rng(0))
    assert d.pmf.dtype == np.float64 and d.chosen == 1


def test_candidates_hold_float64():
    c = Candidates(scores=[1, 2], embeddings=[[1, 0], [0, 1]])
    assert c.scores.dtype == np.float64 and c.embeddings.dtype == np.float64


def test_covariance_factor_is_plain_cholesky_when_it_exists():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(covariance_factor(cov), np.linalg.cholesky(cov))


def test_covariance_factor_jitter_is_relative_to_the_scale():
    # singular (rank one) and tiny: the jitter must be relative to the diagonal, or it swamps cov
    cov = 2.0**-26 * np.ones((2, 2))
    factor = covariance_factor(cov)
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=1e-6, atol=0)


def test_covariance_factor_clips_a_clearly_indefinite_matrix():
    # no jitter up to 1e-4 of the scale repairs an eigenvalue of -1: the eigendecomposition
    # fallback keeps the positive part, R diag(2, 0) R'
    angle = 0.3
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    factor = covariance_factor(R @ np.diag([2.0, -1.0]) @ R.T)
    np.testing.assert_allclose(factor @ factor.T, R @ np.diag([2.0, 0.0]) @ R.T, atol=1e-12)


def test_ucb_upper_bounds_by_hand():
    cov = np.array([[0.5, 0.1], [0.1, 0.2]])
    x = np.array([[1.0, 0.0], [1.0, 2.0], [0.0, -1.0]])
    mean = np.array([0.3, -0.1])
    c = Candidates(scores=x @ mean, embeddings=x, posterior_mean=mean, posterior_cov=cov)
    expected = x @ mean + 2.0 * np.sqrt(np.einsum("ij,jk,ik->i", x, cov, x))
    np.testing.assert_allclose(UCB(alpha=2.0).upper_bounds(c), expected, rtol=1e-12)
    # a slightly indefinite posterior gives a zero bonus, not NaN
    c = Candidates(scores=[0.0], embeddings=[[1.0]], posterior_mean=[0.0], posterior_cov=[[-1e-12]])
    assert UCB(alpha=1.0).upper_bounds(c).tolist() == [0.0]


def test_synthetic_logging_policy_is_stable_at_low_temperature():
    # logits of order 1000: the softmax must subtract each row's own maximum to stay finite
    log = make_synthetic_log(n_rounds=200, n_actions=4, logging_temperature=1e-3, seed=1)
    assert np.all(np.isfinite(log.pi_b))
    np.testing.assert_allclose(log.pi_b.sum(axis=1), 1.0)
    assert np.all(log.pscore > 0)


# ---- decide_many: the batch path's guards and its fallback ------------------------------


class BatchReturns(Policy):
    """Scores-only policy whose batch pmf is fixed, to test decide_many's checks."""

    name = "batch"
    needs = frozenset({"scores"})

    def __init__(self, pmf):
        self.pmf = pmf

    def distribution(self, candidates, rng):
        return np.ones(candidates.n) / candidates.n

    def distribution_many(self, scores, mask):
        return np.array(self.pmf, dtype=float)


class OneByOne(BatchReturns):
    def distribution_many(self, scores, mask):
        return None  # no batch form: decide_many falls back to decide


def test_decide_many_guards():
    with pytest.raises(BanditError) as info:
        ThompsonSampling().decide_many([np.zeros(2)], [1])
    assert str(info.value) == (
        "thompson needs ['embeddings', 'posterior_cov', 'posterior_mean']; decide_many gives scores only"
    )
    with pytest.raises(BanditError, match="^epsilon_greedy needs"):
        EpsilonGreedy().decide_many([np.zeros(2)], [1, 2])
    with pytest.raises(BanditError) as info:
        EpsilonGreedy().decide_many([np.zeros(2), np.zeros(0)], [1, 2])
    assert str(info.value) == "every request needs at least one candidate"
    with pytest.raises(BanditError) as info:
        BatchReturns([[1.5, -0.5]]).decide_many([np.zeros(2)], [1])
    assert str(info.value) == "batch returned a pmf with negative or non-finite values"
    with pytest.raises(BanditError) as info:
        BatchReturns([[0.5, 0.5], [0.5, 0.6]]).decide_many([np.zeros(2), np.zeros(2)], [1, 2])
    assert str(info.value) == "batch returned a pmf summing to 1.1"


def test_decide_many_single_request_normalisation_and_read_only_pmf():
    (d,) = BatchReturns([[0.5, 0.5 + 5e-7]]).decide_many([np.zeros(2)], [3])
    assert d.pmf.sum() == pytest.approx(1.0, abs=1e-15)
    assert not d.pmf.flags.writeable
    assert d.propensity == d.pmf[d.chosen]


def test_decide_many_falls_back_to_decide_one_by_one():
    scores, seeds = [np.array([0.0, 1.0]), np.array([2.0, 1.0, 0.0])], [5, 6]
    many = OneByOne([]).decide_many(scores, seeds)
    one = [OneByOne([]).decide(Candidates(scores=s), np.random.default_rng(seed)) for s, seed in zip(scores, seeds)]
    assert many == one


def test_epsilon_greedy_batch_pmf_is_zero_on_padding():
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 9.0]])
    mask = np.array([[True, True, False], [True, True, True]])
    pmf = EpsilonGreedy(epsilon=0.3).distribution_many(scores, mask)
    np.testing.assert_allclose(pmf, [[0.85, 0.15, 0.0], [0.1, 0.1, 0.8]])
