"""Exp3: choose one of several arms (here: feature-net versions) per round from bandit feedback."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from bandits.base import check_positive, check_probability
from bandits.errors import BanditError

__all__ = ["Exp3", "exp_weights"]


def exp_weights(losses: np.ndarray, eta: float) -> np.ndarray:
    """``softmax(-eta * losses)``, computed from ``losses - min(losses)`` so it cannot overflow."""
    z = np.exp(-eta * (losses - losses.min()))
    return z / z.sum()


def check_arms(arms: Iterable[str]) -> tuple[str, ...]:
    arms = tuple(arms)
    if not arms or not all(isinstance(a, str) and a for a in arms) or len(set(arms)) != len(arms):
        raise BanditError(f"arms must be distinct non-empty strings, at least one; got {arms!r:.120}")
    return arms


def check_loss(loss: float) -> float:
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(loss) <= 1.0:
        raise BanditError(f"loss must be a number in [0, 1]; got {loss!r}")
    return float(loss)


class Exp3:
    """Exp3 (Auer, Cesa-Bianchi, Freund and Schapire, 2002), in its loss form.

    Each round the learner picks one arm ``i`` with probability

        q_i = (1 - gamma) * exp(-eta * L_i) / sum_j exp(-eta * L_j) + gamma / K

    and sees the loss (in [0, 1]) of that arm only. ``learn_one`` adds the
    importance-weighted loss ``loss / q_i`` to ``L_i``: an unbiased estimate of
    the arm's cumulative loss, whatever the other arms' losses were. ``gamma``
    keeps every arm's probability at least ``gamma / K``, which bounds those
    weights by ``K / gamma``.

    Args:
        arms: the arms' names (feature-net versions), in a fixed order.
        eta: learning rate, > 0.
        gamma: uniform exploration mixed in, in [0, 1].

    Learned state: ``_losses`` (arm -> cumulative estimated loss) and ``_n`` (rounds learned).
    An arm added later (:meth:`add_arm`) starts at the best arm's estimate: it is
    neither favoured nor written off before it has been tried.

    >>> from bandits.exp3 import Exp3
    >>> selector = Exp3(["v1", "v2"], eta=0.5, gamma=0.1)
    >>> selector.predict_proba_one()
    {'v1': 0.5, 'v2': 0.5}
    >>> for _ in range(20):  # v2 answers well, v1 badly
    ...     q = selector.predict_proba_one()
    ...     selector.learn_one("v1", 0.9, probability=q["v1"])
    ...     selector.learn_one("v2", 0.1, probability=q["v2"])
    >>> {arm: round(p, 3) for arm, p in selector.predict_proba_one().items()}
    {'v1': 0.05, 'v2': 0.95}
    >>> selector.pick(0.01), selector.pick(0.99)
    ('v1', 'v2')
    >>> Exp3.from_state(selector.state(), eta=0.5, gamma=0.1).predict_proba_one() == selector.predict_proba_one()
    True
    """

    name = "exp3"
    version_number = 1

    def __init__(self, arms: Iterable[str], eta: float = 0.05, gamma: float = 0.05) -> None:
        self.arms = check_arms(arms)
        self.eta = check_positive("eta", eta)
        self.gamma = check_probability("gamma", gamma)
        self._losses = dict.fromkeys(self.arms, 0.0)
        self._n = 0

    @property
    def version(self) -> str:
        return f"{self.name}/{self.version_number}?eta={self.eta!r}&gamma={self.gamma!r}"

    @property
    def n_learned(self) -> int:
        return self._n

    def predict_proba_one(self) -> dict[str, float]:
        """Each arm's probability of being picked this round (sums to 1)."""
        losses = np.array([self._losses[a] for a in self.arms])
        q = (1.0 - self.gamma) * exp_weights(losses, self.eta) + self.gamma / len(self.arms)
        return dict(zip(self.arms, (float(p) for p in q)))

    def pick(self, u: float) -> str:
        """The arm at ``u`` (a uniform draw in [0, 1)) on the inverse CDF of :meth:`predict_proba_one`."""
        if not 0.0 <= u < 1.0:
            raise BanditError(f"u must be a uniform draw in [0, 1); got {u!r}")
        acc = 0.0
        for arm, p in self.predict_proba_one().items():
            acc += p
            if u < acc:
                return arm
        return self.arms[-1]  # u within rounding of 1

    def learn_one(self, arm: str, loss: float, *, probability: float) -> None:
        """The loss of ``arm``, the arm that answered, which was picked with ``probability``."""
        if arm not in self._losses:
            raise BanditError(f"arm must be one of {list(self.arms)}; got {arm!r}")
        loss = check_loss(loss)
        if not (isinstance(probability, (int, float, np.floating)) and 0.0 < probability <= 1.0):
            raise BanditError(f"probability must be in (0, 1]; got {probability!r}")
        self._losses[arm] += loss / float(probability)
        self._n += 1

    def add_arm(self, arm: str) -> None:
        """Serve one more arm from now on; it starts at the best arm's estimated loss."""
        if arm in self._losses:
            return
        start = min(self._losses.values())
        self.arms = check_arms((*self.arms, arm))
        self._losses[arm] = start

    def state(self) -> dict:
        """The learned state as plain JSON-ready values."""
        return {"arms": list(self.arms), "losses": [self._losses[a] for a in self.arms], "n": self._n}

    @classmethod
    def from_state(cls, state: dict, **params) -> "Exp3":
        self = cls(state["arms"], **params)
        losses = [float(x) for x in state["losses"]]
        if len(losses) != len(self.arms) or not all(math.isfinite(x) for x in losses):
            raise BanditError(f"state must hold one finite loss per arm; got {state!r:.120}")
        self._losses = dict(zip(self.arms, losses))
        self._n = int(state.get("n", 0))
        return self

    def __repr__(self) -> str:
        return f"Exp3(arms={list(self.arms)!r}, eta={self.eta!r}, gamma={self.gamma!r})"
