"""One bootstrap shared by every (target, estimator) pair: the same resamples, one matrix product per chunk.

Every estimator of :mod:`bandits.ope` is ``mean(direct) + mean(weighted) / mean(norm)``
over rounds (its per-round :class:`~bandits.ope.base.Terms`). A bootstrap
resample is a vector of counts ``c`` (how often each round was drawn, drawn
with replacement exactly as in ``estimate_interval``), and a resampled mean
is ``c @ term / n``. Stacking the terms of all pairs as the columns of one
(n, m) matrix turns B resamples into one (B, n) @ (n, m) product, in chunks
of rows that bound memory. This computes the same percentile bootstrap as
each estimator's ``estimate_interval``, about ten times faster when many
pairs are evaluated, and with common resamples: every policy is scored on the
same resampled logs, so their intervals are comparable.

>>> import numpy as np
>>> from bandits.ope.base import Terms
>>> w = np.array([1.0, 1.0, 1.0, 1.0])
>>> [(lo, hi)] = shared_intervals([Terms(direct=None, weighted=w * np.array([0, 1, 0, 1.0]))],
...                               n_bootstrap=200, alpha=0.1, seed=0)
>>> 0.0 <= lo <= 0.5 <= hi <= 1.0
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bandits.ope.base import Terms

__all__ = ["shared_intervals", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 4_000_000
"""Counts-matrix elements per chunk (32 MB of float64)."""


def _columns(terms: Sequence[Terms], n: int) -> tuple[np.ndarray, list[tuple[int | None, int | None, int | None]]]:
    cols: list[np.ndarray] = []
    where = []
    for t in terms:
        slots = []
        for part in (t.direct, t.weighted, t.norm):
            if part is None:
                slots.append(None)
            else:
                if part.shape != (n,):
                    raise ValueError(f"every term must have shape ({n},); got {part.shape}")
                slots.append(len(cols))
                cols.append(part)
        where.append(tuple(slots))
    return np.column_stack(cols) if cols else np.zeros((n, 0)), where


def shared_intervals(terms: Sequence[Terms], *, n_bootstrap: int, alpha: float,
                     seed: int | np.random.Generator) -> list[tuple[float, float]]:
    """Percentile ``(lower, upper)`` of each Terms' estimate over the same ``n_bootstrap`` resamples.

    Resamples where a self-normalised estimate is undefined (weights sum to 0)
    are left out of that estimate's quantiles, as in ``estimate_interval``;
    (nan, nan) when every resample is undefined.
    """
    if not terms:
        return []
    n = next(p for t in terms for p in t if p is not None).shape[0]
    matrix, where = _columns(terms, n)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_bootstrap, len(terms)))
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        index = rng.integers(0, n, size=(b, n))
        counts = np.bincount((index + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        means = (counts.astype(np.float64) @ matrix) / n  # (b, m): each term's resampled mean
        for j, (d, w, z) in enumerate(where):
            value = means[:, d] if d is not None else np.zeros(b)
            if w is not None:
                part = means[:, w]
                if z is not None:
                    norm = means[:, z]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        part = np.where(norm > 0, part / np.where(norm > 0, norm, 1.0), np.nan)
                value = value + part
            samples[start:start + b, j] = value
    out = []
    for j in range(len(terms)):
        col = samples[:, j]
        col = col[~np.isnan(col)]
        if col.size == 0:
            out.append((float("nan"), float("nan")))
        else:
            lo, hi = np.quantile(col, [alpha / 2, 1 - alpha / 2])
            out.append((float(lo), float(hi)))
    return out
