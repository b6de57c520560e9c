"""Doubly robust estimation with optimistic shrinkage (DRos)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms, check_lambda

__all__ = ["DoublyRobustWithShrinkage"]


@dataclass(frozen=True)
class DoublyRobustWithShrinkage(BaseOffPolicyEstimator):
    """DR with each importance weight shrunk to ``lambda_ w / (w^2 + lambda_)``.

    As Open Bandit Pipeline's ``DoublyRobustWithShrinkage`` (Su, Dimakopoulou,
    Krishnamurthy and Dudik 2020): the shrunk weight never exceeds ``sqrt(lambda_) / 2``,
    which bounds the variance of the correction term. ``lambda_ = inf`` is DR,
    ``lambda_ = 0`` is DM. Needs ``estimated_rewards``.

    Args:
        lambda_: the shrinkage hyperparameter (>= 0, inf allowed).

    >>> import numpy as np
    >>> from bandits.ope import DoublyRobustWithShrinkage
    >>> value = DoublyRobustWithShrinkage(lambda_=4.0).estimate_policy_value(
    ...     reward=np.array([1.0, 0.0]),
    ...     action=np.array([0, 1]),
    ...     pscore=np.array([0.5, 0.5]),
    ...     action_dist=np.array([[0.5, 0.5], [0.0, 1.0]]),
    ...     estimated_rewards=np.array([[1.0, 0.0], [0.2, 0.4]]),
    ... )
    >>> round(value, 4)  # weights 1 and 2 shrink to 0.8 and 1.0
    0.25
    """

    lambda_: float
    name = "dros"
    requires_estimated_rewards = True

    def __post_init__(self) -> None:
        check_lambda(self.name, self.lambda_, upper=np.inf)

    def shrunk_weights(self, weights: np.ndarray) -> np.ndarray:
        """(n,) ``lambda_ w / (w^2 + lambda_)``; ``w`` itself when ``lambda_`` is inf, 0 where both are 0."""
        if np.isinf(self.lambda_):
            return weights
        denominator = weights**2 + self.lambda_
        return np.divide(self.lambda_ * weights, denominator, out=np.zeros_like(weights), where=denominator > 0)

    def _terms(self, data: OPEInput) -> Terms:
        residual = data.reward - data.logged_estimated_rewards
        return Terms(direct=data.direct_values, weighted=self.shrunk_weights(data.importance_weights) * residual)
