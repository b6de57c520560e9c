"""Checks to run on a log before trusting an off-policy estimate."""

from __future__ import annotations

from typing import Any

import numpy as np

from bandits.errors import BanditError
from bandits.ope.base import validate_logged

__all__ = ["effective_sample_size", "importance_weights", "diagnose"]


def effective_sample_size(weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 when every weight is 0).

    Equal weights give n; one dominant weight gives about 1.

    >>> effective_sample_size([1.0, 1.0, 1.0, 1.0])
    4.0
    >>> round(effective_sample_size([100.0, 1.0, 1.0, 1.0]), 2)
    1.06
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise BanditError(f"weights must be a non-empty 1-D array; got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise BanditError("weights must be finite and non-negative; got NaN, inf or a negative weight")
    square_sum = float(np.sum(w * w))
    return 0.0 if square_sum == 0.0 else float(np.sum(w)) ** 2 / square_sum


def importance_weights(*, action: Any, pscore: Any, action_dist: Any) -> np.ndarray:
    """(n,) ``action_dist[i, action[i]] / pscore[i]`` after validating the three arrays."""
    action, pscore, action_dist = validate_logged(action, pscore, action_dist)
    return action_dist[np.arange(action.shape[0]), action] / pscore


def diagnose(
    pscore: Any,
    action: Any,
    action_dist: Any,
    *,
    min_pscore: float = 0.01,
    max_weight: float = 100.0,
    min_ess_fraction: float = 0.05,
) -> list[str]:
    """Human-readable warnings about a log's fitness for evaluating ``action_dist``; [] if none.

    Flags: logging propensities below ``min_pscore``; rounds where the target
    gives the logged action mass but the logger barely did (the visible trace
    of target mass the logger did not support: mass on actions that were not
    logged in a round cannot be seen from that round alone); the share of
    target mass on action columns never logged anywhere in the data (IPS and
    SNIPS cannot see it, DM and DR rest on the reward model for it); an
    importance weight above ``max_weight``; and an effective sample size below
    ``min_ess_fraction`` of the rounds.

    >>> import numpy as np
    >>> diagnose(np.full(4, 0.5), np.array([0, 1, 0, 1]), np.full((4, 2), 0.5))
    []
    >>> for line in diagnose(np.array([0.5, 0.001]), np.array([0, 0]), np.array([[0.5, 0.5], [1.0, 0.0]])):
    ...     print(line)
    1 of 2 rounds (50.0%) have a logging propensity below 0.01 (smallest 0.001)
    1 of 2 rounds give the logged action target probability > 0 with a logging propensity below 0.01: the logger barely supports what the target plays
    25.0% of the target policy's mass is on action columns never logged in these data ([1]): IPS/SNIPS cannot see it, DM/DR rely on the reward model there
    max importance weight 1000 exceeds 100 (round 1)
    """
    action, pscore, action_dist = validate_logged(action, pscore, action_dist)
    n = action.shape[0]
    warnings: list[str] = []
    tiny = pscore < min_pscore
    if tiny.any():
        warnings.append(
            f"{int(tiny.sum())} of {n} rounds ({100 * tiny.mean():.1f}%) have a logging propensity "
            f"below {min_pscore:g} (smallest {pscore.min():.3g})"
        )
    target_on_logged = action_dist[np.arange(n), action]
    unsupported = tiny & (target_on_logged > 0)
    if unsupported.any():
        warnings.append(
            f"{int(unsupported.sum())} of {n} rounds give the logged action target probability > 0 with a "
            f"logging propensity below {min_pscore:g}: the logger barely supports what the target plays"
        )
    never_logged = np.ones(action_dist.shape[1], dtype=bool)
    never_logged[action] = False
    unseen_mass = float(action_dist[:, never_logged].sum()) / n
    if unseen_mass > 1e-9:
        columns = np.flatnonzero(never_logged & (action_dist.sum(axis=0) > 0)).tolist()
        shown = columns if len(columns) <= 10 else columns[:10] + ["..."]
        warnings.append(
            f"{100 * unseen_mass:.1f}% of the target policy's mass is on action columns never logged in "
            f"these data ({shown}): IPS/SNIPS cannot see it, DM/DR rely on the reward model there"
        )
    weights = target_on_logged / pscore
    if weights.max() > max_weight:
        warnings.append(f"max importance weight {weights.max():.4g} exceeds {max_weight:g} (round {int(weights.argmax())})")
    ess = effective_sample_size(weights)
    if ess < min_ess_fraction * n:
        warnings.append(
            f"effective sample size {ess:.1f} is below {100 * min_ess_fraction:g}% of the {n} rounds: "
            "estimates rest on a few heavily weighted rounds"
        )
    return warnings
