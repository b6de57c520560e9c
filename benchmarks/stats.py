"""Latency summaries. Unanswered requests count as infinitely slow, so a percentile past them is ``None``.

>>> import numpy as np
>>> s = summarize(np.array([1.0, 2.0, 3.0, np.inf]))
>>> s["p50"], s["p99"], s["answered"]
(2.0, None, 3)
"""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
# Percentile grid of the stored CDFs: fine in the tail, where the differences are.
CDF_GRID = np.concatenate([np.arange(0.0, 90.0, 2.0), np.arange(90.0, 99.0, 0.5), np.arange(99.0, 99.9, 0.1),
                           [99.9, 99.95, 99.99, 100.0]])


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def percentile(values: np.ndarray, q: float) -> float:
    """Nearest-rank percentile (no interpolation, so an unanswered request's inf stays inf)."""
    if values.size == 0:
        return math.inf
    return float(np.percentile(values, q, method="inverted_cdf"))


def summarize(latency_ms: np.ndarray) -> dict:
    """p50/p95/p99/p99.9, mean and max of the answered, how many were answered, and a CDF."""
    lat = np.asarray(latency_ms, dtype=float)
    answered = lat[np.isfinite(lat)]
    out: dict = {k: _num(percentile(lat, q)) for k, q in PERCENTILES.items()}
    out["mean_answered"] = _num(answered.mean()) if answered.size else None
    out["max_answered"] = _num(answered.max()) if answered.size else None
    out["answered"] = int(answered.size)
    out["cdf"] = [[_num(percentile(lat, q)), round(float(q) / 100, 5)] for q in CDF_GRID] if lat.size else []
    return out


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "timeout"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def timeline(latency_ms: np.ndarray, rate: float, bin_s: float = 0.1) -> dict:
    """The step's latency over time: per ``bin_s`` of scheduled send times, the median and the largest
    latency of the queries answered (None where none was) and how many were not. A p99 says how long
    the tail was, this says when: a tail spread evenly is the work itself, one that comes in a few
    bursts is something that stopped for that long (Redis rewriting its AOF, a pause of the machine).

    >>> t = timeline(np.array([1.0, 3.0, 2.0, np.inf, 50.0]), rate=10.0, bin_s=0.2)
    >>> t["p50"], t["max"], t["unanswered"]
    ([1.0, 2.0, 50.0], [3.0, 2.0, 50.0], [0, 1, 0])
    """
    lat = np.asarray(latency_ms, dtype=float)
    per_bin = max(1, round(rate * bin_s))
    p50, top, lost = [], [], []
    for k in range(0, lat.size, per_bin):
        part = lat[k:k + per_bin]
        answered = part[np.isfinite(part)]
        p50.append(_num(percentile(answered, 50)) if answered.size else None)
        top.append(_num(answered.max()) if answered.size else None)
        lost.append(int(part.size - answered.size))
    return {"bin_s": per_bin / rate, "p50": p50, "max": top, "unanswered": lost}
