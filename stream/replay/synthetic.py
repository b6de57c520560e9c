"""Synthetic joined logs with a known ground truth, for tests and benchmarks (pure, seeded).

Queries come from :class:`stream.simulator.SimulatedWorld`; the logging
policy scores each candidate with the true click probability plus noise and
explores with ``bandits.make_policy(policy)``; the reward is a Bernoulli click
with the true probability. :func:`true_value` gives a target's exact expected
value on the same decisions, which estimators can be checked against.

>>> rounds, truth = synthetic_rounds(50, seed=0)
>>> len(rounds), truth.shape == (50, 10)
(50, True)
"""

from __future__ import annotations

import numpy as np

from bandits import Candidates, make_policy
from stream.events import Decision
from stream.replay.rounds import LoggedRound
from stream.simulator import SimulatedWorld

__all__ = ["synthetic_rounds", "true_value"]


def synthetic_rounds(n: int, *, users: int = 30, items: int = 20, policy: str = "epsilon_greedy:epsilon=0.3",
                     noise: float = 0.3, seed: int = 0, ts0: float = 1_700_000_000.0) -> tuple[list[LoggedRound], np.ndarray]:
    """``n`` rounds logged by ``policy`` over noisy true scores, and the (n, K) true click probabilities."""
    world = SimulatedWorld(n_users=users, n_items=items, seed=seed)
    logger = make_policy(policy)
    rng = np.random.default_rng(seed + 1)
    rounds = []
    truth = []
    for i in range(n):
        q = world.query(i, ts=ts0 + i, prefix="syn")
        p = np.array([world.click_probability(q.user_id, c.id, q.context) for c in q.candidates])
        scores = p + rng.normal(scale=noise, size=p.shape)
        seed_i = int(rng.integers(2**62))
        d = logger.decide(Candidates(scores=scores), np.random.default_rng(seed_i))
        decision = Decision(
            request_id=q.request_id, user_id=q.user_id, ts=q.ts, context=q.context, candidates=q.candidates,
            scores=tuple(float(s) for s in scores), pmf=tuple(float(x) for x in d.pmf), chosen_index=d.chosen,
            propensity=d.propensity, policy=d.policy, policy_version=d.policy_version, seed=seed_i,
            feature_net_version="synthetic", user_weights_version=0,
        )
        reward = float(rng.random() < p[d.chosen])
        rounds.append(LoggedRound(decision, reward, q.ts + 1.0))
        truth.append(p)
    width = max(len(t) for t in truth)
    out = np.zeros((n, width))
    for i, t in enumerate(truth):
        out[i, : len(t)] = t
    return rounds, out


def true_value(action_dist: np.ndarray, truth: np.ndarray) -> float:
    """Exact expected reward of ``action_dist`` on these decisions: ``mean_i sum_a pi(a|i) p(i, a)``."""
    return float(np.mean(np.sum(action_dist * truth, axis=1)))
