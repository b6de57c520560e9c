"""The exponential-weights core that Exp3 and Exp4 share: one cumulative loss per arm, weights from them."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from bandits.base import check_positive, check_probability
from bandits.errors import BanditError

__all__ = ["ExponentialWeights", "exp_weights"]


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


def check_observed(name: str, probability: float) -> float:
    """A probability that a loss was observed: in (0, 1], so ``loss / probability`` is finite."""
    if not (isinstance(probability, (int, float, np.floating)) and 0.0 < probability <= 1.0):
        raise BanditError(f"{name} must be in (0, 1]; got {probability!r}")
    return float(probability)


class ExponentialWeights:
    """Cumulative estimated losses ``L_a`` per arm and the weights

        w_a = (1 - gamma) * exp(-eta * L_a) / sum_b exp(-eta * L_b) + gamma / K

    Subclasses say how a round's feedback updates ``_losses`` (their ``learn_one``).
    An arm added later (:meth:`add_arm`) starts at the best arm's estimate: it is
    neither favoured nor written off before it has been tried.
    """

    name = ""
    version_number = 1
    _noun = "arm"  # how messages and repr name an arm

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
        """Each arm's weight (sums to 1)."""
        losses = np.array([self._losses[a] for a in self.arms])
        w = (1.0 - self.gamma) * exp_weights(losses, self.eta) + self.gamma / len(self.arms)
        return dict(zip(self.arms, (float(x) for x in w)))

    def add_arm(self, arm: str) -> None:
        """One more arm from now on; it starts at the best arm's estimated loss."""
        if arm in self._losses:
            return
        start = min(self._losses.values())
        self.arms = check_arms((*self.arms, arm))
        self._losses[arm] = start

    def state(self) -> dict:
        """The learned state as plain JSON-ready values."""
        return {"arms": list(self.arms), "losses": [self._losses[a] for a in self.arms], "n": self._n}

    @classmethod
    def from_state(cls, state: dict, **params):
        self = cls(state["arms"], **params)
        losses = [float(x) for x in state["losses"]]
        if len(losses) != len(self.arms) or not all(math.isfinite(x) for x in losses):
            raise BanditError(f"state must hold one finite loss per {cls._noun}; got {state!r:.120}")
        self._losses = dict(zip(self.arms, losses))
        self._n = int(state.get("n", 0))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._noun}s={list(self.arms)!r}, eta={self.eta!r}, gamma={self.gamma!r})"
