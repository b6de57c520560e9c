"""Slates: a query that asks for ``k`` > 1 items gets ``k`` positions, filled one after another.

Position 0 is the policy's own decision. Position ``j`` draws from the policy's
pmf renormalised over the candidates positions ``0..j-1`` did not take (a
Plackett-Luce slate over the policy's distribution), with one uniform from
its own seed (:func:`slot_seed`), by inverse CDF as the policies draw. When
the policy left no mass on the remaining candidates (a greedy policy, the
apprentice mode), the remaining candidate with the best score takes the
position with probability 1, which is what ``k`` > 1 served before slates
were logged. Each position is logged as its own :class:`~stream.events.Decision`
(``position`` = j) with its pmf over all candidates (0 for those taken), so

* the propensities of a slate's decisions multiply to the probability of the
  whole ranking, and the pmf of each position is a full action distribution
  (what position-wise off-policy evaluation needs);
* each position's draw can be repeated from its own log record.

Feedback names its position (``Feedback.position``) and joins that position's
decision: the engine keys a position's join record, applied-marker, held
feedback and reward wait by :func:`slot_key`.

>>> from bandits.base import Decision as PolicyDecision
>>> first = PolicyDecision(np.array([0.5, 0.25, 0.25]), 0, 0.5, "softmax", "softmax/1")
>>> [(s.chosen, s.pmf.tolist()) for s in fill(first, np.array([3.0, 2.0, 1.0]), 2, seed=7)][1][1]
[0.0, 0.5, 0.5]
>>> slot_key("r1", 0), slot_key("r1", 2)
('r1', 'r1\\x1f2')
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from bandits import decision_seed
from bandits.base import Decision as PolicyDecision
from stream.events import Decision, Prediction

SLOT_SEPARATOR = "\x1f"  # ASCII unit separator: no request id an application sends is expected to hold it


def slot_key(request_id: str, position: int) -> str:
    """The key of one position's decision in the join store: the request id itself for position 0, so a
    query without a slate keeps the keys it always had."""
    return request_id if position == 0 else f"{request_id}{SLOT_SEPARATOR}{position}"


def slot_seed(seed: int, position: int) -> int:
    """The seed of position ``position``'s draw (position 0 uses the request's own ``seed``)."""
    return seed if position == 0 else decision_seed(f"{seed}:slot:{position}")


@dataclass(frozen=True)
class Slot:
    position: int
    chosen: int
    pmf: np.ndarray  # over every candidate; 0 for those earlier positions took
    propensity: float
    seed: int


def fill(first: PolicyDecision, scores: np.ndarray, k: int, *, seed: int) -> list[Slot]:
    """The ``k`` positions of a slate whose position 0 is the policy's decision ``first`` (drawn with ``seed``)."""
    base = np.asarray(first.pmf, dtype=np.float64)
    slots = [Slot(0, int(first.chosen), base, float(first.propensity), seed)]
    free = np.ones(base.shape[0], dtype=bool)
    free[first.chosen] = False
    by_score = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    for j in range(1, min(k, base.shape[0])):
        s = slot_seed(seed, j)
        mass = np.where(free, base, 0.0)
        total = float(mass.sum())
        if total > 0.0:
            pmf = mass / total
            cdf = np.cumsum(pmf)
            chosen = int(np.searchsorted(cdf, np.random.default_rng(s).random() * cdf[-1], side="right"))
            if chosen >= pmf.shape[0] or not free[chosen]:  # u * total rounded up to total
                chosen = int(np.flatnonzero(pmf)[-1])
        else:  # no mass left on the free candidates: the best-scored one, deterministically
            chosen = int(next(i for i in by_score if free[i]))
            pmf = np.zeros_like(base)
            pmf[chosen] = 1.0
        free[chosen] = False
        slots.append(Slot(j, chosen, pmf, float(pmf[chosen]), s))
    return slots


def slate_records(decision: Decision, prediction: Prediction, slots: list[Slot]) -> tuple[list[Decision], Prediction]:
    """One decision per position (position 0's is ``decision`` itself), and the prediction with the slate's items
    as ``chosen``, in position order, ranked first."""
    decisions = [decision] + [
        msgspec.structs.replace(decision, pmf=tuple(float(p) for p in s.pmf), chosen_index=s.chosen,
                                propensity=s.propensity, seed=s.seed, position=s.position,
                                taken=tuple(t.chosen for t in slots[:s.position]))
        for s in slots[1:]]
    ids = [c.id for c in decision.candidates]
    chosen = tuple(ids[s.chosen] for s in slots)
    by_id = {r.item_id: r for r in prediction.ranked}
    taken = set(chosen)
    ranked = tuple(by_id[i] for i in chosen) + tuple(r for r in prediction.ranked if r.item_id not in taken)
    return decisions, msgspec.structs.replace(prediction, ranked=ranked, chosen=chosen)


def slate_probability(decisions: list[Decision]) -> float:
    """The probability of the logged ranking: the product of its positions' propensities."""
    return float(np.prod([d.propensity for d in decisions]))


__all__ = ["SLOT_SEPARATOR", "Slot", "fill", "slate_probability", "slate_records", "slot_key", "slot_seed"]
