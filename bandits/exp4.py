"""Exp4: an ensemble of experts (here: feature-net versions) weighted by their estimated losses."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from bandits.base import check_positive, check_probability
from bandits.errors import BanditError
from bandits.exp3 import check_arms, check_loss, exp_weights

__all__ = ["Exp4"]


class Exp4:
    """Exp4's expert weighting (Auer, Cesa-Bianchi, Freund and Schapire, 2002), in its loss form.

    Every expert advises on every round; the ensemble follows all of them at once,
    each with weight

        w_e = (1 - gamma) * exp(-eta * L_e) / sum_f exp(-eta * L_f) + gamma / K

    :meth:`predict_one` mixes the experts' advice with these weights: numbers
    (scores) or arrays (scores per candidate, or action distributions, whose
    mixture is again a distribution). ``learn_one`` adds each expert's
    importance-weighted loss ``loss_e / p_e`` to ``L_e``, where ``p_e`` is the
    probability that ``loss_e`` was observed. In Exp4 proper only the chosen
    action's loss is seen, and ``p_e`` comes from the mixture; when every expert's
    loss is observed (Eddy: every version scores the item the feedback names)
    ``p_e = 1`` and the update is Hedge's.

    Args:
        experts: the experts' names (feature-net versions), in a fixed order.
        eta: learning rate, > 0.
        gamma: uniform weight mixed in, in [0, 1]: no expert's weight falls below ``gamma / K``.

    >>> import numpy as np
    >>> from bandits.exp4 import Exp4
    >>> ensemble = Exp4(["v1", "v2"], eta=1.0, gamma=0.0)
    >>> ensemble.predict_one({"v1": np.array([1.0, 3.0]), "v2": np.array([3.0, 1.0])}).tolist()
    [2.0, 2.0]
    >>> for _ in range(5):
    ...     ensemble.learn_one({"v1": 0.8, "v2": 0.2})
    >>> {e: round(w, 3) for e, w in ensemble.predict_proba_one().items()}
    {'v1': 0.047, 'v2': 0.953}
    >>> ensemble.predict_one({"v1": 1.0, "v2": 3.0}).round(3)
    np.float64(2.905)
    """

    name = "exp4"
    version_number = 1

    def __init__(self, experts: Iterable[str], eta: float = 0.05, gamma: float = 0.0) -> None:
        self.experts = check_arms(experts)
        self.eta = check_positive("eta", eta)
        self.gamma = check_probability("gamma", gamma)
        self._losses = dict.fromkeys(self.experts, 0.0)
        self._n = 0

    @property
    def version(self) -> str:
        return f"{self.name}/{self.version_number}?eta={self.eta!r}&gamma={self.gamma!r}"

    @property
    def n_learned(self) -> int:
        return self._n

    def predict_proba_one(self) -> dict[str, float]:
        """Each expert's weight in the ensemble (sums to 1)."""
        losses = np.array([self._losses[e] for e in self.experts])
        w = (1.0 - self.gamma) * exp_weights(losses, self.eta) + self.gamma / len(self.experts)
        return dict(zip(self.experts, (float(x) for x in w)))

    def predict_one(self, advice: Mapping[str, Any]) -> Any:
        """The weighted mean of every expert's advice (each expert must advise)."""
        missing = [e for e in self.experts if e not in advice]
        if missing:
            raise BanditError(f"advice must come from every expert; missing {missing}")
        weights = self.predict_proba_one()
        return sum(weights[e] * np.asarray(advice[e], dtype=np.float64) for e in self.experts)

    def learn_one(self, losses: Mapping[str, float], probabilities: Mapping[str, float] | None = None) -> None:
        """Each expert's loss in [0, 1] this round; ``probabilities``: how likely each was observed (default 1)."""
        if set(losses) - set(self.experts):
            raise BanditError(f"losses must name experts of {list(self.experts)}; got {sorted(losses)}")
        update = {}
        for e, loss in losses.items():
            p = 1.0 if probabilities is None else probabilities[e]
            if not (isinstance(p, (int, float, np.floating)) and 0.0 < p <= 1.0):
                raise BanditError(f"probabilities[{e!r}] must be in (0, 1]; got {p!r}")
            update[e] = check_loss(loss) / float(p)
        for e, x in update.items():
            self._losses[e] += x
        self._n += 1

    def add_arm(self, expert: str) -> None:
        """One more expert from now on; it starts at the best expert's estimated loss."""
        if expert in self._losses:
            return
        start = min(self._losses.values())
        self.experts = check_arms((*self.experts, expert))
        self._losses[expert] = start

    @property
    def arms(self) -> tuple[str, ...]:
        return self.experts

    def state(self) -> dict:
        return {"arms": list(self.experts), "losses": [self._losses[e] for e in self.experts], "n": self._n}

    @classmethod
    def from_state(cls, state: dict, **params) -> "Exp4":
        self = cls(state["arms"], **params)
        losses = [float(x) for x in state["losses"]]
        if len(losses) != len(self.experts) or not all(math.isfinite(x) for x in losses):
            raise BanditError(f"state must hold one finite loss per expert; got {state!r:.120}")
        self._losses = dict(zip(self.experts, losses))
        self._n = int(state.get("n", 0))
        return self

    def __repr__(self) -> str:
        return f"Exp4(experts={list(self.experts)!r}, eta={self.eta!r}, gamma={self.gamma!r})"
