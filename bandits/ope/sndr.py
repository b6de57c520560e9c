"""Self-normalised doubly robust estimation."""

from __future__ import annotations

from dataclasses import dataclass

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["SelfNormalizedDoublyRobust"]


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(BaseOffPolicyEstimator):
    """DR with the correction term divided by the mean importance weight.

    ``mean_i sum_a pi(a|x_i) q(x_i, a) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``
    (as in Open Bandit Pipeline): the correction is a weighted mean of the
    residuals, never beyond the largest of them, where DR's grows with the
    weights. Needs ``estimated_rewards`` (n, K). Shapes: see :mod:`bandits.ope.base`.

    >>> import numpy as np
    >>> from bandits.ope import DoublyRobust, SelfNormalizedDoublyRobust
    >>> log = dict(
    ...     reward=np.array([1.0, 0.0, 1.0]),
    ...     action=np.array([0, 1, 1]),
    ...     pscore=np.array([0.5, 0.5, 0.5]),
    ...     action_dist=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    ...     estimated_rewards=np.full((3, 2), 0.5),
    ... )
    >>> round(SelfNormalizedDoublyRobust().estimate_policy_value(**log), 4)
    1.0
    >>> round(DoublyRobust().estimate_policy_value(**log), 4)  # above the largest reward, 1
    1.1667
    """

    name = "sndr"
    requires_estimated_rewards = True

    def _terms(self, data: OPEInput) -> Terms:
        weights = data.importance_weights
        residual = data.reward - data.logged_estimated_rewards
        return Terms(direct=data.direct_values, weighted=weights * residual, norm=weights)
