"""IDK prediction cascade: a cheap feature net answers when it is sure, the live (expensive) one otherwise.

Every query is scored first by the cheap version (its embeddings, its users' weights).
The cheap model says "I don't know" when the margin between its two best scores is
below ``margin`` (score units, i.e. reward units): the choice it would make hangs on
a difference it cannot vouch for. Those queries, and only those, are scored again by
the live version, which then answers. A query with one candidate has no choice to
make, so the cheap model answers it.

The rule is a deterministic function of the scores the cheap model computed for this
request, so whichever model answers, the pmf its policy draws from is the full
distribution of the decision as made, and the logged propensity stays exact. The
decision's ``feature_net_version`` is the version that answered (its embeddings are
the ones the join record keeps, and its user weights learn from the feedback) and
``escalated`` says that the cheap model was asked first and was unsure.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, TypeVar

import numpy as np

from features.model import FeatureModel
from stream.engine.records import InRecord
from stream.events import Query


class _Scored(Protocol):
    query: Query
    scores: np.ndarray
    escalated: bool


S = TypeVar("S", bound=_Scored)
Pair = tuple[InRecord, Query]


def top_two_margin(scores: np.ndarray) -> float:
    """Best score minus the runner-up's; infinite with fewer than two candidates.

    >>> top_two_margin(np.array([0.2, 0.9, 0.7]))
    0.2
    >>> top_two_margin(np.array([3.0]))
    inf
    """
    if len(scores) < 2:
        return float("inf")
    top = np.partition(np.asarray(scores, dtype=float), len(scores) - 2)[-2:]
    return round(float(top[1] - top[0]), 12)


class Cascade:
    """The cheap model and the margin under which it is unsure.

    Parameters
    ----------
    cheap
        The feature net that answers first (the live one is the expensive one).
    margin
        The cheap model is unsure when its top-two score margin is below this; 0 never
        escalates (always cheap), ``inf`` always does (always expensive).
    """

    def __init__(self, cheap: FeatureModel, margin: float):
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.cheap = cheap
        self.margin = float(margin)

    def unsure(self, scores: np.ndarray) -> bool:
        return top_two_margin(scores) < self.margin

    def score(self, queries: Sequence[Pair], expensive: FeatureModel,
              score_with: Callable[[FeatureModel, list[Pair]], list[S]]) -> list[S]:
        """``score_with(model, queries)`` (which returns a result for each query that did not fail,
        in order) by the cheap model, then by ``expensive`` for those it is unsure of; the results
        in the order of ``queries``, whose request ids are unique."""
        cheap = score_with(self.cheap, list(queries))
        sure = [s for s in cheap if not self.unsure(s.scores)]
        unsure = {s.query.request_id for s in cheap if self.unsure(s.scores)}
        escalated = score_with(expensive, [(r, q) for r, q in queries if q.request_id in unsure]) if unsure else []
        for s in escalated:
            s.escalated = True
        position = {q.request_id: i for i, (_, q) in enumerate(queries)}
        return sorted(sure + escalated, key=lambda s: position[s.query.request_id])


__all__ = ["Cascade", "top_two_margin"]
