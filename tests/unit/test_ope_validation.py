"""Invalid inputs to every estimator: each raises BanditError naming the problem."""

import numpy as np
import pytest

from bandits import BanditError
from bandits.ope import ESTIMATORS, InverseProbabilityWeighting, SelfNormalizedIPW, make_estimator

LAMBDA = {"switch-dr": 3.0, "dros": 5.0, "sg-ips": 0.2, "sg-dr": 0.2}


def make(name):
    """Every estimator, with a non-trivial lambda where it has one."""
    return make_estimator(f"{name}:lambda={LAMBDA[name]}" if name in LAMBDA else name)
from bandits.ope.base import validate_input, validate_logged

pytestmark = pytest.mark.unit


def valid():
    return dict(
        reward=np.array([1.0, 0.0, 1.0]),
        action=np.array([0, 1, 2]),
        pscore=np.array([0.5, 0.25, 0.25]),
        action_dist=np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]),
        estimated_rewards=np.full((3, 3), 0.5),
    )


def edit(**changes):
    inputs = valid()
    inputs.update(changes)
    return inputs


INVALID = [
    ("pscore zero", edit(pscore=np.array([0.5, 0.0, 0.25])), "pscore"),
    ("pscore negative", edit(pscore=np.array([0.5, -0.1, 0.25])), "pscore"),
    ("pscore above one", edit(pscore=np.array([0.5, 1.5, 0.25])), "pscore"),
    ("pscore nan", edit(pscore=np.array([0.5, np.nan, 0.25])), "pscore"),
    ("reward nan", edit(reward=np.array([1.0, np.nan, 0.0])), "reward"),
    ("reward inf", edit(reward=np.array([1.0, np.inf, 0.0])), "reward"),
    ("action_dist nan", edit(action_dist=np.array([[np.nan, 0.5, 0.5], [0, 1, 0], [0, 0, 1.0]])), "action_dist"),
    ("estimated_rewards inf", edit(estimated_rewards=np.full((3, 3), np.inf)), "estimated_rewards"),
    ("reward too short", edit(reward=np.array([1.0, 0.0])), "shape mismatch"),
    ("pscore too long", edit(pscore=np.array([0.5, 0.5, 0.5, 0.5])), "shape mismatch"),
    ("action_dist rows", edit(action_dist=np.full((2, 3), 1 / 3)), "shape mismatch"),
    ("estimated_rewards columns", edit(estimated_rewards=np.zeros((3, 4))), "estimated_rewards"),
    ("reward 2-D", edit(reward=np.ones((3, 1))), "reward"),
    ("action_dist 1-D", edit(action_dist=np.ones(3) / 3), "action_dist"),
    ("action out of range", edit(action=np.array([0, 1, 3])), "action out of range"),
    ("action negative", edit(action=np.array([0, -1, 2])), "action out of range"),
    ("action float", edit(action=np.array([0.0, 1.0, 2.0])), "action"),
    ("action bool", edit(action=np.array([True, False, True])), "action"),
    ("rows not summing to 1", edit(action_dist=np.array([[0.2, 0.3, 0.4], [0, 1, 0], [0, 0, 1.0]])), "sum to 1"),
    ("negative probability", edit(action_dist=np.array([[-0.2, 0.7, 0.5], [0, 1, 0], [0, 0, 1.0]])), "non-negative"),
    ("reward missing", edit(reward=None), "reward"),
    ("reward strings", edit(reward=np.array(["a", "b", "c"])), "reward"),
    (
        "empty",
        dict(reward=np.array([]), action=np.array([], dtype=int), pscore=np.array([]), action_dist=np.zeros((0, 3)),
             estimated_rewards=np.zeros((0, 3))),
        "empty",
    ),
]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("case, inputs, needle", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_inputs_raise(name, case, inputs, needle):
    estimator = make(name)
    with pytest.raises(BanditError, match=needle):
        estimator.estimate_policy_value(**inputs)
    with pytest.raises(BanditError, match=needle):
        estimator.estimate_interval(**inputs, n_bootstrap_samples=10)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_valid_inputs_pass(name):
    assert np.isfinite(make(name).estimate_policy_value(**valid()))


@pytest.mark.parametrize("name", ["dm", "dr", "sndr", "switch-dr", "dros", "sg-dr"])
def test_missing_estimated_rewards_is_named(name):
    inputs = valid()
    del inputs["estimated_rewards"]
    with pytest.raises(BanditError, match="estimated_rewards"):
        make(name).estimate_policy_value(**inputs)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.0), "alpha"),
        (dict(alpha=-0.5), "alpha"),
        (dict(alpha="0.05"), "alpha"),
        (dict(n_bootstrap_samples=0), "n_bootstrap_samples"),
        (dict(n_bootstrap_samples=10.5), "n_bootstrap_samples"),
        (dict(random_state=None), "random_state"),
        (dict(random_state="seed"), "random_state"),
    ],
)
def test_invalid_interval_arguments(kwargs, needle):
    with pytest.raises(BanditError, match=needle):
        InverseProbabilityWeighting().estimate_interval(**valid(), **kwargs)


@pytest.mark.parametrize("max_weight", [0, -1.0, "10", True])
def test_invalid_max_weight(max_weight):
    with pytest.raises(BanditError, match="max_weight"):
        InverseProbabilityWeighting(max_weight=max_weight)


@pytest.mark.parametrize("name, value", [
    ("switch-dr", -1.0), ("switch-dr", float("nan")), ("switch-dr", "1"), ("switch-dr", True),
    ("dros", -0.1), ("sg-ips", 1.5), ("sg-ips", -0.1), ("sg-dr", 2), ("sg-dr", float("inf")),
])
def test_invalid_lambda(name, value):
    with pytest.raises(BanditError, match=rf"{name}: lambda must be a number in \[0, "):
        ESTIMATORS[name](lambda_=value)


def test_snips_undefined_when_weights_are_zero():
    inputs = edit(action_dist=np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(BanditError, match="sum to 0"):
        SelfNormalizedIPW().estimate_policy_value(**inputs)


def test_keyword_only():
    inputs = valid()
    with pytest.raises(TypeError):
        InverseProbabilityWeighting().estimate_policy_value(*inputs.values())


def test_inputs_are_not_mutated():
    inputs = valid()
    for a in inputs.values():
        a.flags.writeable = False
    for name in ESTIMATORS:
        make(name).estimate_interval(**inputs, n_bootstrap_samples=20)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(pscore=np.array([0.5, 0.0, 0.25])), "pscore must be in (0, 1]; got 0.0 at round 1"),
        (dict(pscore=np.array([0.5, np.nan, 0.25])), "pscore must be finite; got nan at index [1]"),
        (dict(pscore=np.array([0.5, 0.5])), "shape mismatch: action has 3 rounds, pscore 2, action_dist 3"),
        (dict(action_dist=np.full((2, 4), 0.25)), "shape mismatch: action has 3 rounds, pscore 3, action_dist 2"),
        (dict(action=np.array([[0, 1, 2]])), "action must be 1-D; got shape (1, 3)"),
        (dict(action=np.array([0, 3, 1])), "action out of range [0, 3): got 3 at round 1"),
        (dict(reward=np.array([1.0, np.nan, 0.0])), "reward must be finite; got nan at index [1]"),
        (dict(estimated_rewards=np.full((3, 3), np.inf)), "estimated_rewards must be finite; got inf at index [0, 0]"),
        (dict(action_dist=np.ones(3) / 3), "action_dist must be 2-D; got shape (3,)"),
        (
            # round 1 holds a zero before round 2's negative entry: the message names round 2
            dict(action_dist=np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [-0.5, 1.0, 0.5]])),
            "action_dist must be non-negative; got a negative probability in round 2",
        ),
        (
            dict(action_dist=np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [0.3, 0.3, 0.3]])),
            "action_dist rows must sum to 1; round 2 sums to 0.8999999999999999",
        ),
    ],
)
def test_exact_messages(changes, message):
    with pytest.raises(BanditError) as info:
        InverseProbabilityWeighting().estimate_policy_value(**edit(**changes))
    assert str(info.value) == message


def test_empty_action_is_named():
    with pytest.raises(BanditError) as info:
        validate_logged(np.array([], dtype=int), np.array([0.5]), np.array([[1.0]]))
    assert str(info.value) == "action is empty: need at least one round"


def test_validate_input_defaults():
    inputs = valid()
    del inputs["estimated_rewards"]
    assert validate_input(**inputs).estimated_rewards is None  # not required by default
    with pytest.raises(BanditError) as info:
        validate_input(**inputs, require_estimated_rewards=True)
    assert str(info.value) == "estimator needs estimated_rewards of shape (3, 3); got None"
