"""Self-normalised doubly robust estimation."""

from __future__ import annotations

from dataclasses import dataclass

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["SelfNormalizedDoublyRobust"]


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(BaseOffPolicyEstimator):
    """DR with the correction term divided by the mean importance weight.

    ``mean_i sum_a pi(a|x_i) q(x_i, a) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``
    (as in Open Bandit Pipeline). Needs ``estimated_rewards`` (n, K). Shapes:
    see :mod:`bandits.ope.base`.

    >>> import numpy as np
    >>> from bandits.ope import SelfNormalizedDoublyRobust
    >>> value = SelfNormalizedDoublyRobust().estimate_policy_value(
    ...     reward=np.array([1.0, 0.0]),
    ...     action=np.array([0, 1]),
    ...     pscore=np.array([0.5, 0.5]),
    ...     action_dist=np.array([[0.5, 0.5], [0.0, 1.0]]),
    ...     estimated_rewards=np.array([[1.0, 0.0], [0.2, 0.4]]),
    ... )
    >>> round(value, 4)
    0.1833
    """

    name = "sndr"
    requires_estimated_rewards = True

    def _terms(self, data: OPEInput) -> Terms:
        weights = data.importance_weights
        residual = data.reward - data.logged_estimated_rewards
        return Terms(direct=data.direct_values, weighted=weights * residual, norm=weights)
