"""Exploration policies: known pmfs, seeded sampling, Thompson/UCB behaviour, make_policy parsing."""

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
    decision_seed,
    make_policy,
)
from bandits.thompson import covariance_factor

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)


def linear_candidates(mean, cov, embeddings=None):
    mean = np.asarray(mean, dtype=float)
    embeddings = np.eye(len(mean)) if embeddings is None else np.asarray(embeddings, dtype=float)
    return Candidates(
        scores=embeddings @ mean, embeddings=embeddings, posterior_mean=mean, posterior_cov=np.asarray(cov, float)
    )


# ---- epsilon-greedy and softmax ---------------------------------------------------------


@pytest.mark.parametrize(
    "epsilon, scores, expected",
    [
        (0.1, [0.0, 1.0, 0.5, 0.2], [0.025, 0.925, 0.025, 0.025]),
        (0.0, [0.0, 1.0, 0.5], [0.0, 1.0, 0.0]),
        (1.0, [0.0, 1.0, 0.5], [1 / 3, 1 / 3, 1 / 3]),
        (0.2, [2.0, 2.0, 1.0, 0.0], [0.05 + 0.4, 0.05 + 0.4, 0.05, 0.05]),  # ties split evenly
        (0.3, [5.0], [1.0]),
    ],
)
def test_epsilon_greedy_known_pmf(epsilon, scores, expected):
    pmf = EpsilonGreedy(epsilon=epsilon).distribution(Candidates(scores=scores), RNG)
    np.testing.assert_allclose(pmf, expected, atol=1e-12)


def test_greedy_is_epsilon_zero():
    c = Candidates(scores=[0.3, 0.9, 0.1])
    np.testing.assert_array_equal(Greedy().distribution(c, RNG), EpsilonGreedy(0.0).distribution(c, RNG))
    assert Greedy().params() == {}
    assert Greedy().version == "greedy/1"


def test_softmax_monotone_in_score():
    scores = np.array([0.3, -1.0, 2.5, 0.0, 1.1])
    pmf = Softmax(temperature=0.7).distribution(Candidates(scores=scores), RNG)
    order = np.argsort(scores)
    assert np.all(np.diff(pmf[order]) > 0)


def test_softmax_known_values_and_stability():
    pmf = Softmax(temperature=2.0).distribution(Candidates(scores=[0.0, 2.0 * np.log(4.0)]), RNG)
    np.testing.assert_allclose(pmf, [0.2, 0.8])
    pmf = Softmax(temperature=1e-3).distribution(Candidates(scores=[1e6, 1e6 - 1.0, -1e6]), RNG)
    assert np.all(np.isfinite(pmf))
    np.testing.assert_allclose(pmf, [1.0, 0.0, 0.0])


def test_softmax_temperature_extremes():
    c = Candidates(scores=[0.0, 1.0, 3.0])
    np.testing.assert_allclose(Softmax(temperature=1e6).distribution(c, RNG), 1 / 3, atol=1e-5)
    np.testing.assert_allclose(Softmax(temperature=1e-3).distribution(c, RNG), [0, 0, 1], atol=1e-12)


# ---- Thompson sampling -------------------------------------------------------------------


def test_thompson_tight_posterior_concentrates_and_floors():
    c = linear_candidates([0.1, 0.9, 0.5, 0.2], 1e-6 * np.eye(4))
    policy = ThompsonSampling(n_samples=64, min_propensity=1e-3)
    pmf = policy.distribution(c, np.random.default_rng(3))
    assert pmf.argmax() == 1
    assert pmf[1] == pytest.approx(1 - 3e-3)
    np.testing.assert_allclose(pmf[[0, 2, 3]], 1e-3)
    assert pmf.sum() == pytest.approx(1.0)
    decision = policy.decide(c, np.random.default_rng(4))
    assert decision.propensity == decision.pmf[decision.chosen] >= 1e-3


@pytest.mark.parametrize("mean", [[0.0, 0.3], [0.2, -0.1]])
def test_thompson_pmf_is_the_posterior_probability_of_being_best(mean):
    # Two arms: arm 1 is best when d = (x1 - x0) . w > 0, and d ~ N(mu_d, s_d^2) under the
    # posterior, so P(best) = Phi(mu_d / s_d). Strongly correlated weights make s_d^2 = 0.2,
    # where a factor applied transposed (cov L'L instead of LL') would give 1.22.
    from math import erf, sqrt

    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    c = linear_candidates(mean, cov)
    diff = c.embeddings[1] - c.embeddings[0]
    exact = 0.5 * (1 + erf(float(diff @ c.posterior_mean) / sqrt(2 * float(diff @ cov @ diff))))
    n = 20_000
    pmf = ThompsonSampling(n_samples=n, min_propensity=0.0).distribution(c, np.random.default_rng(8))
    # Monte Carlo standard deviation sqrt(p (1 - p) / n) <= 0.0036: 5 of them is 0.018
    assert pmf[1] == pytest.approx(exact, abs=5 * np.sqrt(exact * (1 - exact) / n)), (pmf, exact)


def test_thompson_wide_posterior_spreads_mass():
    c = linear_candidates([0.0, 0.0, 0.0], np.eye(3))
    pmf = ThompsonSampling(n_samples=4000).distribution(c, np.random.default_rng(0))
    np.testing.assert_allclose(pmf, 1 / 3, atol=0.03)


def test_thompson_floor_becomes_uniform_when_too_large():
    c = linear_candidates([1.0, 0.0], 1e-8 * np.eye(2))
    pmf = ThompsonSampling(min_propensity=0.9).distribution(c, RNG)
    np.testing.assert_allclose(pmf, [0.5, 0.5])


def test_thompson_duplicate_embeddings_split_ties():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    c = linear_candidates([1.0, -1.0], 1e-6 * np.eye(2), embeddings=emb)
    pmf = ThompsonSampling(min_propensity=0.0).distribution(c, np.random.default_rng(0))
    np.testing.assert_allclose(pmf, [0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    "cov",
    [
        np.zeros((3, 3)),  # degenerate posterior
        np.ones((3, 3)),  # rank one
        np.array([[1.0, 0.0, 0.0], [0.0, -1e-9, 0.0], [0.0, 0.0, 1.0]]),  # slightly indefinite
        np.array([[1.0, 0.5, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # not symmetric (rounding)
    ],
)
def test_thompson_handles_non_pd_covariance(cov):
    factor = covariance_factor(cov)
    assert np.all(np.isfinite(factor))
    np.testing.assert_allclose(factor @ factor.T, 0.5 * (cov + cov.T), atol=1e-3)
    decision = ThompsonSampling().decide(linear_candidates([0.2, 0.1, 0.0], cov), np.random.default_rng(1))
    assert decision.pmf.sum() == pytest.approx(1.0)


def test_thompson_needs_posterior():
    with pytest.raises(BanditError, match="posterior_mean"):
        ThompsonSampling().distribution(Candidates(scores=[1.0, 2.0], embeddings=np.eye(2)), RNG)


# ---- UCB -------------------------------------------------------------------------------


def test_ucb_prefers_uncertain_arm_when_means_tie():
    c = linear_candidates([0.5, 0.5, 0.5], np.diag([0.01, 0.5, 0.1]))
    pmf = UCB(alpha=1.0, epsilon=0.0).distribution(c, RNG)
    np.testing.assert_array_equal(pmf, [0.0, 1.0, 0.0])
    pmf = UCB(alpha=1.0, epsilon=0.3).distribution(c, RNG)
    np.testing.assert_allclose(pmf, [0.1, 0.8, 0.1])


def test_ucb_alpha_zero_is_greedy_on_mean():
    c = linear_candidates([0.6, 0.5], np.diag([0.01, 10.0]))
    np.testing.assert_array_equal(UCB(alpha=0.0, epsilon=0.0).distribution(c, RNG), [1.0, 0.0])
    np.testing.assert_array_equal(UCB(alpha=1.0, epsilon=0.0).distribution(c, RNG), [0.0, 1.0])
    np.testing.assert_allclose(UCB(alpha=0.0).upper_bounds(c), [0.6, 0.5])


def test_ucb_needs_embeddings():
    c = Candidates(scores=[1.0, 2.0], posterior_mean=[1.0, 0.0], posterior_cov=np.eye(2))
    with pytest.raises(BanditError, match="embeddings"):
        UCB().decide(c, RNG)


# ---- decide(): seeded sampling ----------------------------------------------------------


def test_same_seed_same_decision_different_seeds_vary():
    c = Candidates(scores=[0.1, 0.5, 0.3, 0.2])
    policy = Softmax(temperature=0.5)
    seed = decision_seed("req-1")
    assert policy.decide(c, np.random.default_rng(seed)) == policy.decide(c, np.random.default_rng(seed))
    chosen = {policy.decide(c, np.random.default_rng(decision_seed(f"req-{i}"))).chosen for i in range(50)}
    assert len(chosen) > 1


def test_decision_seed_is_stable_across_processes():
    # blake2b, not the salted built-in hash: the value is fixed forever
    assert decision_seed("request-42") == 2446815441491013625


# chi-square critical value at p = 0.999 for 4 degrees of freedom
CHI2_999_DF4 = 18.467


@pytest.mark.parametrize(
    "policy",
    [EpsilonGreedy(epsilon=0.5), Softmax(temperature=0.3), UCB(alpha=1.0, epsilon=0.6)],
    ids=lambda p: p.name,
)
def test_empirical_choice_frequency_matches_pmf(policy):
    c = linear_candidates([0.1, 0.4, 0.3, 0.0, 0.2], 0.01 * np.eye(5))
    pmf = policy.distribution(c, RNG)
    n = 2000
    counts = np.bincount([policy.decide(c, np.random.default_rng(s)).chosen for s in range(n)], minlength=5)
    expected = n * pmf
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < CHI2_999_DF4, (counts, expected)


def test_thompson_choice_frequency_matches_mean_pmf():
    # each decision samples from its own pmf, so P(chosen = a) is the mean pmf
    c = linear_candidates([0.1, 0.4, 0.3, 0.0, 0.2], 0.02 * np.eye(5))
    policy = ThompsonSampling(n_samples=32)
    decisions = [policy.decide(c, np.random.default_rng(s)) for s in range(2000)]
    expected = np.sum([d.pmf for d in decisions], axis=0)
    counts = np.bincount([d.chosen for d in decisions], minlength=5)
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < CHI2_999_DF4, (counts, expected)


def test_decide_never_picks_zero_probability_action():
    c = Candidates(scores=[0.0, 1.0, 0.0])
    assert {Greedy().decide(c, np.random.default_rng(s)).chosen for s in range(200)} == {1}


def test_decide_rejects_bad_pmf_and_bad_rng():
    class Broken(EpsilonGreedy):
        name = "broken"

        def distribution(self, candidates, rng):
            return np.array([0.5, 0.6])

    with pytest.raises(BanditError, match="sum"):
        Broken().decide(Candidates(scores=[0.0, 1.0]), RNG)
    with pytest.raises(BanditError, match="rng"):
        EpsilonGreedy().decide(Candidates(scores=[0.0, 1.0]), 42)


# ---- Candidates validation --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(scores=[]), "scores"),
        (dict(scores=[[1.0, 2.0]]), "scores"),
        (dict(scores=[1.0, np.inf]), "scores"),
        (dict(scores=[1.0, 2.0], embeddings=np.ones((3, 2))), "embeddings"),
        (dict(scores=[1.0, 2.0], embeddings=np.ones((2, 2)), posterior_mean=np.ones(3)), "posterior_mean"),
        (dict(scores=[1.0, 2.0], posterior_mean=np.ones(2), posterior_cov=np.ones((2, 3))), "posterior_cov"),
        (dict(scores=[1.0, 2.0], action_ids=("a",)), "action_ids"),
        (dict(scores=[1.0, 2.0], action_ids=("a", 3)), "action_ids"),
    ],
)
def test_candidates_validation(kwargs, needle):
    with pytest.raises(BanditError, match=needle):
        Candidates(**kwargs)


# ---- make_policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, cls, params",
    [
        ("epsilon_greedy:epsilon=0.1", EpsilonGreedy, {"epsilon": 0.1}),
        ("epsilon_greedy", EpsilonGreedy, {"epsilon": 0.1}),
        ("softmax:temperature=0.5", Softmax, {"temperature": 0.5}),
        ("thompson:n_samples=64", ThompsonSampling, {"n_samples": 64, "min_propensity": 1e-3}),
        ("ucb:alpha=1,epsilon=0.05", UCB, {"alpha": 1.0, "epsilon": 0.05}),
        (" ucb : alpha = 2 , epsilon = 0 ", UCB, {"alpha": 2.0, "epsilon": 0.0}),
        ("greedy", Greedy, {}),
        ({"name": "softmax", "temperature": 2}, Softmax, {"temperature": 2.0}),
    ],
)
def test_make_policy_parses(spec, cls, params):
    policy = make_policy(spec)
    assert type(policy) is cls
    assert policy.params() == params


def test_make_policy_vw():
    policy = make_policy("vw:exploration=squarecb,gamma_scale=10,interactions=ai+is")
    assert policy.params()["gamma_scale"] == 10.0
    assert policy.interactions == ("ai", "is")
    assert "--squarecb" in policy.vw_args()


def test_version_is_stable_and_int_float_agnostic():
    assert make_policy("ucb:alpha=1,epsilon=0.05").version == UCB(alpha=1.0, epsilon=0.05).version
    assert UCB().version == "ucb/1?alpha=1.0&epsilon=0.05"
    assert make_policy("epsilon_greedy:epsilon=0.1").version == "epsilon_greedy/1?epsilon=0.1"


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("bogus", "bogus"),
        ("", "spec"),
        ("softmax:temp=0.5", "temp"),
        ("softmax:temperature=0", "temperature"),
        ("softmax:temperature=hot", "temperature"),
        ("epsilon_greedy:epsilon=1.5", "epsilon"),
        ("epsilon_greedy:epsilon", "key=value"),
        ("epsilon_greedy:epsilon=0.1,epsilon=0.2", "twice"),
        ("thompson:n_samples=0", "n_samples"),
        ("thompson:n_samples=2.5", "n_samples"),
        ("ucb:alpha=-1", "alpha"),
        ("vw:exploration=bag", "exploration"),
        ("vw:interactions=xy", "interactions"),
        ("vw:cover=0", "cover"),
        ({"temperature": 1.0}, "name"),
        ({"name": "greedy", "epsilon": 0.1}, "epsilon"),
        (42, "spec"),
    ],
)
def test_make_policy_errors(spec, needle):
    with pytest.raises(BanditError, match=needle):
        make_policy(spec)
