"""Diagnostics: Kish effective sample size and log warnings."""

import numpy as np
import pytest

from bandits import BanditError
from bandits.ope import diagnose, effective_sample_size, importance_weights
from bandits.ope.synthetic import make_synthetic_log

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "weights, expected",
    [
        ([1.0] * 10, 10.0),
        ([2.0] * 10, 10.0),
        ([1.0, 0.0, 0.0], 1.0),
        ([3.0, 1.0], 16 / 10),
        ([0.0, 0.0], 0.0),
    ],
)
def test_effective_sample_size(weights, expected):
    assert effective_sample_size(np.array(weights)) == pytest.approx(expected)


@pytest.mark.parametrize("weights", [[], [[1.0, 2.0]], [1.0, -1.0], [1.0, np.nan]])
def test_effective_sample_size_rejects(weights):
    with pytest.raises(BanditError, match="weights"):
        effective_sample_size(np.array(weights))


def test_clean_log_has_no_warnings():
    log = make_synthetic_log(n_rounds=2000, n_actions=4, seed=0, logging_temperature=5.0)
    assert diagnose(log.pscore, log.action, log.pi_b) == []


def test_tiny_propensities_counted():
    n = 100
    pscore = np.full(n, 0.5)
    pscore[:7] = 0.001
    action = np.zeros(n, dtype=int)
    action_dist = np.tile([0.5, 0.5], (n, 1))
    warnings = diagnose(pscore, action, action_dist)
    assert any("7 of 100 rounds" in w and "below 0.01" in w for w in warnings)
    assert any("barely supports" in w for w in warnings)
    assert any("max importance weight 500" in w for w in warnings)


def test_tiny_propensity_without_target_mass_is_not_unsupported():
    pscore = np.array([0.001, 0.5])
    action_dist = np.array([[0.0, 1.0], [0.0, 1.0]])
    warnings = diagnose(pscore, np.array([0, 1]), action_dist)
    assert any("1 of 2 rounds" in w for w in warnings)
    assert not any("barely supports" in w for w in warnings)


def test_mass_on_never_logged_actions():
    n = 10
    action = np.zeros(n, dtype=int)  # only action 0 ever logged
    action_dist = np.tile([0.7, 0.3, 0.0], (n, 1))  # column 2 is padding
    warnings = diagnose(np.full(n, 0.5), action, action_dist)
    assert any("30.0%" in w and "never logged" in w and "[1]" in w for w in warnings)


def test_low_effective_sample_size():
    n = 1000
    pscore = np.full(n, 0.5)
    pscore[0] = 0.0001
    action_dist = np.tile([1.0, 0.0], (n, 1))
    action_dist[1:] = [0.02, 0.98]
    warnings = diagnose(pscore, np.zeros(n, dtype=int), action_dist)
    assert any("effective sample size" in w for w in warnings)


def test_importance_weights_and_validation():
    w = importance_weights(action=np.array([1, 0]), pscore=np.array([0.5, 0.25]), action_dist=np.array([[0, 1.0], [0.5, 0.5]]))
    np.testing.assert_allclose(w, [2.0, 2.0])
    with pytest.raises(BanditError, match="pscore"):
        diagnose(np.array([0.0]), np.array([0]), np.array([[1.0]]))
