"""Bayesian linear regression that forgets: recursive least squares with a forgetting factor per part."""

from __future__ import annotations

import math

import numpy as np

from learners import _codec
from learners._checks import check_positive, check_prior_mean, check_target, check_vector
from learners._codec import Kind
from learners.errors import LearnerError
from learners.ridge import BayesianLinearUserModel

__all__ = ["ForgettingBayesUserModel"]


class ForgettingBayesUserModel(BayesianLinearUserModel):
    """`BayesianLinearUserModel` whose old observations fade, the bias faster than the weights.

    The state is the posterior ``N(theta, noise_variance P)`` of ``[w, b]``. Before each
    observation the precision ``A = P^-1`` becomes ``D A D`` with
    ``D = diag(sqrt(forgetting), ..., sqrt(forgetting), sqrt(bias_forgetting))``, keeping the
    mean: the uncertainty of each part grows at its own rate, and with one rate for both
    (``bias_forgetting == forgetting``, gamma) after n observations

        ``theta = (gamma^n Lambda + sum_i gamma^(n-i) x~_i x~_i^T)^-1 (gamma^n Lambda m0 + sum_i gamma^(n-i) x~_i y_i)``:

    recursive least squares with exponential forgetting, started from the ridge
    prior ``Lambda = diag(prior_precision, ..., bias_precision)``. The first
    observations are shrunk towards ``m0`` as in the plain Bayesian model (what a new
    user needs); the ``1 / (1 - gamma)`` most recent observations dominate once there
    are many (what a user whose taste drifts within a session needs). Still one
    O(d^2) Sherman-Morrison update per observation, in mean form
    (``theta += P x~ (y - x~ . theta) / (1 + x~' P x~)``).

    Why two rates and two strengths: on MovieLens (docs/demo.md) a user's offset
    (mood, the scale they rate on) drifts within a session faster than their taste,
    and is better known a priori (the population's offset is a good start) than
    their weights are. Defaults, tuned on the demo's stream with an in-process
    replica of the live arm: ``forgetting`` 0.995 (the last ~200 ratings carry the
    taste), ``bias_forgetting`` 0.97 (the last ~30 carry the offset),
    ``prior_precision`` 4 and ``bias_precision`` 8. ``None`` for either bias setting
    means "as the weights".

    Parameters
    ----------
    dim
        Length of the embeddings x.
    prior_mean
        Prior mean of ``[w, b]``, shape (dim + 1,); zeros by default.
    prior_precision
        Ridge strength of the prior on ``w``.
    noise_variance
        Observation noise variance; scales the posterior covariance only.
    forgetting
        Forgetting factor of ``w`` in (0, 1]; 1 with ``bias_forgetting`` 1 is `BayesianLinearUserModel` exactly.
    bias_forgetting
        Forgetting factor of ``b`` in (0, 1] (None: ``forgetting``).
    bias_precision
        Ridge strength of the prior on ``b`` (None: ``prior_precision``).

    Examples
    --------

    >>> import numpy as np
    >>> from learners.rls import ForgettingBayesUserModel

    A user whose taste flips half-way: with forgetting the model follows.

    >>> rng = np.random.default_rng(0)
    >>> tracking = ForgettingBayesUserModel(dim=1, prior_precision=1.0, forgetting=0.9, bias_forgetting=0.9)
    >>> plain = ForgettingBayesUserModel(dim=1, prior_precision=1.0, forgetting=1.0, bias_forgetting=1.0)
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
        prior_precision: float = 4.0,
        noise_variance: float = 1.0,
        forgetting: float = 0.995,
        bias_forgetting: float | None = 0.97,
        bias_precision: float | None = 8.0,
    ):
        super().__init__(dim, prior_mean=prior_mean, prior_precision=prior_precision, noise_variance=noise_variance)
        self.forgetting = _check_forgetting("forgetting", forgetting)
        self.bias_forgetting = self.forgetting if bias_forgetting is None else \
            _check_forgetting("bias_forgetting", bias_forgetting)
        self.bias_precision = self.prior_precision if bias_precision is None else \
            check_positive("bias_precision", bias_precision)
        lam = np.full(self.dim + 1, self.prior_precision)
        lam[-1] = self.bias_precision
        self._P = np.diag(1.0 / lam)
        self._mean = check_prior_mean(prior_mean, self.dim).copy()
        self._b = None  # the mean is the state here (BayesianLinearUserModel keeps b = P^-1 mean)
        self._set_decay()

    def _set_decay(self) -> None:
        keep = np.full(self.dim + 1, self.forgetting)
        keep[-1] = self.bias_forgetting
        # P -> D^-1 P D^-1, elementwise; None when nothing is forgotten
        self._decay = None if (keep == 1.0).all() else 1.0 / np.sqrt(np.outer(keep, keep))

    def learn_one(self, x: np.ndarray, y: float) -> None:
        x = check_vector(x, self.dim)
        y = check_target(y)
        xt = self._xt
        xt[:-1] = x
        if self._decay is not None:
            self._P *= self._decay
        u = self._P @ xt
        s = 1.0 + float(xt @ u)  # >= 1: P is positive definite
        v = u / math.sqrt(s)
        self._P -= np.outer(v, v)  # bitwise symmetric, as in BayesianLinearUserModel
        self._mean = self._mean + u * ((y - float(xt @ self._mean)) / s)
        self._chol = None
        self._n_obs += 1

    def _snapshot(self) -> object:
        return self._P.copy(), self._mean, self._n_obs  # learn_one changes P in place and rebinds the mean

    def _restore(self, snapshot: object) -> None:
        self._P, self._mean, self._n_obs = snapshot
        self._chol = None

    # Serialisation: [prior_precision, noise_variance, forgetting, bias_forgetting, bias_precision,
    # mean (d+1), upper triangle of P]. The layout before per-part forgetting, [prior_precision,
    # noise_variance, forgetting, b (d+1), upper triangle of P] (mean = P b), is still read.

    def to_bytes(self) -> bytes:
        rows, cols = _codec.triu_indices(self.dim + 1)
        payload = np.concatenate(([self.prior_precision, self.noise_variance, self.forgetting, self.bias_forgetting,
                                   self.bias_precision], self._mean, self._P[rows, cols]))
        return _codec.encode(self._kind, self.dim, self._n_obs, payload)

    @classmethod
    def _from_payload(cls, dim: int, n_obs: int, payload: np.ndarray) -> ForgettingBayesUserModel:
        n = dim + 1
        tri = n * (n + 1) // 2
        if payload.size == 3 + n + tri:  # the one-rate layout: b, not the mean
            hyper, state, from_b = (payload[0], payload[1], payload[2], payload[2], payload[0]), payload[3:], True
        else:
            _codec.check_length(payload, 5 + n + tri, cls._kind, dim)
            hyper, state, from_b = tuple(payload[:5]), payload[5:], False
        pp, nv, g, gb, bp = (float(v) for v in hyper)
        for name, value in (("forgetting", g), ("bias_forgetting", gb)):
            if not 0 < value <= 1:
                raise LearnerError(f"data holds {name}={value}, must be in (0, 1]")
        if pp <= 0 or nv <= 0 or bp <= 0:
            raise LearnerError(f"data holds prior_precision={pp}, noise_variance={nv}, bias_precision={bp}; "
                               "all must be > 0")
        model = cls(dim, prior_precision=pp, noise_variance=nv, forgetting=g, bias_forgetting=gb, bias_precision=bp)
        rows, cols = _codec.triu_indices(n)
        P = np.empty((n, n))
        P[rows, cols] = state[n:]
        P[cols, rows] = state[n:]
        if not (np.diag(P) > 0).all():
            raise LearnerError("data holds a posterior covariance with a non-positive diagonal")
        model._P = P
        model._mean = P @ state[:n] if from_b else state[:n].copy()
        model._n_obs = n_obs
        return model


def _check_forgetting(name: str, value: float) -> float:
    value = check_positive(name, value)
    if value > 1.0:
        raise LearnerError(f"{name} must be in (0, 1], got {value!r}")
    return value
