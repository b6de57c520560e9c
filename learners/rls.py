"""Bayesian linear regression that forgets: recursive least squares with a forgetting factor."""

from __future__ import annotations

import numpy as np

from learners import _codec
from learners._checks import check_positive, check_target, check_vector
from learners._codec import Kind
from learners.errors import LearnerError
from learners.ridge import BayesianLinearUserModel

__all__ = ["ForgettingBayesUserModel"]


class ForgettingBayesUserModel(BayesianLinearUserModel):
    """`BayesianLinearUserModel` whose old observations fade by a factor per new one.

    Before each observation the precision ``A = P^-1`` and ``b`` are multiplied by
    ``forgetting`` (gamma), so after n observations

        ``theta = (gamma^n lambda I + sum_i gamma^(n-i) x~_i x~_i^T)^-1 (gamma^n lambda m0 + sum_i gamma^(n-i) x~_i y_i)``:

    recursive least squares with exponential forgetting, started from the ridge
    prior. The first observations are shrunk towards ``m0`` as in the plain
    Bayesian model (that is what a new user needs); the ``1 / (1 - gamma)`` most
    recent observations dominate once there are many (that is what a user whose
    taste drifts within a session needs: on MovieLens, a user's later ratings
    are better predicted with forgetting, 0.99, than without, see docs/demo.md).
    Still one O(d^2) Sherman-Morrison update per observation.

    Defaults: ``prior_precision`` 5 is the offline trainer's ridge strength
    (`features.train.train_feature_net`'s ``weight_decay``), so a user trained
    offline continues online under the same prior.

    Parameters
    ----------
    dim
        Length of the embeddings x.
    prior_mean
        Prior mean of ``[w, b]``, shape (dim + 1,); zeros by default.
    prior_precision
        Ridge strength lambda of the prior.
    noise_variance
        Observation noise variance; scales the posterior covariance only.
    forgetting
        gamma in (0, 1]; 1 is `BayesianLinearUserModel` exactly.

    Examples
    --------

    >>> import numpy as np
    >>> from learners.rls import ForgettingBayesUserModel

    A user whose taste flips half-way: with forgetting the model follows.

    >>> rng = np.random.default_rng(0)
    >>> tracking = ForgettingBayesUserModel(dim=1, prior_precision=1.0, forgetting=0.9)
    >>> plain = ForgettingBayesUserModel(dim=1, prior_precision=1.0, forgetting=1.0)
    >>> for t in range(400):
    ...     x = rng.normal(size=1)
    ...     y = float(x[0]) * (1.0 if t < 200 else -1.0)
    ...     tracking.learn_one(x, y)
    ...     plain.learn_one(x, y)
    >>> round(float(tracking.weights[0][0]), 2), round(float(plain.weights[0][0]), 2)
    (-1.0, -0.07)

    Serialised state is compact and exact:

    >>> clone = ForgettingBayesUserModel.from_bytes(tracking.to_bytes())
    >>> clone.forgetting, clone.n_obs, clone.predict_one(np.ones(1)) == tracking.predict_one(np.ones(1))
    (0.9, 400, True)

    """

    _kind = Kind.RLS

    def __init__(
        self,
        dim: int,
        prior_mean: np.ndarray | None = None,
        prior_precision: float = 5.0,
        noise_variance: float = 1.0,
        forgetting: float = 0.99,
    ):
        super().__init__(dim, prior_mean=prior_mean, prior_precision=prior_precision, noise_variance=noise_variance)
        self.forgetting = check_positive("forgetting", forgetting)
        if self.forgetting > 1.0:
            raise LearnerError(f"forgetting must be in (0, 1], got {forgetting!r}")

    def learn_one(self, x: np.ndarray, y: float) -> None:
        x = check_vector(x, self.dim)
        y = check_target(y)
        gamma = self.forgetting
        xt = self._xt
        xt[:-1] = x
        # A' = gamma A + x~ x~^T, so P' = (P - P x~ x~^T P / (gamma + x~^T P x~)) / gamma.
        u = self._P @ xt
        v = u / np.sqrt(gamma + float(xt @ u))
        self._P -= np.outer(v, v)
        if gamma != 1.0:
            self._P /= gamma
            self._b *= gamma
        self._b += y * xt
        self._mean = self._P @ self._b
        self._chol = None
        self._n_obs += 1

    # Serialisation: [prior_precision, noise_variance, forgetting, b (d+1), upper triangle of P].

    def to_bytes(self) -> bytes:
        rows, cols = _codec.triu_indices(self.dim + 1)
        payload = np.concatenate(([self.prior_precision, self.noise_variance, self.forgetting], self._b,
                                  self._P[rows, cols]))
        return _codec.encode(self._kind, self.dim, self._n_obs, payload)

    @classmethod
    def _from_payload(cls, dim: int, n_obs: int, payload: np.ndarray) -> ForgettingBayesUserModel:
        n = dim + 1
        _codec.check_length(payload, 3 + n + n * (n + 1) // 2, cls._kind, dim)
        if not 0 < payload[2] <= 1:
            raise LearnerError(f"data holds forgetting={payload[2]}, must be in (0, 1]")
        base = BayesianLinearUserModel._from_payload.__func__(BayesianLinearUserModel, dim, n_obs,
                                                               np.concatenate((payload[:2], payload[3:])))
        model = cls(dim, prior_precision=base.prior_precision, noise_variance=base.noise_variance,
                    forgetting=float(payload[2]))
        model._P, model._b, model._mean, model._n_obs = base._P, base._b, base._mean, n_obs
        return model
