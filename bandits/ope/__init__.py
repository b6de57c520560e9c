"""Off-policy estimators shaped like Open Bandit Pipeline's, vectorised numpy.

Each estimator has ``estimate_policy_value(*, reward, action, pscore,
action_dist, estimated_rewards=None)`` and ``estimate_interval(..., alpha,
n_bootstrap_samples, random_state)``; shapes are in :mod:`bandits.ope.base`.

>>> sorted(ESTIMATORS)
['dm', 'dr', 'ips', 'sndr', 'snips']
"""

from bandits.ope.base import BaseOffPolicyEstimator
from bandits.ope.diagnostics import diagnose, effective_sample_size, importance_weights
from bandits.ope.dm import DirectMethod
from bandits.ope.dr import DoublyRobust
from bandits.ope.ips import InverseProbabilityWeighting
from bandits.ope.snips import SelfNormalizedIPW
from bandits.ope.sndr import SelfNormalizedDoublyRobust

ESTIMATORS: dict[str, type[BaseOffPolicyEstimator]] = {
    "ips": InverseProbabilityWeighting,
    "snips": SelfNormalizedIPW,
    "dm": DirectMethod,
    "dr": DoublyRobust,
    "sndr": SelfNormalizedDoublyRobust,
}

__all__ = [
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "DoublyRobust",
    "ESTIMATORS",
    "InverseProbabilityWeighting",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedIPW",
    "diagnose",
    "effective_sample_size",
    "importance_weights",
]
