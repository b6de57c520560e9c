"""Sub-Gaussian importance weighting (Metelli, Russo and Restelli 2021): IPS and DR with power-mean weights.

Both estimators replace each importance weight ``w`` by
``w / (1 - lambda_ + lambda_ w)`` (a smooth correction that bounds the weight by
``1 / lambda_``), as Open Bandit Pipeline's ``SubGaussianInverseProbabilityWeighting``
and ``SubGaussianDoublyRobust``. ``lambda_ = 0`` gives IPS and DR back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms, check_lambda

__all__ = ["SubGaussianIPW", "SubGaussianDoublyRobust", "subgaussian_weights"]


def subgaussian_weights(weights: np.ndarray, lambda_: float) -> np.ndarray:
    """(n,) ``w / (1 - lambda_ + lambda_ w)``; 0 where ``w`` is 0 (``lambda_ = 1`` would give 0/0).

    >>> subgaussian_weights(np.array([0.0, 1.0, 4.0]), 0.5).tolist()
    [0.0, 1.0, 1.6]
    """
    denominator = 1.0 - lambda_ + lambda_ * weights
    return np.divide(weights, denominator, out=np.zeros_like(weights), where=denominator > 0)


@dataclass(frozen=True)
class SubGaussianIPW(BaseOffPolicyEstimator):
    """``mean_i w'_i r_i`` with the sub-Gaussian weight ``w'`` (see the module docstring).

    Args:
        lambda_: in [0, 1]; 0 is IPS.

    >>> import numpy as np
    >>> SubGaussianIPW(lambda_=0.5).estimate_policy_value(
    ...     reward=np.array([1.0, 0.0, 1.0]),
    ...     action=np.array([0, 1, 1]),
    ...     pscore=np.array([0.5, 0.5, 0.5]),
    ...     action_dist=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    ... )
    0.8888888888888888
    """

    lambda_: float
    name = "sg-ips"

    def __post_init__(self) -> None:
        check_lambda(self.name, self.lambda_, upper=1.0)

    def _terms(self, data: OPEInput) -> Terms:
        return Terms(direct=None, weighted=subgaussian_weights(data.importance_weights, self.lambda_) * data.reward)


@dataclass(frozen=True)
class SubGaussianDoublyRobust(BaseOffPolicyEstimator):
    """DR with the sub-Gaussian weight ``w'`` in its correction term. Needs ``estimated_rewards``.

    Args:
        lambda_: in [0, 1]; 0 is DR.
    """

    lambda_: float
    name = "sg-dr"
    requires_estimated_rewards = True

    def __post_init__(self) -> None:
        check_lambda(self.name, self.lambda_, upper=1.0)

    def _terms(self, data: OPEInput) -> Terms:
        residual = data.reward - data.logged_estimated_rewards
        weights = subgaussian_weights(data.importance_weights, self.lambda_)
        return Terms(direct=data.direct_values, weighted=weights * residual)
