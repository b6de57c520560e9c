"""The per-user model interface.

Eddy scores an item for user u as ``w_u . f(x, item) + b_u``: ``f`` is the
offline-trained feature net's embedding of one (context, item) pair, of shape
(dim,), and ``w_u`` and ``b_u`` are learned online from that user's feedback.
A `UserModel` owns one user's ``(w_u, b_u)``; callers pass the bare embedding,
the bias is handled inside.

Subclasses implement `learn_one`, `_coef` (the current ``[w, b]`` as one
(dim + 1,) array) and the serialisation pair; prediction and input checks live
here.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import numpy as np

from learners._checks import check_dim, check_matrix, check_vector
from learners import _codec
from learners._codec import Kind

__all__ = ["UserModel"]


class UserModel(abc.ABC):
    """One user's linear head ``w . x + b`` over a dim-dimensional embedding.

    Parameters
    ----------
    dim
        Length of the embeddings x.

    """

    _kind: ClassVar[Kind]

    def __init__(self, dim: int):
        self.dim = check_dim(dim)
        self._n_obs = 0

    @property
    def n_obs(self) -> int:
        """How many observations `learn_one` has seen (kept across `to_bytes`/`from_bytes`)."""
        return self._n_obs

    @abc.abstractmethod
    def learn_one(self, x: np.ndarray, y: float) -> None:
        """Update the model with one observation.

        Parameters
        ----------
        x
            Embedding of shape (dim,), finite. Not modified.
        y
            Observed reward or rating, finite.

        """

    def learn_one_checked(self, x: np.ndarray, y: float) -> tuple[float, float]:
        """`learn_one`, then ``(error, delta_norm)``: ``y`` minus the prediction before learning,
        and the Euclidean norm of the change of ``[w, b]``.

        If learning raises, or leaves the weights non-finite (then :class:`FloatingPointError`
        is raised), the model is put back exactly as it was: one bad observation never
        leaves a half-learned model behind.

        >>> import numpy as np
        >>> from learners import make_user_model
        >>> m = make_user_model("bayes", dim=1)
        >>> err, delta = m.learn_one_checked(np.array([1.0]), 2.0)
        >>> round(err, 2), round(delta, 3), m.n_obs
        (2.0, 0.943, 1)
        """
        before = self._coef().copy()
        snapshot = self._snapshot()
        try:
            self.learn_one(x, y)
            after = self._coef()
            err = float(y) - float(np.asarray(x, dtype=np.float64) @ before[:-1] + before[-1])
            step = after - before
            # One dot product measures the step and, being finite, proves every weight is (``before``
            # always is); only a non-finite one, overflow or a bad weight, needs the entry-wise check.
            squared = float(step @ step)
            if not math.isfinite(err) or (not math.isfinite(squared) and not np.isfinite(after).all()):
                raise FloatingPointError("learning this observation made the weights non-finite")
            return err, math.sqrt(squared)
        except BaseException:
            self._restore(snapshot)
            raise

    def _snapshot(self) -> object:
        """What `_restore` needs to undo one `learn_one` (subclasses give a cheaper one)."""
        return self.to_bytes()

    def _restore(self, snapshot: object) -> None:
        self.__dict__.update(type(self).from_bytes(snapshot).__dict__)

    @abc.abstractmethod
    def _coef(self) -> np.ndarray:
        """The current point estimate ``[w..., b]``, shape (dim + 1,). Internal: do not modify."""

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """Serialise to the compact versioned format of `learners._codec`."""

    @classmethod
    def from_bytes(cls, data: bytes) -> UserModel:
        """Rebuild a model from `to_bytes` output; `LearnerError` on corrupt, truncated or foreign bytes.

        The prior is folded into the learned state, so the rebuilt model's ``prior_mean`` is None.
        """
        _, dim, n_obs, payload = _codec.decode(data, cls._kind)
        return cls._from_payload(dim, n_obs, payload)

    @classmethod
    @abc.abstractmethod
    def _from_payload(cls, dim: int, n_obs: int, payload: np.ndarray) -> UserModel:
        """Rebuild from a decoded (CRC- and kind-checked) payload; check its length and values."""

    @property
    def weights(self) -> tuple[np.ndarray, float]:
        """A copy of the current ``(w (dim,), b)``."""
        c = self._coef()
        return c[:-1].copy(), float(c[-1])

    def predict_one(self, x: np.ndarray) -> float:
        """Predicted y for one embedding x of shape (dim,)."""
        x = check_vector(x, self.dim)
        c = self._coef()
        return float(x @ c[:-1] + c[-1])

    def predict_many(self, X: np.ndarray) -> np.ndarray:
        """Predicted y for each row of X, shape (n, dim) -> (n,)."""
        X = check_matrix(X, self.dim)
        c = self._coef()
        return X @ c[:-1] + c[-1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, n_obs={self.n_obs})"
