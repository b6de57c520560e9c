"""Apprentice mode's decision: the application's own default action, logged with propensity 1.

In apprentice mode (Azure Personalizer's) a deployment does not explore: it
serves what the application would have shown anyway, the query's
``default_action`` (a candidate id; the first candidate when the query names
none), and logs it as a deterministic decision (pmf one-hot, propensity 1).
The user models and the population statistics learn from its feedback as
usual, and the decision log keeps the learned model's scores of every
candidate, so ``eddy apprentice evaluate`` can estimate off-policy what the
learned policy would have earned on the same rounds.

>>> from stream.events import Item, Query
>>> q = Query("r1", "u1", 0.0, {}, (Item("a"), Item("b"), Item("c")), default_action="b")
>>> d = default_decision(q)
>>> d.chosen, d.propensity, d.pmf.tolist(), d.policy
(1, 1.0, [0.0, 1.0, 0.0], 'apprentice')
>>> default_decision(Query("r2", "u1", 0.0, {}, (Item("a"), Item("b")))).chosen
0
"""

from __future__ import annotations

import numpy as np

from bandits.base import Decision as PolicyDecision
from stream.events import Query

__all__ = ["POLICY", "POLICY_VERSION", "default_index", "default_decision"]

POLICY = "apprentice"
"""The ``policy`` field of a decision served in apprentice mode (what ``eddy apprentice evaluate`` selects)."""

POLICY_VERSION = "apprentice/1?default=query"


def default_index(query: Query) -> int:
    """Index of the query's ``default_action`` among its candidates (decoding checked it is one), else 0."""
    if query.default_action is None:
        return 0
    for i, c in enumerate(query.candidates):
        if c.id == query.default_action:
            return i
    raise ValueError(f"default_action {query.default_action!r} is not one of the candidates")


def default_decision(query: Query) -> PolicyDecision:
    chosen = default_index(query)
    pmf = np.zeros(len(query.candidates))
    pmf[chosen] = 1.0
    pmf.flags.writeable = False
    return PolicyDecision(pmf=pmf, chosen=chosen, propensity=1.0, policy=POLICY, policy_version=POLICY_VERSION)
