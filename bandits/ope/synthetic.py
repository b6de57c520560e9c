"""Synthetic bandit logs with a known ground truth, for tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandits.base import check_positive
from bandits.ope.base import validate_logged

__all__ = ["SyntheticLog", "make_synthetic_log", "policy_value"]


@dataclass(frozen=True, eq=False)
class SyntheticLog:
    """A simulated log (n rounds, K actions).

    Attributes:
        context: (n, dim) contexts.
        expected_reward: (n, K) true mean reward ``q(x, a)`` in (0, 1).
        pi_b: (n, K) the logging policy's pmf (softmax, every entry > 0).
        action: (n,) logged action, sampled from ``pi_b``.
        reward: (n,) Bernoulli(q(x, action)) reward.
        pscore: (n,) ``pi_b[i, action[i]]``.
    """

    context: np.ndarray
    expected_reward: np.ndarray
    pi_b: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray


def make_synthetic_log(
    *, n_rounds: int, n_actions: int, dim: int = 5, logging_temperature: float = 1.0, seed: int
) -> SyntheticLog:
    """Contexts ~ N(0, I); ``q = sigmoid(x theta_a + b_a)``; softmax logger on a different linear score.

    >>> log = make_synthetic_log(n_rounds=1000, n_actions=4, seed=0)
    >>> log.pi_b.shape, bool((log.pscore > 0).all())
    ((1000, 4), True)
    """
    n_rounds = check_positive("n_rounds", n_rounds, integer=True)
    n_actions = check_positive("n_actions", n_actions, integer=True)
    dim = check_positive("dim", dim, integer=True)
    temperature = check_positive("logging_temperature", logging_temperature)
    rng = np.random.default_rng(seed)
    context = rng.standard_normal((n_rounds, dim))
    theta = rng.standard_normal((n_actions, dim)) / np.sqrt(dim)
    bias = rng.normal(0.0, 0.5, n_actions)
    expected_reward = 1.0 / (1.0 + np.exp(-(context @ theta.T + bias)))
    beta = rng.standard_normal((n_actions, dim)) / np.sqrt(dim)
    logits = context @ beta.T / temperature
    pi_b = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi_b /= pi_b.sum(axis=1, keepdims=True)
    cdf = np.cumsum(pi_b, axis=1)
    u = rng.random((n_rounds, 1)) * cdf[:, -1:]
    action = np.minimum((cdf <= u).sum(axis=1), n_actions - 1)
    rows = np.arange(n_rounds)
    reward = (rng.random(n_rounds) < expected_reward[rows, action]).astype(np.float64)
    return SyntheticLog(context, expected_reward, pi_b, action, reward, pi_b[rows, action])


def policy_value(action_dist: np.ndarray, expected_reward: np.ndarray) -> float:
    """Exact value on these contexts: ``mean_i sum_a action_dist[i, a] q(x_i, a)``.

    >>> import numpy as np
    >>> policy_value(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.2, 0.9], [0.4, 0.6]]))
    0.35
    """
    validate_logged(np.zeros(len(action_dist), dtype=int), np.ones(len(action_dist)), action_dist)
    return float(np.mean(np.sum(action_dist * expected_reward, axis=1)))
