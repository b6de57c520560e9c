"""The reward model DM, DR and SNDR need: per-item ridge regression, cross-fitted on the log itself.

Model: for item a, ``q(x, a) = mu + x . w_a`` where ``x`` is the round's
context row (in Eddy's replay: the hashed context of
:func:`stream.replay.dataset.context_matrix`, user id included) plus an
intercept, ``mu`` the mean logged reward, and ``w_a`` a ridge fit (penalty
``l2`` on every coefficient, so rarely shown items shrink to ``mu``) on the
rounds where item a was the logged action. Items never
logged in the training folds get ``mu``. Predictions are clipped to the
range of observed rewards.

Cross-fitting: rounds are split at random (seeded) into ``n_folds`` folds;
each fold's rewards are predicted by a model fitted on the *other* folds.
A model that has seen a round's own reward fits its noise, and DR's
correction term ``w (r - q)`` then shrinks towards 0, biasing DR/SNDR towards
DM; cross-fitting removes that (the "double machine learning" recipe).

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
>>> item = np.array([0, 1] * 50)
>>> y = np.array([1.0, 0.0] * 50)
>>> w, mu = fit_per_item(x, item, y, n_items=2, l2=1.0)
>>> q = predict(w, mu, x[:2], np.array([[0, 1], [0, 1]]))
>>> bool(q[0, 0] > 0.9 and q[1, 1] < 0.1)
True
"""

from __future__ import annotations

import numpy as np

from bandits.errors import BanditError
from bandits.ope.dataset import BanditFeedback

__all__ = ["cross_fitted_rewards", "fit_per_item", "predict"]


def fit_per_item(x: np.ndarray, item: np.ndarray, y: np.ndarray, *, n_items: int, l2: float) -> tuple[np.ndarray, float]:
    """``(W (n_items + 1, d), mu)``: ridge weights per item on ``x`` (n, d); the last row (unknown item) is 0."""
    d = x.shape[1]
    mu = float(y.mean()) if y.size else 0.0
    w = np.zeros((n_items + 1, d))
    order = np.argsort(item, kind="stable")
    bounds = np.searchsorted(item[order], np.arange(n_items + 1))
    eye = l2 * np.eye(d)
    for a in range(n_items):
        rows = order[bounds[a]:bounds[a + 1]]
        if rows.size == 0:
            continue
        xa = x[rows]
        w[a] = np.linalg.solve(xa.T @ xa + eye, xa.T @ (y[rows] - mu))
    return w, mu


def predict(w: np.ndarray, mu: float, x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(r, K) ``mu + x_i . w[index[i, k]]``; index -1 (padding, unknown) uses the zero row."""
    idx = np.where(index >= 0, index, w.shape[0] - 1)
    return mu + np.einsum("rkd,rd->rk", w[idx], x)


def cross_fitted_rewards(log: BanditFeedback, context: np.ndarray, *, n_folds: int = 2, l2: float = 1.0,
                         seed: int = 0) -> np.ndarray:
    """(n, K) estimated reward of every candidate of every round, each fold predicted out of fold.

    ``context`` is (n, d), one row per round of ``log``.
    """
    if context.shape[0] != log.n_rounds or context.ndim != 2:
        raise BanditError(f"context must have shape ({log.n_rounds}, d); got {context.shape}")
    x = np.hstack([context, np.ones((log.n_rounds, 1))])
    vocab, index = log.item_index
    logged = index[np.arange(log.n_rounds), log.action]
    fold = np.random.default_rng(seed).permutation(log.n_rounds) % n_folds
    q = np.zeros((log.n_rounds, log.n_actions))
    for f in range(n_folds):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        if not train.any():  # a single round: nothing else to learn from
            q[test] = log.reward.mean()
            continue
        w, mu = fit_per_item(x[train], logged[train], log.reward[train], n_items=len(vocab), l2=l2)
        q[test] = predict(w, mu, x[test], index[test])
    q = np.clip(q, log.reward.min(), log.reward.max())
    return np.where(log.mask, q, 0.0)
