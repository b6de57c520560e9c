"""Exp3: choose one of several arms (here: feature-net versions) per round from bandit feedback."""

from __future__ import annotations

from bandits._exponential_weights import ExponentialWeights, check_loss, check_observed
from bandits.errors import BanditError

__all__ = ["Exp3"]


class Exp3(ExponentialWeights):
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

    Learned state (in :class:`~bandits._exponential_weights.ExponentialWeights`):
    ``_losses`` (arm -> cumulative estimated loss) and ``_n`` (rounds learned).

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
        self._losses[arm] += loss / check_observed("probability", probability)
        self._n += 1
