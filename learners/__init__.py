"""Per-user online learners for Eddy's hybrid model ``score = w_u . f(x, item) + b_u``.

Pure computation: numpy and river only, no I/O. Every learner takes the
feature net's embedding x of shape (dim,) and keeps its own bias.

Examples
--------

>>> import numpy as np
>>> from learners import load_user_model, make_user_model

>>> model = make_user_model("bayes", dim=2, prior_mean=np.array([1.0, 0.0, 0.0]), prior_precision=4.0)
>>> model.learn_one(np.array([1.0, 1.0]), 2.0)
>>> data = model.to_bytes()
>>> clone = load_user_model(data)
>>> type(clone).__name__, clone.n_obs
('BayesianLinearUserModel', 1)

"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from learners import _codec
from learners._checks import all_finite
from learners._codec import Kind
from learners.base import UserModel
from learners.errors import LearnerError
from learners.population import PopulationModel
from learners.ridge import BayesianLinearUserModel
from learners.rls import ForgettingBayesUserModel
from learners.sgd import RiverUserModel

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "BayesianLinearUserModel",
    "ForgettingBayesUserModel",
    "LearnerError",
    "PopulationModel",
    "RiverUserModel",
    "UserModel",
    "all_finite",
    "load_user_model",
    "make_user_model",
]

DEFAULT_KIND = "river"

KINDS: dict[str, type[UserModel]] = {
    "river": RiverUserModel,
    "bayes": BayesianLinearUserModel,
    "ridge": BayesianLinearUserModel,
    "rls": ForgettingBayesUserModel,
}

_BY_TAG: dict[Kind, type[UserModel]] = {cls._kind: cls for cls in KINDS.values()}


def make_user_model(kind: str, dim: int, prior_mean: np.ndarray | None = None, **hyper: float) -> UserModel:
    """A fresh user model of the given kind.

    Parameters
    ----------
    kind
        "river" (`RiverUserModel`, the default learner, see `DEFAULT_KIND`), or
        "bayes" / "ridge" (`BayesianLinearUserModel`), or "rls" (`ForgettingBayesUserModel`:
        the Bayesian model with a forgetting factor, the demo's learner).
    dim
        Length of the embeddings x.
    prior_mean
        Initial ``[w, b]`` of shape (dim + 1,), e.g. `PopulationModel.mean()`; zeros if None.
    **hyper
        That kind's hyperparameters, e.g. ``lr`` and ``l2`` for "river",
        ``prior_precision`` and ``noise_variance`` for "bayes".

    """
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise LearnerError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    allowed = _hyperparameters(cls)
    unknown = sorted(set(hyper) - allowed)
    if unknown:
        raise LearnerError(f"hyperparameter {unknown[0]!r} is not one of {kind!r}'s {sorted(allowed)}")
    return cls(dim, prior_mean=prior_mean, **hyper)


@functools.cache
def _hyperparameters(cls: type[UserModel]) -> frozenset[str]:
    # once per class: reading a signature costs more than making the model (each new user makes one)
    return frozenset(inspect.signature(cls).parameters) - {"dim", "prior_mean"}


def load_user_model(data: bytes) -> UserModel:
    """Rebuild any user model from its `to_bytes` output, dispatching on the header's kind tag."""
    kind, dim, n_obs, payload = _codec.decode(data)
    cls = _BY_TAG.get(kind)
    if cls is None:
        raise LearnerError(f"data holds a {kind.name.lower()} model, not a user model")
    return cls._from_payload(dim, n_obs, payload)
