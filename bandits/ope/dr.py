"""Doubly robust estimation."""

from __future__ import annotations

from dataclasses import dataclass

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["DoublyRobust"]


@dataclass(frozen=True)
class DoublyRobust(BaseOffPolicyEstimator):
    """DM plus an IPS correction of the reward model's error on the logged action.

    ``mean_i [ sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]``: unbiased
    when the propensities are right, low variance when the reward model is.
    Needs ``estimated_rewards`` (n, K). Shapes: see :mod:`bandits.ope.base`.

    >>> import numpy as np
    >>> from bandits.ope import DoublyRobust
    >>> value = DoublyRobust().estimate_policy_value(
    ...     reward=np.array([1.0, 0.0]),
    ...     action=np.array([0, 1]),
    ...     pscore=np.array([0.5, 0.5]),
    ...     action_dist=np.array([[0.5, 0.5], [0.0, 1.0]]),
    ...     estimated_rewards=np.array([[1.0, 0.0], [0.2, 0.4]]),
    ... )
    >>> round(value, 4)
    0.05
    """

    name = "dr"
    requires_estimated_rewards = True

    def _terms(self, data: OPEInput) -> Terms:
        residual = data.reward - data.logged_estimated_rewards
        return Terms(direct=data.direct_values, weighted=data.importance_weights * residual)
