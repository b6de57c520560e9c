"""Exp4: an ensemble of experts (here: feature-net versions) weighted by their estimated losses."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from bandits._exponential_weights import ExponentialWeights, check_loss, check_observed
from bandits.errors import BanditError

__all__ = ["Exp4"]


class Exp4(ExponentialWeights):
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
    _noun = "expert"

    def __init__(self, experts: Iterable[str], eta: float = 0.05, gamma: float = 0.0) -> None:
        super().__init__(experts, eta=eta, gamma=gamma)

    @property
    def experts(self) -> tuple[str, ...]:
        return self.arms

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
            update[e] = check_loss(loss) / check_observed(f"probabilities[{e!r}]", p)
        for e, x in update.items():
            self._losses[e] += x
        self._n += 1
