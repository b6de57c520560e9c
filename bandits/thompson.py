"""Thompson sampling over a Bayesian linear user model, with a logged pmf."""

from __future__ import annotations

import numpy as np

from bandits.base import Candidates, Policy, check_positive, check_probability

__all__ = ["ThompsonSampling", "covariance_factor"]

_JITTERS = (1e-10, 1e-8, 1e-6, 1e-4)


def covariance_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix ``L`` with ``L @ L.T`` close to ``cov``, even when ``cov`` is not positive definite.

    Tries Cholesky on the symmetrised matrix, then with growing diagonal jitter
    (relative to the mean diagonal), and falls back to an eigendecomposition with
    negative eigenvalues clipped to 0 (a singular or slightly indefinite cov from
    rounding in rank-one updates).

    >>> import numpy as np
    >>> L = covariance_factor(np.array([[1.0, 1.0], [1.0, 1.0]]))  # singular
    >>> np.allclose(L @ L.T, [[1.0, 1.0], [1.0, 1.0]], atol=1e-3)
    True
    """
    sym = 0.5 * (cov + cov.T)
    try:
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        pass
    scale = max(float(np.mean(np.abs(np.diag(sym)))), 1e-12)
    eye = np.eye(sym.shape[0])
    for jitter in _JITTERS:
        try:
            return np.linalg.cholesky(sym + jitter * scale * eye)
        except np.linalg.LinAlgError:
            continue
    values, vectors = np.linalg.eigh(sym)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


class ThompsonSampling(Policy):
    """Estimate each candidate's probability of being best under the posterior.

    Draws ``n_samples`` weight vectors ``w ~ N(posterior_mean, posterior_cov)``
    and counts how often each candidate's ``w . embedding`` is the largest (ties
    split evenly). Classic Thompson sampling plays the argmax of one draw, whose
    propensity has no closed form; here the pmf is the Monte Carlo estimate and
    the action is then sampled from that very pmf, so the logged propensity is
    exactly the probability used.

    A Monte Carlo estimate can be 0 for a candidate that is rarely best, and an
    IPS weight ``pi / propensity`` cannot use a propensity of 0. So the pmf is
    mixed with uniform: ``pmf = m + (1 - n m) p_hat`` with ``m = min_propensity``,
    which floors every probability at ``m`` and still sums to 1 (uniform when
    ``n m >= 1``).

    Needs ``candidates.embeddings``, ``posterior_mean`` and ``posterior_cov``.
    Both the posterior draws and the sampled action use the caller's ``rng``.

    Args:
        n_samples: posterior draws per decision, >= 1.
        min_propensity: probability floor, in [0, 1].

    >>> import numpy as np
    >>> from bandits import Candidates, ThompsonSampling
    >>> candidates = Candidates(
    ...     scores=np.zeros(3),
    ...     embeddings=np.eye(3),
    ...     posterior_mean=np.array([0.0, 1.0, 0.0]),
    ...     posterior_cov=1e-4 * np.eye(3),
    ... )
    >>> ThompsonSampling(n_samples=64).distribution(candidates, np.random.default_rng(0)).round(3).tolist()
    [0.001, 0.998, 0.001]
    """

    name = "thompson"
    needs = frozenset({"embeddings", "posterior_mean", "posterior_cov"})

    def __init__(self, n_samples: int = 64, min_propensity: float = 1e-3) -> None:
        self.n_samples = check_positive("n_samples", n_samples, integer=True)
        self.min_propensity = check_probability("min_propensity", min_propensity)

    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        candidates.require(*sorted(self.needs), policy=self.name)
        n = candidates.n
        factor = covariance_factor(candidates.posterior_cov)
        normals = rng.standard_normal((self.n_samples, factor.shape[0]))
        weights = candidates.posterior_mean + normals @ factor.T  # (n_samples, d)
        values = candidates.embeddings @ weights.T  # (n, n_samples)
        is_best = values == values.max(axis=0)
        wins = (is_best / is_best.sum(axis=0)).sum(axis=1)
        p_hat = wins / self.n_samples
        floor = min(self.min_propensity, 1.0 / n)
        return floor + (1.0 - n * floor) * p_hat
