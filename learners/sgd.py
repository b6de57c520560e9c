"""Per-user linear regression updated online with river's SGD: Eddy's default learner."""

from __future__ import annotations

import operator

import numpy as np
from river import linear_model, optim
from river.utils import VectorDict

from learners import _codec
from learners._checks import check_positive, check_prior_mean, check_target, check_vector
from learners._codec import Kind
from learners.base import UserModel
from learners.errors import LearnerError

__all__ = ["RiverUserModel"]


class RiverUserModel(UserModel):
    """`river.linear_model.LinearRegression` with `river.optim.SGD` over an embedding.

    x of shape (dim,) is fed to river as the dict ``{0: x[0], 1: x[1], ...}``; the
    river model starts from `prior_mean` and takes one squared-loss SGD step per
    `learn_one`. Predictions are computed with numpy from river's weights.

    Parameters
    ----------
    dim
        Length of the embeddings x.
    prior_mean
        Initial ``[w, b]``, shape (dim + 1,): weights first, bias last. Defaults to zeros.
    lr
        SGD learning rate of the weights. River's squared loss has gradient
        ``2 (y_hat - y)``, so plain steps are stable only while ``lr * (|x|^2 + 1) < 1``.
    normalized
        Normalised LMS (default): each step is weighted by ``1 / (1 + |x|^2)`` (river's
        sample weight), so a step corrects at most a ``2 lr`` share of the error whatever
        the scale of the feature net's outputs. Without it an unnormalised embedding
        (|x|^2 of 10 or more is common) makes SGD diverge.
    l2
        River's L2 penalty: shrinks the weights (not the bias) towards 0, not towards `prior_mean`.
    intercept_lr
        Learning rate of the bias; None (default) uses `lr`. River's own default, 0.01, is
        independent of the optimizer's rate.

    Examples
    --------

    >>> import numpy as np
    >>> from learners.sgd import RiverUserModel

    >>> model = RiverUserModel(dim=2, prior_mean=np.array([1.0, 0.0, 0.5]), lr=0.1, normalized=False)
    >>> x = np.array([1.0, 2.0])
    >>> model.predict_one(x)  # the prior: 1*1 + 0*2 + 0.5
    1.5
    >>> model.learn_one(x, 3.0)
    >>> w, b = model.weights
    >>> w.round(2), round(b, 2)
    (array([1.3, 0.6]), 0.8)
    >>> model.predict_many(np.array([[1.0, 2.0], [0.0, 0.0]])).round(2)
    array([3.3, 0.8])

    >>> clone = RiverUserModel.from_bytes(model.to_bytes())
    >>> clone.n_obs, clone.predict_one(x) == model.predict_one(x)
    (1, True)

    """

    _kind = Kind.RIVER
    _N_HYPER = 4  # lr, intercept_lr, l2, normalized lead the serialised payload

    def __init__(
        self,
        dim: int,
        prior_mean: np.ndarray | None = None,
        lr: float = 0.05,
        l2: float = 0.0,
        intercept_lr: float | None = None,
        normalized: bool = True,
    ):
        super().__init__(dim)
        self.normalized = bool(normalized)
        self.prior_mean = prior_mean
        self.lr = check_positive("lr", lr)
        self.l2 = check_positive("l2", l2, allow_zero=True)
        self.intercept_lr = None if intercept_lr is None else check_positive("intercept_lr", intercept_lr, allow_zero=True)
        m0 = check_prior_mean(prior_mean, self.dim)
        self._getter = operator.itemgetter(*range(self.dim))  # dim == 1: a scalar, which broadcasts
        self._model = linear_model.LinearRegression(
            optimizer=optim.SGD(self.lr),
            l2=self.l2,
            intercept_init=float(m0[-1]),
            intercept_lr=self.lr if self.intercept_lr is None else self.intercept_lr,
        )
        self._set_state(m0)

    def _set_state(self, coef: np.ndarray) -> None:
        # River keeps the weights in `_weights`, a Rust `VectorDict` (the public
        # `weights` property returns a copy), and the bias in `intercept`.
        self._model._weights = VectorDict(dict(enumerate(coef[:-1].tolist())))
        self._model.intercept = float(coef[-1])
        self._coef_cache = coef.copy()
        self._stale = False

    def learn_one(self, x: np.ndarray, y: float) -> None:
        x = check_vector(x, self.dim)
        y = check_target(y)
        weight = 1.0 / (1.0 + float(x @ x)) if self.normalized else 1.0
        self._model.learn_one(dict(enumerate(x.tolist())), y, w=weight)
        self._stale = True
        self._n_obs += 1

    def _snapshot(self) -> object:
        return self._coef().copy(), self._n_obs

    def _restore(self, snapshot: object) -> None:
        coef, n_obs = snapshot
        self._set_state(coef)
        self._n_obs = self._model.optimizer.n_iterations = n_obs

    def _coef(self) -> np.ndarray:
        # The numpy copy of river's weights is refreshed lazily, so a burst of
        # learn_one calls (a replay) pays for one copy, not one per call.
        # (VectorDict.to_numpy(keys) is ~3x slower than this.)
        if self._stale:
            coef = self._coef_cache
            coef[:-1] = self._getter(self._model._weights.to_dict())
            coef[-1] = self._model.intercept
            self._stale = False
        return self._coef_cache

    def to_bytes(self) -> bytes:
        # The optimizer's iteration count is n_obs (one SGD step per learn_one),
        # so the header already carries what a learning-rate schedule would need.
        intercept_lr = self.lr if self.intercept_lr is None else self.intercept_lr
        payload = np.concatenate(([self.lr, intercept_lr, self.l2, float(self.normalized)], self._coef()))
        return _codec.encode(self._kind, self.dim, self._n_obs, payload)

    @classmethod
    def _from_payload(cls, dim: int, n_obs: int, payload: np.ndarray) -> RiverUserModel:
        _codec.check_length(payload, cls._N_HYPER + dim + 1, cls._kind, dim)
        lr, intercept_lr, l2, normalized = (float(v) for v in payload[: cls._N_HYPER])
        if lr <= 0 or intercept_lr < 0 or l2 < 0:
            raise LearnerError(f"data holds lr={lr}, intercept_lr={intercept_lr}, l2={l2}; need lr > 0, others >= 0")
        model = cls(dim, lr=lr, l2=l2, intercept_lr=intercept_lr, normalized=bool(normalized))
        model._set_state(np.array(payload[cls._N_HYPER :]))
        model._model.optimizer.n_iterations = n_obs
        model._n_obs = n_obs
        return model
