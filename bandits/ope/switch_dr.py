"""Switch doubly robust estimation (Switch-DR)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandits.ope.base import BaseOffPolicyEstimator, OPEInput, Terms, check_lambda

__all__ = ["SwitchDoublyRobust"]


@dataclass(frozen=True)
class SwitchDoublyRobust(BaseOffPolicyEstimator):
    """DR whose correction is dropped on rounds whose importance weight exceeds ``lambda_``.

    ``mean_i [ sum_a pi(a|x_i) q(x_i, a) + 1{w_i <= lambda_} w_i (r_i - q(x_i, a_i)) ]``, as
    Open Bandit Pipeline's ``SwitchDoublyRobust`` (Wang, Agarwal and Dudik 2017): rounds with
    a large weight trust the reward model alone. ``lambda_ = inf`` is DR, ``lambda_ = 0`` is DM
    (up to the rounds with weight 0, whose correction is 0 anyway). Needs ``estimated_rewards``.

    Args:
        lambda_: the weight above which a round's correction is dropped (>= 0, inf allowed).

    >>> import numpy as np
    >>> from bandits.ope import SwitchDoublyRobust
    >>> value = SwitchDoublyRobust(lambda_=1.5).estimate_policy_value(
    ...     reward=np.array([1.0, 0.0]),
    ...     action=np.array([0, 1]),
    ...     pscore=np.array([0.5, 0.5]),
    ...     action_dist=np.array([[0.5, 0.5], [0.0, 1.0]]),
    ...     estimated_rewards=np.array([[1.0, 0.0], [0.2, 0.4]]),
    ... )
    >>> round(value, 4)  # round 1 (weight 2) keeps only its DM term
    0.45
    """

    lambda_: float
    name = "switch-dr"
    requires_estimated_rewards = True

    def __post_init__(self) -> None:
        check_lambda(self.name, self.lambda_, upper=np.inf)

    def _terms(self, data: OPEInput) -> Terms:
        weights = data.importance_weights
        residual = data.reward - data.logged_estimated_rewards
        return Terms(direct=data.direct_values, weighted=(weights <= self.lambda_) * weights * residual)
