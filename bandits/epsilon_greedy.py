"""Epsilon-greedy exploration over the hybrid model's scores."""

from __future__ import annotations

import numpy as np

from bandits.base import Candidates, Policy, argmax_mask, check_probability

__all__ = ["EpsilonGreedy", "Greedy"]


class EpsilonGreedy(Policy):
    """Uniform with probability ``epsilon``, else the best-scored candidate.

    pmf = epsilon / n everywhere, plus (1 - epsilon) split evenly over the
    candidates that tie for the highest score. With ``epsilon > 0`` every
    candidate has propensity at least ``epsilon / n``.

    Args:
        epsilon: exploration probability, in [0, 1].

    >>> import numpy as np
    >>> from bandits import Candidates, EpsilonGreedy
    >>> policy = EpsilonGreedy(epsilon=0.3)
    >>> candidates = Candidates(scores=np.array([0.1, 0.9, 0.5]))
    >>> policy.distribution(candidates, np.random.default_rng(0)).round(3).tolist()
    [0.1, 0.8, 0.1]
    >>> policy.version
    'epsilon_greedy/1?epsilon=0.3'
    >>> EpsilonGreedy(epsilon=0.5).distribution(Candidates(scores=[1.0, 1.0, 0.0]), np.random.default_rng(0)).round(3).tolist()
    [0.417, 0.417, 0.167]
    """

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = check_probability("epsilon", epsilon)

    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        n = candidates.n
        return self.epsilon / n + (1.0 - self.epsilon) * argmax_mask(candidates.scores)

    def distribution_row(self, scores: list[float]) -> list[float]:
        k, best = len(scores), max(scores)
        # the array form's operations on each entry, in its order: the same floats
        top = self.epsilon / k + (1.0 - self.epsilon) * (1.0 / scores.count(best))
        rest = self.epsilon / k + (1.0 - self.epsilon) * 0.0
        return [top if x == best else rest for x in scores]

    def distribution_many(self, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n = mask.sum(axis=1, keepdims=True)
        s = np.where(mask, scores, -np.inf)
        best = ((s == s.max(axis=1, keepdims=True)) & mask).astype(np.float64)
        best /= best.sum(axis=1, keepdims=True)
        return np.where(mask, self.epsilon / n + (1.0 - self.epsilon) * best, 0.0)


class Greedy(EpsilonGreedy):
    """Always the best-scored candidate (ties split evenly): a target policy for replay.

    Its propensities are 0 off the argmax, so never log with it.

    >>> import numpy as np
    >>> from bandits import Candidates, Greedy
    >>> Greedy().distribution(Candidates(scores=[0.2, 0.7]), np.random.default_rng(0)).tolist()
    [0.0, 1.0]
    >>> Greedy().version
    'greedy/1'
    """

    name = "greedy"
    epsilon = 0.0

    def __init__(self) -> None:
        pass
