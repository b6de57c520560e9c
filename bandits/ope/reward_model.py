"""The reward models DM, DR, SNDR, Switch-DR and DRos need, cross-fitted or fitted in-sample on the log itself.

Four kinds (``kind``):

* ``constant``: the mean logged reward, for every round and action;
* ``per-action``: each item's mean logged reward, shrunk towards the overall
  mean by ``l2`` pseudo-rounds (``(sum_a + l2 mu) / (n_a + l2)``);
* ``ridge``: per item, L2-penalised least squares through a logistic link
  scaled to the observed reward range ``[lo, hi]``:
  ``q(x, a) = lo + (hi - lo) sigmoid(b + x . w_a)``;
* ``logistic``: the same model fitted by the Bernoulli likelihood (L2-penalised
  logistic regression); needs binary rewards (two distinct values).

For ``ridge`` and ``logistic``, ``x`` is the round's context row (in Eddy's
replay: the hashed context of :func:`stream.replay.dataset.context_matrix`,
user id included) plus an intercept column, ``b = logit(mu)`` the link-scale
mean of the training rewards, and ``w_a`` is penalised by ``l2`` on every
coefficient, so a rarely logged item shrinks towards the mean. Items never
logged in the training rounds get the mean.

Why a link and not a clip: a linear model fitted to a sparse click log (a few
clicks in thousands of rounds) predicts below zero for many rounds; clipping
those to zero raises every prediction that was negative and biases DM upwards
(the error DR's correction term then has to undo). The sigmoid keeps every
prediction inside ``(lo, hi)`` with no clip at all.

Fitting (``fit``):

* ``cross`` (default): rounds are split at random (seeded) into ``n_folds``
  folds; each fold is predicted by a model fitted on the *other* folds. A model
  that has seen a round's own reward fits its noise, and DR's correction term
  ``w (r - q)`` then shrinks towards 0, biasing DR/SNDR towards DM; cross-fitting
  removes that (the "double machine learning" recipe).
* ``in-sample``: one model fitted on every round predicts every round (what
  Open Bandit Pipeline's ``RegressionModel.fit_predict`` does with ``n_folds=1``).

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
>>> item = np.array([0, 1] * 50)
>>> y = np.array([1.0, 0.0] * 50)
>>> model = fit_reward_model("logistic", x, item, y, n_items=2, l2=1.0, reward_range=(0.0, 1.0))
>>> q = model.predict(x[:2], np.array([[0, 1], [0, 1]]))
>>> bool(q[0, 0] > 0.9 and q[1, 1] < 0.1 and (q > 0).all() and (q < 1).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bandits.errors import BanditError
from bandits.ope.dataset import BanditFeedback

__all__ = [
    "REWARD_MODELS",
    "FITS",
    "RewardModelSpec",
    "FittedRewardModel",
    "fit_reward_model",
    "estimated_rewards",
]

REWARD_MODELS = ("constant", "per-action", "ridge", "logistic")
FITS = ("cross", "in-sample")
_NEWTON_STEPS = 50
_STEP_TOLERANCE = 1e-9  # stop once no weight moves by more than this (Gauss-Newton converges only linearly)
_EDGE = 1e-6  # link-scale mean kept off 0 and 1 so that logit(mu) is finite


@dataclass(frozen=True)
class RewardModelSpec:
    """Which reward model and how it is fitted; ``to_dict`` is what the replay report records.

    >>> RewardModelSpec(kind="per-action", fit="in-sample").to_dict()["fit"]
    'in-sample'
    >>> RewardModelSpec(kind="tree")
    Traceback (most recent call last):
    ...
    bandits.errors.BanditError: reward model must be one of ('constant', 'per-action', 'ridge', 'logistic'); got 'tree'
    """

    kind: str = "ridge"
    fit: str = "cross"
    n_folds: int = 2
    l2: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in REWARD_MODELS:
            raise BanditError(f"reward model must be one of {REWARD_MODELS}; got {self.kind!r}")
        if self.fit not in FITS:
            raise BanditError(f"reward model fit must be one of {FITS}; got {self.fit!r}")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise BanditError(f"n_folds must be an integer >= 2; got {self.n_folds!r}")
        if isinstance(self.l2, bool) or not isinstance(self.l2, (int, float)) or not self.l2 > 0 \
                or not np.isfinite(self.l2):
            raise BanditError(f"l2 must be a finite number > 0; got {self.l2!r}")

    @property
    def link(self) -> str:
        return "logistic, scaled to the reward range" if self.kind in ("ridge", "logistic") else "identity (a mean)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fit": self.fit,
            "n_folds": self.n_folds if self.fit == "cross" else 1,
            "l2": float(self.l2),
            "link": self.link,
            "loss": {"ridge": "squared", "logistic": "bernoulli"}.get(self.kind, "mean"),
            "seed": self.seed,
        }


@dataclass(frozen=True, eq=False)
class FittedRewardModel:
    """A fitted model: ``predict(x (r, d), index (r, K)) -> (r, K)``; index -1 (padding, unknown) gets the mean.

    ``weights`` is (n_items + 1, d) link-scale coefficients (the last row, for
    unknown items, is 0) or None for the mean models; ``item_means`` (n_items + 1,)
    the per-item means (``constant``: all equal).
    """

    kind: str
    mean: float
    lo: float
    hi: float
    item_means: np.ndarray
    weights: np.ndarray | None
    offset: float

    def predict(self, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        idx = np.where(index >= 0, index, self.item_means.shape[0] - 1)
        if self.weights is None:
            return self.item_means[idx]
        # Every item's linear score of every row (r, n_items + 1), then each row's candidates: a product
        # of (r, d) by (d, n_items + 1), not an (r, K, d) gather of weights.
        eta = self.offset + np.take_along_axis(x @ self.weights.T, idx, axis=1)
        return self.lo + (self.hi - self.lo) * _sigmoid(eta)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact, no overflow warning for large |z|


def _newton(x: np.ndarray, y: np.ndarray, offset: float, l2: float, bernoulli: bool) -> np.ndarray:
    """Link-scale weights minimising the penalised loss on one item's rounds (Newton, backtracking).

    Bernoulli: the Hessian ``X' diag(p(1-p)) X + l2 I`` is positive definite. Squared loss through the
    link: the exact Hessian adds ``X' diag((p - y) p' (1 - 2p)) X`` to Gauss-Newton's ``J'J``, and
    converges quadratically where Gauss-Newton crawls (16 steps on average on a click log against 5);
    where that sum is not positive definite (far from the optimum), the step is Gauss-Newton's.
    Columns that are zero in every round keep weight 0 (their gradient is ``l2 w``), so they are left
    out of the solve: the same optimum on a smaller system.
    """
    d = x.shape[1]
    w = np.zeros(d)
    active = np.flatnonzero(np.any(x != 0, axis=0))
    if active.size < d:
        w[active] = _newton(x[:, active], y, offset, l2, bernoulli)
        return w
    eye = l2 * np.eye(d)

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        """The penalised loss at ``v``, and the predictions it was computed from (the next step's)."""
        p = _sigmoid(offset + x @ v)
        if bernoulli:
            eps = 1e-300
            loss = -float(np.sum(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        else:
            loss = 0.5 * float(np.sum((p - y) ** 2))
        return loss + 0.5 * l2 * float(v @ v), p

    current, p = objective(w)
    for _ in range(_NEWTON_STEPS):
        slope = p * (1 - p)
        if bernoulli:
            grad = x.T @ (p - y) + l2 * w
            curvature = slope
        else:
            grad = x.T @ ((p - y) * slope) + l2 * w
            curvature = slope * slope + (p - y) * slope * (1 - 2 * p)
        try:
            step = _solve_pd((x * curvature[:, None]).T @ x + eye, grad)
        except np.linalg.LinAlgError:  # squared loss far from the optimum: Gauss-Newton's curvature
            step = _solve_pd((x * (slope * slope)[:, None]).T @ x + eye, grad)
        t = 1.0
        while True:
            candidate = w - t * step
            value, p_candidate = objective(candidate)
            if value <= current or t < 1e-8:
                break
            t *= 0.5
        w, current, p = candidate, min(value, current), p_candidate
        if t * np.abs(step).max() <= _STEP_TOLERANCE:
            break
    return w


def _solve_pd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a symmetric positive definite ``a``; LinAlgError if it is not (Cholesky tells)."""
    np.linalg.cholesky(a)
    return np.linalg.solve(a, b)


def fit_reward_model(kind: str, x: np.ndarray, item: np.ndarray, y: np.ndarray, *, n_items: int, l2: float,
                     reward_range: tuple[float, float]) -> FittedRewardModel:
    """Fit ``kind`` on rounds ``x`` (n, d), logged item index ``item`` (n,), reward ``y`` (n,)."""
    lo, hi = reward_range
    mean = float(y.mean()) if y.size else (lo + hi) / 2
    counts = np.bincount(item, minlength=n_items)[:n_items].astype(np.float64)
    sums = np.bincount(item, weights=y, minlength=n_items)[:n_items]
    if kind == "constant":
        return FittedRewardModel(kind, mean, lo, hi, np.full(n_items + 1, mean), None, 0.0)
    if kind == "per-action":
        means = np.append((sums + l2 * mean) / (counts + l2), mean)
        return FittedRewardModel(kind, mean, lo, hi, means, None, 0.0)
    if hi <= lo:  # every reward equal: nothing for a link to fit
        return FittedRewardModel(kind, mean, lo, hi, np.full(n_items + 1, mean), None, 0.0)
    scaled = (y - lo) / (hi - lo)
    m = min(max((mean - lo) / (hi - lo), _EDGE), 1 - _EDGE)
    offset = float(np.log(m / (1 - m)))
    weights = np.zeros((n_items + 1, x.shape[1]))
    order = np.argsort(item, kind="stable")
    bounds = np.searchsorted(item[order], np.arange(n_items + 1))
    for a in range(n_items):
        rows = order[bounds[a]:bounds[a + 1]]
        if rows.size:
            weights[a] = _newton(x[rows], scaled[rows], offset, l2, bernoulli=kind == "logistic")
    return FittedRewardModel(kind, mean, lo, hi, np.full(n_items + 1, mean), weights, offset)


def estimated_rewards(log: BanditFeedback, context: np.ndarray, spec: RewardModelSpec = RewardModelSpec()) -> np.ndarray:
    """(n, K) estimated reward of every candidate of every round (padding 0), fitted as ``spec`` says.

    ``context`` is (n, d), one row per round of ``log`` (ignored by ``constant`` and ``per-action``).
    """
    if context.ndim != 2 or context.shape[0] != log.n_rounds:
        raise BanditError(f"context must have shape ({log.n_rounds}, d); got {context.shape}")
    lo, hi = float(log.reward.min()), float(log.reward.max())
    if spec.kind == "logistic" and np.unique(log.reward).size > 2:
        raise BanditError(f"the logistic reward model needs binary rewards; this log has "
                          f"{np.unique(log.reward).size} distinct reward values (use ridge)")
    x = np.hstack([context, np.ones((log.n_rounds, 1))])
    vocab, index = log.item_index
    logged = index[np.arange(log.n_rounds), log.action]
    q = np.zeros((log.n_rounds, log.n_actions))

    def fit(train: np.ndarray) -> FittedRewardModel:
        return fit_reward_model(spec.kind, x[train], logged[train], log.reward[train], n_items=len(vocab),
                                l2=spec.l2, reward_range=(lo, hi))

    if spec.kind in ("constant", "per-action"):  # means: no BLAS to limit
        return _fit_predict(log, q, fit, spec, x, index)
    # Thousands of (n_a, d) x (d, d) products: a second BLAS thread only adds contention (on a busy 2-core
    # machine, 11 s instead of 0.4 s for 20,000 rounds). Limited once (threadpoolctl reads the process's
    # libraries each time: a few ms).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_predict(log, q, fit, spec, x, index)


def _fit_predict(log: BanditFeedback, q: np.ndarray, fit, spec: RewardModelSpec, x: np.ndarray,
                 index: np.ndarray) -> np.ndarray:
    if spec.fit == "in-sample":
        q[:] = fit(np.ones(log.n_rounds, dtype=bool)).predict(x, index)
    else:
        fold = np.random.default_rng(spec.seed).permutation(log.n_rounds) % spec.n_folds
        for f in range(spec.n_folds):
            train, test = fold != f, fold == f
            if not test.any():
                continue
            if not train.any():  # a single round: nothing else to learn from
                q[test] = log.reward.mean()
                continue
            q[test] = fit(train).predict(x[test], index[test])
    return np.where(log.mask, q, 0.0)
