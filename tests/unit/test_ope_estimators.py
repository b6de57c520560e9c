"""Off-policy estimators: known answers on synthetic logs, exact hand computations, invariants."""

import numpy as np
import pytest

from bandits.ope import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPW,
)
from bandits.ope.synthetic import make_synthetic_log, policy_value

pytestmark = pytest.mark.unit


def epsilon_greedy_target(expected_reward, seed, epsilon=0.1, noise=0.1):
    """A good-but-imperfect target: epsilon-greedy on a noisy copy of the true rewards."""
    rng = np.random.default_rng(seed)
    noisy = expected_reward + rng.normal(0.0, noise, expected_reward.shape)
    n, k = noisy.shape
    dist = np.full((n, k), epsilon / k)
    dist[np.arange(n), noisy.argmax(axis=1)] += 1.0 - epsilon
    return dist


def scenario(seed, n_rounds=5000, n_actions=5):
    log = make_synthetic_log(n_rounds=n_rounds, n_actions=n_actions, seed=seed)
    dist = epsilon_greedy_target(log.expected_reward, seed + 1000)
    noise = np.random.default_rng(seed + 2000).normal(0.0, 0.1, log.expected_reward.shape)
    inputs = dict(
        reward=log.reward,
        action=log.action,
        pscore=log.pscore,
        action_dist=dist,
        estimated_rewards=log.expected_reward + noise,  # a reasonable, noisy reward model
    )
    return inputs, policy_value(dist, log.expected_reward), log


# Fixed seeds keep this deterministic. Offline, over seeds 0..199 at these settings, the 95%
# intervals covered the truth 94-95% of the time (DM 99.5%); test_interval_calibration
# below checks coverage over many seeds rather than trusting a few.
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_interval_covers_true_value(name, seed):
    inputs, truth, _ = scenario(seed)
    estimator = ESTIMATORS[name]()
    interval = estimator.estimate_interval(**inputs, alpha=0.05, n_bootstrap_samples=1000, random_state=seed)
    assert interval["lower"] <= truth <= interval["upper"], (interval, truth)
    assert interval["lower"] <= interval["mean"] <= interval["upper"]
    assert interval["upper"] - interval["lower"] < 0.3  # informative: rewards live in [0, 1]
    assert interval["lower"] <= estimator.estimate_policy_value(**inputs) <= interval["upper"]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_interval_calibration(name):
    hits = 0
    seeds = range(100, 140)
    for seed in seeds:
        inputs, truth, _ = scenario(seed, n_rounds=1000)
        interval = ESTIMATORS[name]().estimate_interval(**inputs, n_bootstrap_samples=300, random_state=seed)
        hits += interval["lower"] <= truth <= interval["upper"]
    assert hits / len(seeds) >= 0.85, hits


def test_ips_on_uniform_logs_equals_hand_computation():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    action = rng.integers(0, k, n)
    reward = rng.normal(size=n)
    target = rng.integers(0, k, n)
    action_dist = np.eye(k)[target]
    value = InverseProbabilityWeighting().estimate_policy_value(
        reward=reward, action=action, pscore=np.full(n, 1 / k), action_dist=action_dist
    )
    assert value == np.mean(reward * (action == target) * k)


def test_ips_clipping():
    reward = np.array([1.0, 1.0])
    kwargs = dict(reward=reward, action=np.array([0, 0]), pscore=np.array([0.01, 0.5]), action_dist=np.eye(2)[[0, 0]])
    assert InverseProbabilityWeighting().estimate_policy_value(**kwargs) == pytest.approx((100 + 2) / 2)
    assert InverseProbabilityWeighting(max_weight=10).estimate_policy_value(**kwargs) == pytest.approx((10 + 2) / 2)


@pytest.mark.parametrize("seed", range(20))
def test_snips_within_reward_range(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 50)), int(rng.integers(2, 6))
    reward = rng.normal(size=n) * 10
    action_dist = rng.dirichlet(np.ones(k), size=n)
    kwargs = dict(reward=reward, action=rng.integers(0, k, n), pscore=rng.uniform(1e-4, 1, n), action_dist=action_dist)
    value = SelfNormalizedIPW().estimate_policy_value(**kwargs)
    assert reward.min() - 1e-9 <= value <= reward.max() + 1e-9
    interval = SelfNormalizedIPW().estimate_interval(**kwargs, n_bootstrap_samples=50)
    assert reward.min() - 1e-9 <= interval["lower"] <= interval["upper"] <= reward.max() + 1e-9


def test_dm_with_perfect_model_is_exact():
    inputs, truth, log = scenario(0, n_rounds=500)
    inputs["estimated_rewards"] = log.expected_reward
    assert DirectMethod().estimate_policy_value(**inputs) == pytest.approx(truth, abs=1e-12)


def test_dr_with_zero_model_is_ips_and_sndr_is_snips():
    inputs, _, _ = scenario(1, n_rounds=500)
    inputs["estimated_rewards"] = np.zeros_like(inputs["action_dist"])
    no_model = {k: v for k, v in inputs.items() if k != "estimated_rewards"}
    assert DoublyRobust().estimate_policy_value(**inputs) == pytest.approx(
        InverseProbabilityWeighting().estimate_policy_value(**no_model), abs=1e-12
    )
    assert SelfNormalizedDoublyRobust().estimate_policy_value(**inputs) == pytest.approx(
        SelfNormalizedIPW().estimate_policy_value(**no_model), abs=1e-12
    )


def test_logging_policy_evaluated_on_itself_gives_mean_reward():
    inputs, _, log = scenario(2, n_rounds=500)
    inputs["action_dist"] = log.pi_b
    assert InverseProbabilityWeighting().estimate_policy_value(**inputs) == pytest.approx(log.reward.mean())
    assert SelfNormalizedIPW().estimate_policy_value(**inputs) == pytest.approx(log.reward.mean())


def test_padded_columns_are_fine():
    # round 0 had 2 candidates, round 1 had 3: column 2 of round 0 is padding
    kwargs = dict(
        reward=np.array([1.0, 0.0]),
        action=np.array([1, 2]),
        pscore=np.array([0.5, 1 / 3]),
        action_dist=np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    )
    assert InverseProbabilityWeighting().estimate_policy_value(**kwargs) == pytest.approx(1.0)


def test_interval_is_seeded_and_accepts_lists():
    inputs, _, _ = scenario(3, n_rounds=300)
    a = DoublyRobust().estimate_interval(**inputs, random_state=7, n_bootstrap_samples=200)
    b = DoublyRobust().estimate_interval(**{k: v.tolist() for k, v in inputs.items()}, random_state=7, n_bootstrap_samples=200)
    c = DoublyRobust().estimate_interval(**inputs, random_state=8, n_bootstrap_samples=200)
    assert a == b and a != c
    assert set(a) == {"mean", "lower", "upper"}


def test_wider_interval_for_smaller_alpha():
    inputs, _, _ = scenario(4, n_rounds=1000)
    narrow = InverseProbabilityWeighting().estimate_interval(**inputs, alpha=0.5)
    wide = InverseProbabilityWeighting().estimate_interval(**inputs, alpha=0.01)
    assert wide["lower"] < narrow["lower"] < narrow["upper"] < wide["upper"]


def test_bootstrap_chunking_matches_unchunked(monkeypatch):
    import bandits.ope.bootstrap as bootstrap

    inputs, _, _ = scenario(5, n_rounds=400)
    whole = SelfNormalizedDoublyRobust().estimate_interval(**inputs, n_bootstrap_samples=64)
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 400 * 5)  # 5 resamples per chunk
    chunked = SelfNormalizedDoublyRobust().estimate_interval(**inputs, n_bootstrap_samples=64)
    assert chunked == pytest.approx(whole)


def test_estimator_registry():
    assert {name: cls.name for name, cls in ESTIMATORS.items()} == {n: n for n in ESTIMATORS}
    assert [cls.requires_estimated_rewards for cls in ESTIMATORS.values()] == [False, False, True, True, True]
