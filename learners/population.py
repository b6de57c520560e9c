"""The population prior: where a new user's weights start, learned online over all users."""

from __future__ import annotations

import numpy as np

from learners import _codec
from learners._checks import check_dim, check_matrix, check_positive, check_prior_mean, check_target, check_vector
from learners._codec import Kind
from learners.errors import LearnerError

__all__ = ["PopulationModel"]


class PopulationModel:
    """Ridge regression of y on ``x~ = [x, 1]`` pooled over every user's feedback.

    The state is additive sufficient statistics: ``XtX = sum x~ x~^T``,
    ``Xty = sum x~ y`` and the count n. Each worker or partition keeps its own and
    the stream layer adds them up (``a + b``, ``a.merge(b)``, ``sum([a, b, c])``).
    `mean()` solves ``(lambda I + XtX) theta = lambda m0 + Xty``: the prior mean
    of ``[w, b]`` for a user never seen before (Velox: new users start from the
    average w).

    Parameters
    ----------
    dim
        Length of the embeddings x.
    prior_precision
        lambda: the weight of `prior_mean`, in unit-norm observations.
    prior_mean
        m0, shape (dim + 1,): what `mean()` returns before any data, e.g. the
        average of offline-learned user weights (see `from_user_weights`). Zeros by default.

    Examples
    --------

    >>> import numpy as np
    >>> from learners.population import PopulationModel

    Start from the average of offline-fitted user weights:

    >>> W = np.array([[1.0, 0.0], [3.0, 2.0]])
    >>> b = np.array([0.0, 1.0])
    >>> pop = PopulationModel.from_user_weights(W, b)
    >>> pop.mean()
    array([2. , 1. , 0.5])

    Two partitions learn online; their sum is one model over all the data:

    >>> rng = np.random.default_rng(0)
    >>> left, right = PopulationModel(2), PopulationModel(2)
    >>> for i in range(400):
    ...     x = rng.normal(size=2)
    ...     (left if i % 2 else right).learn_one(x, 2 * x[0] - x[1] + 1)
    >>> total = left + right
    >>> total.n_obs, total.mean().round(1)
    (400, array([ 2., -1.,  1.]))
    >>> PopulationModel.from_bytes(total.to_bytes()) == total
    True

    """

    def __init__(self, dim: int, prior_precision: float = 1.0, prior_mean: np.ndarray | None = None):
        self.dim = check_dim(dim)
        self.prior_precision = check_positive("prior_precision", prior_precision)
        self.prior_mean = prior_mean
        self._m0 = check_prior_mean(prior_mean, self.dim)
        self._XtX = np.zeros((self.dim + 1, self.dim + 1))
        self._Xty = np.zeros(self.dim + 1)
        self._n_obs = 0

    @classmethod
    def from_user_weights(cls, W: np.ndarray, b: np.ndarray, prior_precision: float = 1.0) -> PopulationModel:
        """A model whose prior mean is the average of offline-learned ``[w_u, b_u]``.

        Parameters
        ----------
        W
            User weights, shape (n_users, dim), n_users >= 1.
        b
            User biases, shape (n_users,).
        prior_precision
            How many observations' worth of weight the average keeps once online data arrives.

        """
        W = np.asarray(W)
        if W.ndim != 2 or W.shape[0] < 1:
            raise LearnerError(f"W must have shape (n_users, dim) with n_users >= 1, got {W.shape}")
        W = check_matrix(W, check_dim(W.shape[1]), name="W")
        b = check_vector(b, W.shape[0], name="b")
        return cls(W.shape[1], prior_precision=prior_precision, prior_mean=np.append(W.mean(axis=0), b.mean()))

    @property
    def n_obs(self) -> int:
        """Observations summed into the statistics."""
        return self._n_obs

    def learn_one(self, x: np.ndarray, y: float) -> None:
        """Add one observation, x of shape (dim,), to the sufficient statistics."""
        x = check_vector(x, self.dim)
        y = check_target(y)
        xt = np.append(x, 1.0)
        self._XtX += np.outer(xt, xt)
        self._Xty += y * xt
        self._n_obs += 1

    def learn_many(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add the rows of X (n, dim) with targets y (n,): the same statistics as n `learn_one` calls.

        >>> a, b = PopulationModel(2), PopulationModel(2)
        >>> X, y = np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([1.0, 3.0])
        >>> a.learn_many(X, y)
        >>> for xi, yi in zip(X, y):
        ...     b.learn_one(xi, yi)
        >>> a.n_obs, bool(np.allclose(a.mean(), b.mean()))
        (2, True)
        """
        X = check_matrix(X, self.dim)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (X.shape[0],) or not np.isfinite(y).all():
            raise LearnerError(f"y must be finite with shape ({X.shape[0]},), got shape {y.shape}")
        Xt = np.hstack((X, np.ones((X.shape[0], 1))))
        self._XtX += Xt.T @ Xt
        self._Xty += Xt.T @ y
        self._n_obs += X.shape[0]

    def mean(self) -> np.ndarray:
        """The ridge solution ``[w..., b]``, shape (dim + 1,): pass it as a new user's ``prior_mean``."""
        lam = self.prior_precision
        A = self._XtX + lam * np.eye(self.dim + 1)
        return np.linalg.solve(A, lam * self._m0 + self._Xty)

    # Merging: statistics add; the prior must be the same on both sides.

    def _check_compatible(self, other: object) -> PopulationModel:
        if not isinstance(other, PopulationModel):
            raise LearnerError(f"other must be a PopulationModel, got {type(other).__name__}")
        if other.dim != self.dim:
            raise LearnerError(f"other has dim {other.dim}, expected {self.dim}")
        if other.prior_precision != self.prior_precision or not np.array_equal(other._m0, self._m0):
            raise LearnerError("other has a different prior (prior_precision or prior_mean); merging needs the same one")
        return other

    def __iadd__(self, other: PopulationModel) -> PopulationModel:
        other = self._check_compatible(other)
        self._XtX += other._XtX
        self._Xty += other._Xty
        self._n_obs += other._n_obs
        return self

    def merge(self, other: PopulationModel) -> PopulationModel:
        """A new model holding both models' statistics; neither input changes."""
        merged = self.copy()
        merged += other
        return merged

    __add__ = merge

    def __radd__(self, other: object) -> PopulationModel:
        if isinstance(other, int) and other == 0:  # so that sum([a, b, ...]) works
            return self.copy()
        return NotImplemented

    def copy(self) -> PopulationModel:
        """An independent model with the same statistics (what ``from_bytes(to_bytes())`` gives, without the bytes)."""
        new = PopulationModel(self.dim, self.prior_precision, self._m0)
        new.prior_mean = self.prior_mean
        new._XtX = self._XtX.copy()
        new._Xty = self._Xty.copy()
        new._n_obs = self._n_obs
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PopulationModel):
            return NotImplemented
        return (
            self.dim == other.dim
            and self._n_obs == other._n_obs
            and self.prior_precision == other.prior_precision
            and np.array_equal(self._m0, other._m0)
            and np.array_equal(self._XtX, other._XtX)
            and np.array_equal(self._Xty, other._Xty)
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"PopulationModel(dim={self.dim}, n_obs={self.n_obs}, prior_precision={self.prior_precision})"

    # Serialisation: [prior_precision, m0 (d+1), Xty (d+1), upper triangle of XtX], float64.

    def to_bytes(self) -> bytes:
        """Serialise to the compact versioned format of `learners._codec`."""
        rows, cols = _codec.triu_indices(self.dim + 1)
        payload = np.concatenate(([self.prior_precision], self._m0, self._Xty, self._XtX[rows, cols]))
        return _codec.encode(Kind.POPULATION, self.dim, self._n_obs, payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> PopulationModel:
        """Rebuild a model from `to_bytes` output; `LearnerError` on corrupt, truncated or foreign bytes."""
        _, dim, n_obs, payload = _codec.decode(data, Kind.POPULATION)
        n = dim + 1
        _codec.check_length(payload, 1 + 2 * n + n * (n + 1) // 2, Kind.POPULATION, dim)
        if payload[0] <= 0:
            raise LearnerError(f"data holds prior_precision={payload[0]}, must be > 0")
        model = cls(dim, prior_precision=float(payload[0]), prior_mean=payload[1 : 1 + n])
        model.prior_mean = model._m0.copy()
        model._Xty = payload[1 + n : 1 + 2 * n].copy()
        rows, cols = _codec.triu_indices(n)
        model._XtX[rows, cols] = payload[1 + 2 * n :]
        model._XtX[cols, rows] = payload[1 + 2 * n :]
        model._n_obs = n_obs
        return model
