"""Upper-confidence-bound exploration over a Bayesian linear user model."""

from __future__ import annotations

import numpy as np

from bandits.base import Candidates, Policy, argmax_mask, check_positive, check_probability

__all__ = ["UCB"]


class UCB(Policy):
    """LinUCB-style: play the argmax of ``mean . x + alpha * sqrt(x' cov x)``.

    The UCB argmax is deterministic, so its propensities would be 1 and 0, and
    IPS cannot evaluate anything the log never tried. It is therefore mixed with
    uniform: ``pmf = epsilon / n + (1 - epsilon) * [argmax]`` (ties split evenly).
    ``epsilon = 0`` is allowed (pure UCB), but then every non-argmax candidate
    has propensity 0 and the log supports off-policy evaluation only of policies
    that agree with it.

    Needs ``candidates.embeddings``, ``posterior_mean`` and ``posterior_cov``.

    Args:
        alpha: width of the confidence bonus, >= 0 (0 is greedy on the mean).
        epsilon: uniform exploration mixed in, in [0, 1].

    >>> import numpy as np
    >>> from bandits import Candidates, UCB
    >>> candidates = Candidates(  # equal means, the second arm is more uncertain
    ...     scores=np.zeros(2),
    ...     embeddings=np.eye(2),
    ...     posterior_mean=np.array([0.5, 0.5]),
    ...     posterior_cov=np.diag([0.01, 1.0]),
    ... )
    >>> UCB(alpha=1.0, epsilon=0.1).distribution(candidates, np.random.default_rng(0)).round(3).tolist()
    [0.05, 0.95]
    """

    name = "ucb"
    needs = frozenset({"embeddings", "posterior_mean", "posterior_cov"})

    def __init__(self, alpha: float = 1.0, epsilon: float = 0.05) -> None:
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.epsilon = check_probability("epsilon", epsilon)

    def upper_bounds(self, candidates: Candidates) -> np.ndarray:
        """(n,) UCB score of each candidate."""
        candidates.require(*sorted(self.needs), policy=self.name)
        x = candidates.embeddings
        cov = 0.5 * (candidates.posterior_cov + candidates.posterior_cov.T)
        variance = np.sum((x @ cov) * x, axis=1)
        return x @ candidates.posterior_mean + self.alpha * np.sqrt(np.clip(variance, 0.0, None))

    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        return self.epsilon / candidates.n + (1.0 - self.epsilon) * argmax_mask(self.upper_bounds(candidates))
