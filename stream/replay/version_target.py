"""``logged=<version>:<spec>``: a policy over one feature-net version's *logged* scores.

With model selection (docs/design.md, "Model selection") every served version scores
every query and the decision logs all of their scores (``version_scores``), whichever
version answered. So one log evaluates each version offline: the target is the policy
``spec`` over that version's scores, with the logged ``pmf`` (the probability over both
the version draw and the exploration draw) as the logging propensity. Unlike
``fn=<version>:<spec>``, nothing is recomputed: the scores are those the version gave
at decision time, with its user weights as they were then.
"""

from __future__ import annotations

import numpy as np

from bandits import make_policy
from stream.replay.dataset import BanditLog
from stream.replay.targets import Fallback, policy_distribution, uniform_distribution


def logged_version_distribution(version: str, spec: str, log: BanditLog) -> tuple[np.ndarray, Fallback | None]:
    """(n, K) pmf of ``spec`` over ``version``'s logged scores; decisions without them fall back to uniform."""
    scores = np.zeros_like(log.scores)
    have = np.zeros(log.n_rounds, dtype=bool)
    for i, r in enumerate(log.rounds):
        vs = r.decision.version_scores.get(version)
        if vs is not None:
            scores[i, :len(vs)] = vs
            have[i] = True
    dist = uniform_distribution(log).copy()
    if have.any():
        dist[have] = policy_distribution(make_policy(spec), scores[have], log.mask[have], log.seed[have])
    fallback = None
    if not have.all():
        first = log.rounds[int(np.argmin(have))]
        fallback = Fallback(int((~have).sum()), log.n_rounds, f"no logged scores of version {version!r} "
                            "(decided without model selection, or before it served that version)", first.where())
    return dist, fallback
