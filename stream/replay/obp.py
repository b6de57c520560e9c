"""Open Bandit Pipeline's ``bandit_feedback`` from a joined log, saved as ``.npz``.

Keys (n rounds, K = ``n_actions`` = most candidates in any round, d = context dim):

==========================  ===========  =================================================
key                         shape/dtype  meaning
==========================  ===========  =================================================
``n_rounds``                () int64     n
``n_actions``               () int64     K; an action is a *candidate position* (column)
``action``                  (n,) int64   column of the logged action
``position``                (n,) int64   slate position of the decision (0 without slates)
``len_list``                () int64     positions per slate: most positions in any slate (1 without)
``taken``                   (n, K) bool  candidates earlier positions of the slate took (not available)
``reward``                  (n,) float64 observed reward
``pscore``                  (n,) float64 logging propensity of the logged action
``context``                 (n, d) f64   hashed context features (``stream.replay.dataset``)
``action_dist_logging``     (n, K) f64   the logged pmf, padded with 0
``action_mask``             (n, K) bool  True for real candidates
``item_ids``                (n, K) str   item id of each column, ``""`` for padding
``scores``                  (n, K) f64   logged scores, padded with 0
``timestamp``               (n,) float64 decision time, epoch seconds
``context_hashing``         () str       how ``context`` was built
==========================  ===========  =================================================

Load with ``dict(np.load(path))`` (no pickle needed: strings are fixed-width
unicode). OBP's estimators want ``action_dist`` of shape (n, K, len_list);
each round's distribution is the one of its own position, so
``ad = np.zeros((n, K, len_list)); ad[np.arange(n), :, position] = action_dist_logging``
(with one position: ``action_dist_logging[:, :, None]``), and ``position`` goes to
``estimate_policy_value(..., position=fb["position"])``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stream.replay.dataset import DEFAULT_CONTEXT_DIM, BanditLog, context_matrix

__all__ = ["bandit_feedback", "save_bandit_feedback", "CONTEXT_HASHING"]

CONTEXT_HASHING = (
    "blake2b feature hashing into {dim} columns: numeric feature name -> +value at h(name); "
    "string feature name=s -> +1 at h('name=s'); user -> +1 at h('user_id=<id>')"
)


def bandit_feedback(log: BanditLog, *, context_dim: int = DEFAULT_CONTEXT_DIM) -> dict[str, Any]:
    """The ``bandit_feedback`` dict (see the module docstring for keys, shapes and dtypes).

    >>> from stream.events import Decision, Item
    >>> from stream.replay.rounds import LoggedRound
    >>> d = Decision("r1", "u1", 1.0, {"device": "tv"}, (Item("a"), Item("b")), (0.1, 0.7), (0.25, 0.75), 1,
    ...              0.75, "epsilon_greedy", "epsilon_greedy/1?epsilon=0.5", 7, "v1", 0)
    >>> fb = bandit_feedback(BanditLog.from_rounds([LoggedRound(d, 1.0, 2.0)]), context_dim=8)
    >>> fb["action"].tolist(), fb["pscore"].tolist(), fb["context"].shape, fb["action_dist_logging"].shape
    ([1], [0.75], (1, 8), (1, 2))
    """
    return {
        "n_rounds": np.int64(log.n_rounds),
        "n_actions": np.int64(log.n_actions),
        "action": log.action.astype(np.int64),
        "position": log.positions.astype(np.int64),
        "len_list": np.int64(int(log.positions.max()) + 1),
        "taken": log.taken.copy() if log.taken is not None else np.zeros(log.pmf.shape, dtype=bool),
        "reward": log.reward.astype(np.float64),
        "pscore": log.pscore.astype(np.float64),
        "context": context_matrix(log, context_dim),
        "action_dist_logging": log.pmf.astype(np.float64),
        "action_mask": log.mask.copy(),
        "item_ids": log.item_ids.copy(),
        "scores": np.where(np.isfinite(log.scores), log.scores, 0.0),
        "timestamp": log.ts.astype(np.float64),
        "context_hashing": np.str_(CONTEXT_HASHING.format(dim=context_dim)),
    }


def save_bandit_feedback(log: BanditLog, path: str | Path, *, context_dim: int = DEFAULT_CONTEXT_DIM) -> Path:
    """Write :func:`bandit_feedback` to ``path`` (compressed ``.npz``); returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # numpy would add it anyway; say so in the return value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **bandit_feedback(log, context_dim=context_dim))
    return path
