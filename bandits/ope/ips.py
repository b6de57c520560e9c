"""Inverse probability weighting (IPS / IPW)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandits.errors import BanditError
from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["InverseProbabilityWeighting"]


@dataclass(frozen=True)
class InverseProbabilityWeighting(BaseOffPolicyEstimator):
    """``mean_i w_i r_i`` with ``w_i = action_dist[i, action[i]] / pscore[i]``.

    Unbiased when the logger gave every action the target uses a non-zero
    probability; high variance when propensities are small. ``max_weight``
    clips the weights (biased downwards, lower variance). Shapes: see
    :mod:`bandits.ope.base`.

    Args:
        max_weight: clip importance weights at this value (> 0), or None.

    >>> import numpy as np
    >>> from bandits.ope import InverseProbabilityWeighting
    >>> ips = InverseProbabilityWeighting()
    >>> ips.estimate_policy_value(
    ...     reward=np.array([1.0, 0.0, 1.0]),
    ...     action=np.array([0, 1, 1]),
    ...     pscore=np.array([0.5, 0.5, 0.5]),
    ...     action_dist=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    ... )
    1.3333333333333333
    """

    max_weight: float | None = None
    name = "ips"

    def __post_init__(self) -> None:
        if self.max_weight is not None and (
            isinstance(self.max_weight, bool)
            or not isinstance(self.max_weight, (int, float, np.integer, np.floating))
            or not self.max_weight > 0
        ):
            raise BanditError(f"max_weight must be > 0 or None; got {self.max_weight!r}")

    def _terms(self, data: OPEInput) -> Terms:
        weights = data.importance_weights
        if self.max_weight is not None:
            weights = np.minimum(weights, self.max_weight)
        return Terms(direct=None, weighted=weights * data.reward)
