"""Direct method: the reward model's value of the target policy."""

from __future__ import annotations

from dataclasses import dataclass

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms

__all__ = ["DirectMethod"]


@dataclass(frozen=True)
class DirectMethod(BaseOffPolicyEstimator):
    """``mean_i sum_a action_dist[i, a] * estimated_rewards[i, a]``.

    Low variance, and needs no propensities (they are still validated), but
    biased by whatever the reward model gets wrong. Needs
    ``estimated_rewards`` (n, K). Shapes: see :mod:`bandits.ope.base`.

    >>> import numpy as np
    >>> from bandits.ope import DirectMethod
    >>> DirectMethod().estimate_policy_value(
    ...     reward=np.array([1.0, 0.0]),
    ...     action=np.array([0, 1]),
    ...     pscore=np.array([0.5, 0.5]),
    ...     action_dist=np.array([[0.5, 0.5], [0.0, 1.0]]),
    ...     estimated_rewards=np.array([[1.0, 0.0], [0.2, 0.4]]),
    ... )
    0.45
    """

    name = "dm"
    requires_estimated_rewards = True

    def _terms(self, data: OPEInput) -> Terms:
        return Terms(direct=data.direct_values, weighted=None)
