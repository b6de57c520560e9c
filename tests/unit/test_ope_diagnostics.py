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


def test_every_warning_line_exactly():
    # round 1: propensity 0.001 < 0.01 with target mass (weight 1000 > 100); column 1 is never logged
    lines = diagnose(np.array([0.5, 0.001]), np.array([0, 0]), np.array([[0.5, 0.5], [1.0, 0.0]]))
    assert lines == [
        "1 of 2 rounds (50.0%) have a logging propensity below 0.01 (smallest 0.001)",
        "1 of 2 rounds give the logged action target probability > 0 with a logging propensity below 0.01: "
        "the logger barely supports what the target plays",
        "25.0% of the target policy's mass is on action columns never logged in these data ([1]): "
        "IPS/SNIPS cannot see it, DM/DR rely on the reward model there",
        "max importance weight 1000 exceeds 100 (round 1)",
    ]


def test_thresholds_are_strict():
    # a propensity of exactly min_pscore and a weight of exactly max_weight (1 / 0.01 = 100) pass
    assert diagnose(np.array([0.01, 1.0]), np.array([0, 0]), np.array([[1.0, 0.0], [1.0, 0.0]])) == []
    # the default max_weight is 100: a weight of 100.5 is flagged
    lines = diagnose(np.array([1 / 100.5, 1.0]), np.array([0, 0]), np.array([[1.0, 0.0], [1.0, 0.0]]),
                     min_pscore=0.001)
    assert lines == ["max importance weight 100.5 exceeds 100 (round 0)"]
    # unseen mass of exactly 1e-9 is rounding, not a warning
    assert diagnose(np.array([1.0]), np.array([0]), np.array([[1.0 - 1e-9, 1e-9]])) == []


def test_never_logged_columns_are_listed_up_to_ten():
    def unseen(n_columns):
        k = n_columns + 1  # column 0 is the only one logged
        dist = np.full((1, k), 0.5 / n_columns)
        dist[0, 0] = 0.5
        (line,) = diagnose(np.array([1.0]), np.array([0]), dist, min_ess_fraction=0.0)
        return line

    assert "([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])" in unseen(10)
    assert "([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, '...'])" in unseen(11)
    assert unseen(2).startswith(
        "50.0% of the target policy's mass is on action columns never logged in these data ([1, 2])"
    )


def test_effective_sample_size_line_and_its_strict_bound():
    n = 20
    action = np.zeros(n, dtype=int)
    dist = np.tile([0.0, 1.0], (n, 1))
    dist[0] = [1.0, 0.0]  # one round carries all the weight: ESS = 1 = 5% of 20, not below it
    lines = diagnose(np.full(n, 0.5), action, dist)
    assert not any("effective sample size" in line for line in lines)
    lines = diagnose(np.full(n, 0.5), action, dist, min_ess_fraction=0.1)
    assert lines[-1] == (
        "effective sample size 1.0 is below 10% of the 20 rounds: estimates rest on a few heavily weighted rounds"
    )


def test_effective_sample_size_message_and_integer_weights():
    assert effective_sample_size([3, 1]) == pytest.approx(1.6)
    with pytest.raises(BanditError) as info:
        effective_sample_size([1.0, -1.0])
    assert str(info.value) == "weights must be finite and non-negative; got NaN, inf or a negative weight"
