"""The one percentile bootstrap of every OPE estimate: resampled rounds as counts, one matrix product per chunk.

Every estimator of :mod:`bandits.ope` is ``mean(direct) + mean(weighted) / mean(norm)``
over rounds (its per-round :class:`~bandits.ope.terms.Terms`). A bootstrap
resample is a vector of counts ``c`` (how often each round was drawn, with
replacement), and a resampled mean is ``c @ term / n``. Stacking the terms of
several estimates as the columns of one (n, m) matrix turns B resamples into
one (B, n) @ (n, m) product, in chunks of rows that bound memory. Estimates
bootstrapped together share their resamples: every policy is scored on the
same resampled logs, so their intervals are comparable.
:meth:`~bandits.ope.base.BaseOffPolicyEstimator.estimate_interval` is this
bootstrap with one column.

>>> import numpy as np
>>> from bandits.ope.terms import Terms
>>> w = np.array([1.0, 1.0, 1.0, 1.0])
>>> [(lo, hi)] = shared_intervals([Terms(direct=None, weighted=w * np.array([0, 1, 0, 1.0]))],
...                               n_bootstrap=200, alpha=0.1, seed=0)
>>> 0.0 <= lo <= 0.5 <= hi <= 1.0
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bandits.ope.terms import Terms

__all__ = ["bootstrap_estimates", "percentile_interval", "shared_intervals", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 4_000_000
"""Counts-matrix elements per chunk (32 MB of float64)."""

_Slots = tuple[int | None, int | None, int | None]


def _columns(terms: Sequence[Terms], n: int) -> tuple[np.ndarray, list[_Slots]]:
    cols: list[np.ndarray] = []
    where: list[_Slots] = []
    for t in terms:
        slots: list[int | None] = []
        for part in (t.direct, t.weighted, t.norm):
            if part is None:
                slots.append(None)
            else:
                if part.shape != (n,):
                    raise ValueError(f"every term must have shape ({n},); got {part.shape}")
                slots.append(len(cols))
                cols.append(part)
        where.append((slots[0], slots[1], slots[2]))
    return np.column_stack(cols) if cols else np.zeros((n, 0)), where


def _estimates(means: np.ndarray, where: list[_Slots]) -> np.ndarray:
    """(b, len(where)) ``mean(direct) + mean(weighted) / mean(norm)`` from the resampled means; NaN if norm is 0."""
    out = np.zeros((means.shape[0], len(where)))
    for j, (d, w, z) in enumerate(where):
        if d is not None:
            out[:, j] += means[:, d]
        if w is not None:
            part = means[:, w]
            if z is not None:
                norm = means[:, z]
                with np.errstate(divide="ignore", invalid="ignore"):
                    part = np.where(norm > 0, part / np.where(norm > 0, norm, 1.0), np.nan)
            out[:, j] += part
    return out


def bootstrap_estimates(terms: Sequence[Terms], *, n_bootstrap: int,
                        seed: int | np.random.Generator) -> np.ndarray:
    """(n_bootstrap, len(terms)) each estimate on the same rounds resampled with replacement.

    NaN where a self-normalised estimate is undefined on a resample (its norm sums to 0).
    """
    if not terms:
        return np.empty((n_bootstrap, 0))
    n = next(p for t in terms for p in t if p is not None).shape[0]
    matrix, where = _columns(terms, n)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_bootstrap, len(terms)))
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        index = rng.integers(0, n, size=(b, n))
        counts = np.bincount((index + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        samples[start:start + b] = _estimates((counts.astype(np.float64) @ matrix) / n, where)
    return samples


def percentile_interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    """The ``(alpha / 2, 1 - alpha / 2)`` quantiles of the defined (non-NaN) samples; (nan, nan) if none.

    >>> percentile_interval(np.arange(101.0), 0.1)
    (5.0, 95.0)
    """
    defined = samples[~np.isnan(samples)]
    if defined.size == 0:
        return float("nan"), float("nan")
    lower, upper = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(lower), float(upper)


def shared_intervals(terms: Sequence[Terms], *, n_bootstrap: int, alpha: float,
                     seed: int | np.random.Generator) -> list[tuple[float, float]]:
    """Percentile ``(lower, upper)`` of each Terms' estimate over the same ``n_bootstrap`` resamples.

    Resamples where a self-normalised estimate is undefined are left out of
    that estimate's quantiles; (nan, nan) when every resample is undefined.
    """
    samples = bootstrap_estimates(terms, n_bootstrap=n_bootstrap, seed=seed)
    return [percentile_interval(samples[:, j], alpha) for j in range(samples.shape[1])]
