"""Switch-DR, DRos and the sub-Gaussian IPS/DR: OBP's formulas written out by hand, limits, bounds, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.ope import (
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SubGaussianDoublyRobust,
    SubGaussianIPW,
    SwitchDoublyRobust,
)
from bandits.ope.synthetic import make_synthetic_log, policy_value

pytestmark = pytest.mark.unit


def inputs(seed=0, n=2000, k=4):
    log = make_synthetic_log(n_rounds=n, n_actions=k, seed=seed)
    rng = np.random.default_rng(seed + 1)
    dist = rng.dirichlet(np.ones(k) * 0.3, size=n)  # peaked targets: weights spread from ~0 to large
    q = np.clip(log.expected_reward + rng.normal(0, 0.1, (n, k)), 0, 1)
    return dict(reward=log.reward, action=log.action, pscore=log.pscore, action_dist=dist, estimated_rewards=q), log


def parts(x):
    rows = np.arange(len(x["reward"]))
    w = x["action_dist"][rows, x["action"]] / x["pscore"]
    q = x["estimated_rewards"]
    direct = (x["action_dist"] * q).sum(axis=1)
    residual = x["reward"] - q[rows, x["action"]]
    return w, direct, residual


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0, 7.5])
def test_switch_dr_is_obps_formula(lam):
    x, _ = inputs()
    w, direct, residual = parts(x)
    expected = np.mean(direct + (w <= lam) * w * residual)
    assert SwitchDoublyRobust(lambda_=lam).estimate_policy_value(**x) == pytest.approx(expected, abs=1e-12)


def test_switch_dr_keeps_a_round_whose_weight_equals_lambda():
    x = dict(reward=np.array([1.0, 0.0]), action=np.array([0, 0]), pscore=np.array([0.5, 0.5]),
             action_dist=np.array([[1.0, 0.0], [0.5, 0.5]]), estimated_rewards=np.array([[0.5, 0.5], [0.5, 0.5]]))
    # weights 2 and 1; lambda 2 keeps both corrections: 0.5 + mean(2 * 0.5, 1 * -0.5)
    assert SwitchDoublyRobust(lambda_=2.0).estimate_policy_value(**x) == pytest.approx(0.75)
    assert SwitchDoublyRobust(lambda_=1.999).estimate_policy_value(**x) == pytest.approx(0.25)


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0, 100.0])
def test_dros_is_obps_formula_and_its_weights_are_bounded(lam):
    x, _ = inputs()
    w, direct, residual = parts(x)
    shrunk = lam * w / (w**2 + lam)
    expected = np.mean(direct + shrunk * residual)
    assert DoublyRobustWithShrinkage(lambda_=lam).estimate_policy_value(**x) == pytest.approx(expected, abs=1e-12)
    assert DoublyRobustWithShrinkage(lambda_=lam).shrunk_weights(w).max() <= np.sqrt(lam) / 2 + 1e-12


@pytest.mark.parametrize("lam", [0.05, 0.3, 1.0])
def test_subgaussian_estimators_are_obps_formulas(lam):
    x, _ = inputs()
    w, direct, residual = parts(x)
    shrunk = w / (1 - lam + lam * w)
    plain = {k: v for k, v in x.items() if k != "estimated_rewards"}
    assert SubGaussianIPW(lambda_=lam).estimate_policy_value(**plain) == pytest.approx(np.mean(shrunk * x["reward"]),
                                                                                       abs=1e-12)
    assert SubGaussianDoublyRobust(lambda_=lam).estimate_policy_value(**x) == pytest.approx(
        np.mean(direct + shrunk * residual), abs=1e-12)


def test_limits_give_dr_dm_and_ips_back():
    x, _ = inputs(seed=4)
    plain = {k: v for k, v in x.items() if k != "estimated_rewards"}
    dr = DoublyRobust().estimate_policy_value(**x)
    dm = DirectMethod().estimate_policy_value(**x)
    assert SwitchDoublyRobust(lambda_=np.inf).estimate_policy_value(**x) == pytest.approx(dr, abs=1e-12)
    assert DoublyRobustWithShrinkage(lambda_=np.inf).estimate_policy_value(**x) == pytest.approx(dr, abs=1e-12)
    assert DoublyRobustWithShrinkage(lambda_=0.0).estimate_policy_value(**x) == pytest.approx(dm, abs=1e-12)
    assert SubGaussianDoublyRobust(lambda_=0.0).estimate_policy_value(**x) == pytest.approx(dr, abs=1e-12)
    assert SubGaussianIPW(lambda_=0.0).estimate_policy_value(**plain) == pytest.approx(
        InverseProbabilityWeighting().estimate_policy_value(**plain), abs=1e-12)
    w, _, _ = parts(x)
    assert SwitchDoublyRobust(lambda_=w.min() / 2).estimate_policy_value(**x) == pytest.approx(dm, abs=1e-12)


def test_a_zero_weight_with_lambda_at_its_edge_is_zero_not_nan():
    x = dict(reward=np.array([1.0, 1.0]), action=np.array([0, 1]), pscore=np.array([0.5, 0.5]),
             action_dist=np.array([[0.0, 1.0], [0.0, 1.0]]), estimated_rewards=np.zeros((2, 2)))
    plain = {k: v for k, v in x.items() if k != "estimated_rewards"}
    assert SubGaussianIPW(lambda_=1.0).estimate_policy_value(**plain) == pytest.approx(0.5)  # weights 0 and 1
    assert DoublyRobustWithShrinkage(lambda_=0.0).estimate_policy_value(**x) == 0.0


@pytest.mark.parametrize("estimator", [SwitchDoublyRobust(lambda_=50.0), DoublyRobustWithShrinkage(lambda_=200.0),
                                       SubGaussianDoublyRobust(lambda_=0.01)])
def test_intervals_cover_the_truth_when_little_is_shrunk(estimator):
    covered = 0
    for seed in range(10):
        x, log = inputs(seed=seed, n=3000)
        truth = policy_value(x["action_dist"], log.expected_reward)
        interval = estimator.estimate_interval(**x, n_bootstrap_samples=400, random_state=seed)
        covered += interval["lower"] <= truth <= interval["upper"]
        assert interval["lower"] <= estimator.estimate_policy_value(**x) <= interval["upper"]
    assert covered >= 8
