"""Shared validation, importance weights and the estimator base class for OPE estimators.

Shapes (n rounds, K action columns):

* ``reward``: (n,) observed reward of the logged action.
* ``action``: (n,) integer column index of the logged action.
* ``pscore``: (n,) logging policy's probability of the logged action, in (0, 1].
* ``action_dist``: (n, K) target policy's probabilities per round; rows sum to 1
  (within 1e-5); columns past a round's candidate count are padded with 0.
* ``estimated_rewards``: (n, K) a reward model's prediction per round and action.

Every estimator writes its value as per-round :class:`~bandits.ope.terms.Terms`,
``mean(direct) + mean(weighted) / mean(norm)``, which lets the bootstrap
(:mod:`bandits.ope.bootstrap`) resample rounds with one matrix product instead
of a Python loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from bandits.checks import finite_array
from bandits.errors import BanditError
from bandits.ope.bootstrap import bootstrap_estimates, percentile_interval
from bandits.ope.terms import Terms

__all__ = [
    "BaseOffPolicyEstimator",
    "OPEInput",
    "Terms",
    "ROW_SUM_TOLERANCE",
    "validate_logged",
    "validate_input",
    "check_lambda",
]

ROW_SUM_TOLERANCE = 1e-5


class OPEInput(NamedTuple):
    """Validated arrays for one evaluation (see the module docstring for shapes)."""

    reward: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    action_dist: np.ndarray
    estimated_rewards: np.ndarray | None

    @property
    def importance_weights(self) -> np.ndarray:
        """(n,) ``action_dist[i, action[i]] / pscore[i]``."""
        return self.action_dist[np.arange(self.action.shape[0]), self.action] / self.pscore

    @property
    def logged_estimated_rewards(self) -> np.ndarray:
        """(n,) the reward model's prediction for the logged action."""
        return self.estimated_rewards[np.arange(self.action.shape[0]), self.action]

    @property
    def direct_values(self) -> np.ndarray:
        """(n,) ``sum_a action_dist[i, a] * estimated_rewards[i, a]``."""
        return np.einsum("ij,ij->i", self.action_dist, self.estimated_rewards)


def _finite_array(name: str, value: Any, ndim: int) -> np.ndarray:
    if value is None:
        raise BanditError(f"{name} is required; got None")
    array = finite_array(name, value, ndim)
    if array.shape[0] == 0:
        raise BanditError(f"{name} is empty: need at least one round")
    return array


def validate_logged(action: Any, pscore: Any, action_dist: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check ``action``, ``pscore`` and ``action_dist``; return them as arrays."""
    pscore = _finite_array("pscore", pscore, 1)
    action_dist = _finite_array("action_dist", action_dist, 2)
    action = np.asarray(action)
    if action.ndim != 1:
        raise BanditError(f"action must be 1-D; got shape {action.shape}")
    if action.dtype == np.bool_ or not np.issubdtype(action.dtype, np.integer):
        raise BanditError(f"action must be integer column indices; got dtype {action.dtype}")
    n = action.shape[0]
    if n == 0:
        raise BanditError("action is empty: need at least one round")
    if pscore.shape[0] != n or action_dist.shape[0] != n:
        raise BanditError(
            f"shape mismatch: action has {n} rounds, pscore {pscore.shape[0]}, action_dist {action_dist.shape[0]}"
        )
    n_actions = action_dist.shape[1]
    out = (action < 0) | (action >= n_actions)
    if out.any():
        raise BanditError(f"action out of range [0, {n_actions}): got {action[out][0]} at round {np.argmax(out)}")
    bad = (pscore <= 0) | (pscore > 1)
    if bad.any():
        raise BanditError(f"pscore must be in (0, 1]; got {float(pscore[bad][0])!r} at round {np.argmax(bad)}")
    if (action_dist < 0).any():
        row = int(np.argwhere(action_dist < 0)[0][0])
        raise BanditError(f"action_dist must be non-negative; got a negative probability in round {row}")
    sums = action_dist.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise BanditError(f"action_dist rows must sum to 1; round {row} sums to {float(sums[row])!r}")
    return action.astype(np.intp, copy=False), pscore, action_dist


def validate_input(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    estimated_rewards: Any = None,
    require_estimated_rewards: bool = False,
    estimator: str = "estimator",
) -> OPEInput:
    """Check every array named in the module docstring; return an :class:`OPEInput`."""
    reward = _finite_array("reward", reward, 1)
    action, pscore, action_dist = validate_logged(action, pscore, action_dist)
    if reward.shape[0] != action.shape[0]:
        raise BanditError(f"shape mismatch: reward has {reward.shape[0]} rounds, action {action.shape[0]}")
    if estimated_rewards is None:
        if require_estimated_rewards:
            raise BanditError(f"{estimator} needs estimated_rewards of shape {action_dist.shape}; got None")
    else:
        estimated_rewards = _finite_array("estimated_rewards", estimated_rewards, 2)
        if estimated_rewards.shape != action_dist.shape:
            raise BanditError(
                f"shape mismatch: estimated_rewards has shape {estimated_rewards.shape}, "
                f"action_dist {action_dist.shape}"
            )
    return OPEInput(reward, action, pscore, action_dist, estimated_rewards)


def check_lambda(estimator: str, value: Any, *, upper: float) -> float:
    """``value`` if it is a number in ``[0, upper]`` (inf allowed when ``upper`` is), else a BanditError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value <= upper:
        raise BanditError(f"{estimator}: lambda must be a number in [0, {upper:g}]; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BaseOffPolicyEstimator(ABC):
    """One estimator: ``estimate_policy_value`` and a bootstrap ``estimate_interval``.

    Subclasses set ``name`` and implement :meth:`_terms`; DM/DR/SNDR also set
    ``requires_estimated_rewards``.
    """

    name: ClassVar[str] = "estimator"
    requires_estimated_rewards: ClassVar[bool] = False

    @abstractmethod
    def _terms(self, data: OPEInput) -> Terms:
        """The per-round terms of this estimator."""

    def _prepare(self, reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any) -> Terms:
        data = validate_input(
            reward=reward,
            action=action,
            pscore=pscore,
            action_dist=action_dist,
            estimated_rewards=estimated_rewards,
            require_estimated_rewards=self.requires_estimated_rewards,
            estimator=self.name,
        )
        return self._terms(data)

    def estimate_policy_value(
        self,
        *,
        reward: np.ndarray,
        action: np.ndarray,
        pscore: np.ndarray,
        action_dist: np.ndarray,
        estimated_rewards: np.ndarray | None = None,
    ) -> float:
        """The target policy's estimated value (mean reward per round)."""
        return self._checked_value(self._prepare(reward, action, pscore, action_dist, estimated_rewards))

    def _checked_value(self, terms: Terms) -> float:
        value = terms.value()
        if np.isnan(value):
            raise BanditError(
                f"{self.name} is undefined: the importance weights sum to 0 "
                "(the target policy puts no mass on any logged action)"
            )
        return value

    def value_and_terms(self, data: OPEInput) -> tuple[float, Terms]:
        """The value and the per-round terms on arrays already validated (:func:`validate_input`): what
        a caller evaluating many estimators on the same arrays uses to check them once, not per estimator."""
        if self.requires_estimated_rewards and data.estimated_rewards is None:
            raise BanditError(f"{self.name} needs estimated_rewards of shape {data.action_dist.shape}; got None")
        terms = self._terms(data)
        return self._checked_value(terms), terms

    def estimate_interval(
        self,
        *,
        reward: np.ndarray,
        action: np.ndarray,
        pscore: np.ndarray,
        action_dist: np.ndarray,
        estimated_rewards: np.ndarray | None = None,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 1000,
        random_state: int | np.random.Generator = 0,
    ) -> dict[str, float]:
        """Percentile-bootstrap (1 - alpha) interval: ``{"mean", "lower", "upper"}``.

        ``mean`` is the mean of the bootstrap estimates (as in Open Bandit
        Pipeline). Resamples whose importance weights sum to 0 (possible for
        SNIPS/SNDR) are left out.
        """
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0.0 < alpha < 1.0:
            raise BanditError(f"alpha must be in (0, 1); got {alpha!r}")
        if (
            isinstance(n_bootstrap_samples, bool)
            or not isinstance(n_bootstrap_samples, (int, np.integer))
            or n_bootstrap_samples < 1
        ):
            raise BanditError(f"n_bootstrap_samples must be a positive integer; got {n_bootstrap_samples!r}")
        if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer, np.random.Generator)):
            raise BanditError(f"random_state must be an int or numpy Generator; got {random_state!r}")
        terms = self._prepare(reward, action, pscore, action_dist, estimated_rewards)
        samples = bootstrap_estimates([terms], n_bootstrap=int(n_bootstrap_samples), seed=random_state)[:, 0]
        lower, upper = percentile_interval(samples, alpha)
        if np.isnan(lower):
            raise BanditError(f"{self.name} is undefined on every bootstrap sample: importance weights sum to 0")
        return {"mean": float(np.nanmean(samples)), "lower": lower, "upper": upper}
