"""Position-wise evaluation of slate logs, as Open Bandit Pipeline does with ``len_list``.

Each position of a slate is logged as its own decision (``position`` j, its own pmf and propensity:
:mod:`stream.engine.slates`), so each position is one round, as each (impression, position) is one
round in OBP. Estimators average over all rounds: the value is the **expected reward per position**
(per shown item), averaged over the positions in the log; times ``len_list`` it is the slate's
expected total when every slate has all its positions. ``--len-list K`` keeps positions ``0..K-1``.

A target fills a position the way the engine fills it: its distribution over the position's
candidates, renormalised over those earlier positions of the same slate did not take (``taken``), or,
when it leaves no mass on them, the best-scored free candidate with probability 1
(:func:`restrict_to_free`). Like OBP's standard position-wise estimators this conditions each
position on the items logged above it; rewards that depend on the whole slate need a slate
estimator (:mod:`bandits.ope.slate`).

>>> import numpy as np
>>> dist = np.array([[0.5, 0.375, 0.125], [1.0, 0.0, 0.0]])
>>> taken = np.array([[True, False, False], [True, False, False]])
>>> restrict_to_free(dist, taken, np.array([[0.0, 0.0, 0.0], [3.0, 1.0, 2.0]]), np.ones((2, 3), bool)).tolist()
[[0.0, 0.75, 0.25], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.replay.dataset import BanditLog
from stream.replay.errors import ReplayError

__all__ = ["restrict_to_free", "keep_positions", "position_summary"]


def restrict_to_free(dist: np.ndarray, taken: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, K) ``dist`` with each row that has ``taken`` candidates renormalised over its free ones (real and
    not taken); a row left with no mass puts probability 1 on its best-scored free candidate (the first free
    one when scores are missing). Rows without taken candidates are returned as they were."""
    rows = np.flatnonzero(taken.any(axis=1))
    if rows.size == 0:
        return dist
    out = np.array(dist, dtype=np.float64, copy=True)
    free = mask[rows] & ~taken[rows]
    part = np.where(free, out[rows], 0.0)
    total = part.sum(axis=1)
    empty = total <= 0
    part[~empty] /= total[~empty, None]
    if empty.any():
        s = np.where(free[empty] & np.isfinite(scores[rows][empty]), scores[rows][empty], -np.inf)
        s = np.where(free[empty] & ~np.isfinite(s), -np.finfo(np.float64).max, s)  # free but scoreless: last resort
        best = np.argmax(s, axis=1)
        part[empty] = 0.0
        part[np.flatnonzero(empty), best] = 1.0
    out[rows] = part
    return out


def keep_positions(log: BanditLog, len_list: int | None) -> BanditLog:
    """The rounds of positions ``0..len_list-1`` (all of them when ``len_list`` is None)."""
    if len_list is None:
        return log
    if isinstance(len_list, bool) or not isinstance(len_list, int) or len_list < 1:
        raise ReplayError(f"--len-list must be an integer >= 1, got {len_list!r}")
    keep = log.positions < len_list
    if not keep.any():
        raise ReplayError(f"--len-list {len_list} keeps no decision of the log")
    return log if keep.all() else log.subset(keep)


def position_summary(log: BanditLog) -> dict[str, Any]:
    """What the report says about positions: how many rounds each has, and what the value means."""
    counts = np.bincount(log.positions, minlength=1)
    return {
        "len_list": int(counts.size),
        "rounds_per_position": counts.tolist(),
        "on_policy_value_per_position": [float(log.reward[log.positions == j].mean()) if c else None
                                         for j, c in enumerate(counts.tolist())],
        "value": "the mean over rounds, one round per (slate, position): the expected reward per position, "
                 "averaged over positions; times len_list for a full slate's total",
    }


def slate_estimates(log: BanditLog, targets: list[tuple[str, np.ndarray]], *, n_bootstrap: int, alpha: float,
                    seed: int) -> dict[str, Any]:
    """The slate estimators (:mod:`bandits.ope.slate`) of every target on the log's complete slates: those with
    all of the log's ``len_list`` positions (a position without an outcome is dropped by the join unless
    ``--missing-reward`` gives it one). Values are a slate's expected total reward; the intervals share one
    bootstrap over slates."""
    from bandits.errors import BanditError
    from bandits.ope.bootstrap import shared_intervals
    from bandits.ope.slate import SLATE_ESTIMATORS

    length = int(log.positions.max()) + 1
    ids = log.request_ids.astype(str)
    slates, slate, count = np.unique(ids, return_inverse=True, return_counts=True)
    complete = count[slate] == length  # positions are unique per slate (the join keeps one row each)
    out: dict[str, Any] = {"len_list": length, "slates": int((count == length).sum()),
                           "incomplete_slates_dropped": int((count != length).sum()),
                           "value": f"the expected total reward of a slate of {length} positions", "policies": {}}
    if not complete.any():
        out["error"] = f"no slate has all {length} positions joined (give the others a reward with --missing-reward)"
        return out
    rows = np.flatnonzero(complete)
    arrays = dict(slate_id=slate[rows], position=log.positions[rows], reward=log.reward[rows],
                  position_pscore=log.pscore[rows])
    pending = []
    for label, dist in targets:
        target = dist[rows, log.action[rows]]
        for name, cls in SLATE_ESTIMATORS.items():
            try:
                terms = cls().terms(**arrays, evaluation_position_pscore=target)
            except BanditError as exc:
                out["policies"].setdefault(label, {})[name] = {"value": None, "error": str(exc)}
                continue
            out["policies"].setdefault(label, {})[name] = {"value": terms.value(), "lower": None, "upper": None}
            pending.append((label, name, terms))
    if n_bootstrap > 0 and pending:
        for (label, name, _), (lower, upper) in zip(pending, shared_intervals(
                [t for _, _, t in pending], n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)):
            out["policies"][label][name].update(lower=lower, upper=upper)
    return out
