"""Softmax (Boltzmann) exploration over the hybrid model's scores."""

from __future__ import annotations

import numpy as np

from bandits.base import Candidates, Policy, check_positive

__all__ = ["Softmax"]


class Softmax(Policy):
    """pmf proportional to ``exp(score / temperature)``.

    Computed from ``score - max(score)`` so large scores cannot overflow. A low
    temperature approaches greedy; a high one approaches uniform. Candidates far
    below the best at a low temperature can underflow to propensity 0, which
    IPS cannot use: keep the temperature on the scale of the score gaps.

    Args:
        temperature: > 0.

    >>> import numpy as np
    >>> from bandits import Candidates, Softmax
    >>> rng = np.random.default_rng(0)
    >>> Softmax(temperature=1.0).distribution(Candidates(scores=[0.0, np.log(3.0)]), rng).round(3).tolist()
    [0.25, 0.75]
    >>> Softmax(temperature=0.5).distribution(Candidates(scores=[1000.0, 1000.0]), rng).tolist()
    [0.5, 0.5]
    """

    name = "softmax"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = check_positive("temperature", temperature)

    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        z = (candidates.scores - candidates.scores.max()) / self.temperature
        weights = np.exp(z)
        return weights / weights.sum()

    def distribution_many(self, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
        s = np.where(mask, scores, -np.inf)
        weights = np.where(mask, np.exp((s - s.max(axis=1, keepdims=True)) / self.temperature), 0.0)
        return weights / weights.sum(axis=1, keepdims=True)
