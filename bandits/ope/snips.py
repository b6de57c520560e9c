"""Self-normalised inverse probability weighting (SNIPS / SNIPW)."""

from __future__ import annotations

from dataclasses import dataclass

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["SelfNormalizedIPW"]


@dataclass(frozen=True)
class SelfNormalizedIPW(BaseOffPolicyEstimator):
    """``sum_i w_i r_i / sum_i w_i``: a weighted mean of logged rewards.

    Slightly biased, but always within [min reward, max reward] and far less
    variable than IPS when weights are large. Undefined (BanditError) when
    every weight is 0. Shapes: see :mod:`bandits.ope.base`.

    >>> import numpy as np
    >>> from bandits.ope import SelfNormalizedIPW
    >>> SelfNormalizedIPW().estimate_policy_value(
    ...     reward=np.array([1.0, 0.0, 1.0]),
    ...     action=np.array([0, 1, 1]),
    ...     pscore=np.array([0.5, 0.5, 0.5]),
    ...     action_dist=np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    ... )
    1.0
    """

    name = "snips"

    def _terms(self, data: OPEInput) -> Terms:
        weights = data.importance_weights
        return Terms(direct=None, weighted=weights * data.reward, norm=weights)
