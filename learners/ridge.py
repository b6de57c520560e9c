"""Bayesian linear regression per user, as in Velox: online ridge via Sherman-Morrison."""

from __future__ import annotations

import math

import numpy as np

from learners import _codec
from learners._checks import check_matrix, check_positive, check_prior_mean, check_target, check_vector
from learners._codec import Kind
from learners.base import UserModel
from learners.errors import LearnerError

__all__ = ["BayesianLinearUserModel"]


class BayesianLinearUserModel(UserModel):
    """Bayesian linear regression over ``x~ = [x, 1]`` with a Gaussian prior, updated in O(d^2).

    The model is ``y = theta . x~ + noise``, ``noise ~ N(0, noise_variance)``, with the
    prior ``theta ~ N(prior_mean, noise_variance / prior_precision * I)``, so the
    posterior mean is the ridge solution

        ``theta = (lambda I + sum x~ x~^T)^-1 (lambda m0 + sum x~ y)``.

    It keeps ``P = (lambda I + sum x~ x~^T)^-1`` and ``b = lambda m0 + sum x~ y``;
    each `learn_one` is a Sherman-Morrison rank-1 update of P (O(d^2), never an
    O(d^3) inverse), and the posterior covariance is ``noise_variance * P``.

    Parameters
    ----------
    dim
        Length of the embeddings x.
    prior_mean
        Prior mean of ``[w, b]``, shape (dim + 1,): weights first, bias last.
        Defaults to zeros. New users usually start from `PopulationModel.mean()`.
    prior_precision
        Ridge strength lambda: how many unit-norm observations the prior is worth.
    noise_variance
        Observation noise variance; scales the posterior covariance only.

    Examples
    --------

    >>> import numpy as np
    >>> from learners.ridge import BayesianLinearUserModel

    >>> rng = np.random.default_rng(0)
    >>> w_true, b_true = np.array([1.0, -2.0, 0.5]), 0.3
    >>> model = BayesianLinearUserModel(dim=3, prior_precision=1.0)
    >>> for _ in range(200):
    ...     x = rng.normal(size=3)
    ...     model.learn_one(x, x @ w_true + b_true + rng.normal(scale=0.1))

    >>> w, b = model.weights
    >>> np.round(w, 1), round(b, 1)
    (array([ 1. , -2. ,  0.5]), 0.3)
    >>> round(model.predict_one(np.array([1.0, 1.0, 1.0])), 1)
    -0.2

    The posterior shrinks where data was seen; UCB and Thompson sampling use it:

    >>> X = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    >>> var = model.predict_var_many(X)
    >>> bool(var[0] < var[1])
    True
    >>> w_sample, b_sample = model.sample_weights(np.random.default_rng(1))
    >>> w_sample.shape
    (3,)

    Serialised state is compact and exact:

    >>> clone = BayesianLinearUserModel.from_bytes(model.to_bytes())
    >>> clone.n_obs, clone.predict_one(X[1]) == model.predict_one(X[1])
    (200, True)

    """

    _kind = Kind.BAYES

    def __init__(
        self,
        dim: int,
        prior_mean: np.ndarray | None = None,
        prior_precision: float = 1.0,
        noise_variance: float = 1.0,
    ):
        super().__init__(dim)
        self.prior_mean = prior_mean
        self.prior_precision = check_positive("prior_precision", prior_precision)
        self.noise_variance = check_positive("noise_variance", noise_variance)
        m0 = check_prior_mean(prior_mean, self.dim)
        self._P = np.eye(self.dim + 1) / self.prior_precision
        self._b = self.prior_precision * m0
        self._mean = self._P @ self._b
        self._xt = np.ones(self.dim + 1)  # scratch buffer for x~ = [x, 1]
        self._chol: np.ndarray | None = None

    def learn_one(self, x: np.ndarray, y: float) -> None:
        x = check_vector(x, self.dim)
        y = check_target(y)
        xt = self._xt
        xt[:-1] = x
        u = self._P @ xt
        # 1 + x~' P x~ >= 1 because P is positive definite.
        v = u / math.sqrt(1.0 + float(xt @ u))
        # P - u u' / s written as P - v v': np.outer(v, v) is bitwise symmetric
        # (IEEE multiplication commutes) and so is P after the subtraction, so P
        # needs no periodic re-symmetrisation.
        self._P -= np.outer(v, v)
        self._b += y * xt
        self._mean = self._P @ self._b
        self._chol = None
        self._n_obs += 1

    def _snapshot(self) -> object:
        return self._P.copy(), self._b.copy(), self._mean, self._n_obs  # learn_one rebinds _mean

    def _restore(self, snapshot: object) -> None:
        self._P, self._b, self._mean, self._n_obs = snapshot
        self._chol = None

    def _coef(self) -> np.ndarray:
        return self._mean

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of the posterior ``(mean (dim + 1,), covariance (dim + 1, dim + 1))`` of ``[w, b]``."""
        return self._mean.copy(), self.noise_variance * self._P

    def predict_var_many(self, X: np.ndarray) -> np.ndarray:
        """Posterior variance of the mean prediction ``x~' cov x~`` per row of X (n, dim) -> (n,).

        This is the epistemic part only (add `noise_variance` for the variance of a new y);
        a UCB score is ``predict_many(X) + alpha * sqrt(predict_var_many(X))``.
        """
        X = check_matrix(X, self.dim)
        P = self._P
        quad = np.einsum("ij,ij->i", X @ P[:-1, :-1], X) + 2.0 * (X @ P[:-1, -1]) + P[-1, -1]
        return self.noise_variance * np.maximum(quad, 0.0)

    def sample_weights(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Draw ``(w (dim,), b)`` from the posterior, for Thompson sampling."""
        if not isinstance(rng, np.random.Generator):
            raise LearnerError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if self._chol is None:
            cov = self.noise_variance * self._P
            try:
                self._chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:  # lost definiteness to rounding: clip the spectrum
                vals, vecs = np.linalg.eigh(cov)
                self._chol = vecs * np.sqrt(np.clip(vals, 0.0, None))
        theta = self._mean + self._chol @ rng.standard_normal(self.dim + 1)
        return theta[:-1], float(theta[-1])

    # Serialisation: [prior_precision, noise_variance, b (d+1), upper triangle of P].
    # P is kept as float64 (see learners._codec); its upper triangle is enough since P
    # is exactly symmetric, which nearly halves the size.

    def to_bytes(self) -> bytes:
        rows, cols = _codec.triu_indices(self.dim + 1)
        payload = np.concatenate(([self.prior_precision, self.noise_variance], self._b, self._P[rows, cols]))
        return _codec.encode(self._kind, self.dim, self._n_obs, payload)

    @classmethod
    def _from_payload(cls, dim: int, n_obs: int, payload: np.ndarray) -> BayesianLinearUserModel:
        n = dim + 1
        _codec.check_length(payload, 2 + n + n * (n + 1) // 2, cls._kind, dim)
        if payload[0] <= 0 or payload[1] <= 0:
            raise LearnerError(f"data holds prior_precision={payload[0]}, noise_variance={payload[1]}; both must be > 0")
        model = cls(dim, prior_precision=float(payload[0]), noise_variance=float(payload[1]))
        rows, cols = _codec.triu_indices(n)
        P = np.empty((n, n))
        P[rows, cols] = payload[2 + n :]
        P[cols, rows] = payload[2 + n :]
        if not (np.diag(P) > 0).all():
            raise LearnerError("data holds a posterior covariance with a non-positive diagonal")
        model._P = P
        model._b = payload[2 : 2 + n].copy()
        model._mean = model._P @ model._b
        model._n_obs = n_obs
        return model
