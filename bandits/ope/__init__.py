"""Off-policy estimators shaped like Open Bandit Pipeline's, vectorised numpy.

Each estimator has ``estimate_policy_value(*, reward, action, pscore,
action_dist, estimated_rewards=None)`` and ``estimate_interval(..., alpha,
n_bootstrap_samples, random_state)``; shapes are in :mod:`bandits.ope.base`.
Its hyperparameters are its constructor arguments; :func:`make_estimator`
builds one from a spec such as ``"switch-dr:lambda=100"``. The slate estimators
(:mod:`bandits.ope.slate`, ``SLATE_ESTIMATORS``) take slates logged position by position instead.

>>> sorted(ESTIMATORS)
['dm', 'dr', 'dros', 'ips', 'sg-dr', 'sg-ips', 'sndr', 'snips', 'switch-dr']
>>> make_estimator("dros:lambda=10")
DoublyRobustWithShrinkage(lambda_=10.0)
"""

from typing import Any

from bandits.errors import BanditError
from bandits.factory import parse_spec
from bandits.ope.base import BaseOffPolicyEstimator
from bandits.ope.diagnostics import diagnose, effective_sample_size, importance_weights
from bandits.ope.dm import DirectMethod
from bandits.ope.dr import DoublyRobust
from bandits.ope.dros import DoublyRobustWithShrinkage
from bandits.ope.ips import InverseProbabilityWeighting
from bandits.ope.slate import SLATE_ESTIMATORS, SlateRewardInteractionIPS, SlateStandardIPS
from bandits.ope.snips import SelfNormalizedIPW
from bandits.ope.sndr import SelfNormalizedDoublyRobust
from bandits.ope.subgaussian import SubGaussianDoublyRobust, SubGaussianIPW
from bandits.ope.switch_dr import SwitchDoublyRobust

ESTIMATORS: dict[str, type[BaseOffPolicyEstimator]] = {
    "ips": InverseProbabilityWeighting,
    "snips": SelfNormalizedIPW,
    "dm": DirectMethod,
    "dr": DoublyRobust,
    "sndr": SelfNormalizedDoublyRobust,
    "switch-dr": SwitchDoublyRobust,
    "dros": DoublyRobustWithShrinkage,
    "sg-ips": SubGaussianIPW,
    "sg-dr": SubGaussianDoublyRobust,
}

HYPERPARAMETERS: dict[str, tuple[str, ...]] = {"ips": ("max_weight",), "switch-dr": ("lambda",), "dros": ("lambda",),
                                               "sg-ips": ("lambda",), "sg-dr": ("lambda",)}
"""The spec keys of each estimator; ``lambda`` (a Python keyword) is the field ``lambda_``, as in OBP."""


def make_estimator(spec: str) -> BaseOffPolicyEstimator:
    """An estimator from ``"name"`` or ``"name:key=value,..."``; ``lambda`` is required where it exists.

    >>> make_estimator("ips:max_weight=50")
    InverseProbabilityWeighting(max_weight=50.0)
    >>> make_estimator("switch-dr")
    Traceback (most recent call last):
    ...
    bandits.errors.BanditError: switch-dr needs lambda, e.g. 'switch-dr:lambda=100'
    """
    name, params = parse_spec(spec)
    name = name.lower()
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise BanditError(f"unknown estimator {name!r}; expected one of {list(ESTIMATORS)}")
    allowed = HYPERPARAMETERS.get(name, ())
    for key in params:
        if key not in allowed:
            raise BanditError(f"unknown parameter {key!r} for estimator {name!r}; expected one of {list(allowed)}")
    if "lambda" in allowed and "lambda" not in params:
        raise BanditError(f"{name} needs lambda, e.g. '{name}:lambda={100 if name in ('switch-dr', 'dros') else 0.1}'")
    kwargs: dict[str, Any] = {("lambda_" if k == "lambda" else k): (float(v) if isinstance(v, int) else v)
                              for k, v in params.items()}
    return cls(**kwargs)


__all__ = [
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "ESTIMATORS",
    "HYPERPARAMETERS",
    "InverseProbabilityWeighting",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedIPW",
    "SLATE_ESTIMATORS",
    "SlateRewardInteractionIPS",
    "SlateStandardIPS",
    "SubGaussianDoublyRobust",
    "SubGaussianIPW",
    "SwitchDoublyRobust",
    "diagnose",
    "effective_sample_size",
    "importance_weights",
    "make_estimator",
]
