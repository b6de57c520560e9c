"""Slate estimators: the value of a ranking policy from slates logged one position at a time.

A slate of ``L`` positions is logged as ``L`` rows (:mod:`stream.engine.slates`): row ``(s, j)``
has the item shown at position ``j``, its reward, and the logging policy's probability of that item
*given the items above it*, ``position_pscore`` (so a slate's probability is the product over its
rows). ``evaluation_position_pscore`` is the target's probability of the same item given the same
items above it. The value is the **expected total reward of a slate** (the sum over its positions),
as Open Bandit Pipeline's slate estimators define it.

* :class:`SlateStandardIPS` weighs a slate's total reward by the ratio of the whole slate's
  probabilities, ``prod_j pi_e(a_j | a_<j) / pi_b(a_j | a_<j)``: unbiased for any reward that depends
  on the whole slate, with variance growing with the slate length (Swaminathan et al. 2017's
  baseline; OBP's ``SlateStandardIPS`` given ``pscore`` = the slate's probability).
* :class:`SlateRewardInteractionIPS` weighs position ``j``'s reward by the ratio of the prefix
  ``a_0..a_j`` only: unbiased when a position's reward depends on it and the positions above
  (the cascade assumption; OBP's ``SlateRewardInteractionIPS`` with ``pscore_cascade``), and lower
  variance.

Shapes (n rows, one per (slate, position)): ``slate_id`` (n,) int, ``position`` (n,) int, ``reward``,
``position_pscore`` in (0, 1] and ``evaluation_position_pscore`` in [0, 1], all (n,). Every slate must
have all its positions ``0..L_s-1`` once each (a missing row would leave its probability unknown).

>>> import numpy as np
>>> est = SlateStandardIPS()
>>> est.estimate_policy_value(slate_id=np.array([0, 0, 1, 1]), position=np.array([0, 1, 0, 1]),
...                           reward=np.array([1.0, 0.0, 0.0, 1.0]),
...                           position_pscore=np.array([0.5, 0.5, 0.5, 0.5]),
...                           evaluation_position_pscore=np.array([1.0, 1.0, 0.0, 1.0]))
2.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bandits.errors import BanditError
from bandits.ope.bootstrap import shared_intervals
from bandits.ope.terms import Terms

__all__ = ["SlateStandardIPS", "SlateRewardInteractionIPS", "SLATE_ESTIMATORS", "slate_matrices"]


def _vector(name: str, value: Any, n: int | None, dtype=np.float64) -> np.ndarray:
    array = np.asarray(value, dtype=dtype) if value is not None else None
    if array is None or array.ndim != 1:
        raise BanditError(f"{name} must be a 1-D array; got {None if array is None else array.shape}")
    if n is not None and array.shape[0] != n:
        raise BanditError(f"shape mismatch: {name} has {array.shape[0]} rows, expected {n}")
    if dtype is np.float64 and not np.isfinite(array).all():
        raise BanditError(f"{name} must be finite")
    return array


def slate_matrices(*, slate_id: Any, position: Any, reward: Any, position_pscore: Any,
                   evaluation_position_pscore: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(ratio, reward)``, each (S slates, L positions): ``evaluation_position_pscore / position_pscore`` and the
    reward of each slate's position, 1 and 0 past a slate's last position. Checks every input."""
    slate_id = np.asarray(slate_id)
    if slate_id.ndim != 1 or slate_id.shape[0] == 0:
        raise BanditError(f"slate_id must be a non-empty 1-D array; got shape {slate_id.shape}")
    n = slate_id.shape[0]
    position = _vector("position", position, n, dtype=np.int64)
    reward = _vector("reward", reward, n)
    pscore = _vector("position_pscore", position_pscore, n)
    target = _vector("evaluation_position_pscore", evaluation_position_pscore, n)
    if ((pscore <= 0) | (pscore > 1)).any():
        raise BanditError(f"position_pscore must be in (0, 1]; got {float(pscore[(pscore <= 0) | (pscore > 1)][0])!r}")
    if ((target < 0) | (target > 1 + 1e-9)).any():
        raise BanditError("evaluation_position_pscore must be in [0, 1]")
    if (position < 0).any():
        raise BanditError("position must be >= 0")
    slates, s = np.unique(slate_id, return_inverse=True)
    length = int(position.max()) + 1
    seen = np.zeros((slates.size, length), dtype=np.int64)
    np.add.at(seen, (s, position), 1)
    rows = np.bincount(s, minlength=slates.size)
    top = np.zeros(slates.size, dtype=np.int64)
    np.maximum.at(top, s, position)
    bad = (rows != top + 1) | (seen.max(axis=1) > 1)  # positions 0..top, each once
    if bad.any():
        raise BanditError(f"slate {slates[int(np.argmax(bad))]!r} does not have each of its positions 0..L-1 "
                          "exactly once: its probability is unknown")
    ratio = np.ones((slates.size, length))
    rewards = np.zeros((slates.size, length))
    ratio[s, position] = target / pscore
    rewards[s, position] = reward
    return ratio, rewards


@dataclass(frozen=True)
class _SlateEstimator:
    name: ClassVar[str] = "slate"

    def _slate_terms(self, ratio: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def terms(self, **arrays: Any) -> Terms:
        """Per-slate terms (one row per slate): what the shared bootstrap resamples."""
        return Terms(direct=None, weighted=self._slate_terms(*slate_matrices(**arrays)))

    def estimate_policy_value(self, *, slate_id: Any, position: Any, reward: Any, position_pscore: Any,
                              evaluation_position_pscore: Any) -> float:
        """The target's expected total reward per slate."""
        return self.terms(slate_id=slate_id, position=position, reward=reward, position_pscore=position_pscore,
                          evaluation_position_pscore=evaluation_position_pscore).value()

    def estimate_interval(self, *, slate_id: Any, position: Any, reward: Any, position_pscore: Any,
                          evaluation_position_pscore: Any, alpha: float = 0.05, n_bootstrap_samples: int = 1000,
                          random_state: int = 0) -> dict[str, float]:
        """Percentile-bootstrap (1 - alpha) interval over slates: ``{"mean", "lower", "upper"}``."""
        if not 0 < alpha < 1:
            raise BanditError(f"alpha must be in (0, 1); got {alpha!r}")
        terms = self.terms(slate_id=slate_id, position=position, reward=reward, position_pscore=position_pscore,
                           evaluation_position_pscore=evaluation_position_pscore)
        [(lower, upper)] = shared_intervals([terms], n_bootstrap=n_bootstrap_samples, alpha=alpha, seed=random_state)
        return {"mean": terms.value(), "lower": lower, "upper": upper}


@dataclass(frozen=True)
class SlateStandardIPS(_SlateEstimator):
    """``mean_s (prod_j w_sj) * sum_j r_sj``: the whole slate's importance weight on its total reward."""

    name: ClassVar[str] = "slate-ips"

    def _slate_terms(self, ratio: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return ratio.prod(axis=1) * rewards.sum(axis=1)


@dataclass(frozen=True)
class SlateRewardInteractionIPS(_SlateEstimator):
    """``mean_s sum_j (prod_{l<=j} w_sl) r_sj``: each position's reward weighted by its prefix (cascade)."""

    name: ClassVar[str] = "slate-rips"

    def _slate_terms(self, ratio: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return (np.cumprod(ratio, axis=1) * rewards).sum(axis=1)


SLATE_ESTIMATORS: dict[str, type[_SlateEstimator]] = {"slate-ips": SlateStandardIPS,
                                                      "slate-rips": SlateRewardInteractionIPS}
