"""The demo's curves and summaries: RMSE, prequential curves, latency percentiles.

Pure: no I/O. (The rolling RMSE and the retrain trigger are the product's:
:mod:`stream.retrain_trigger`.)
"""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """RMSE over the finite predictions (NaN: never answered)."""
    ok = np.isfinite(pred)
    return float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else float("nan")


def prequential_curve(pred: np.ndarray, y: np.ndarray, *, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative progressive-validation RMSE after each of ``points`` evenly spaced prefixes.

    >>> x, v = prequential_curve(np.array([1.0, 1.0, 3.0, 3.0]), np.array([1.0, 1.0, 1.0, 1.0]), points=2)
    >>> x.tolist(), v.round(3).tolist()
    ([1, 4], [0.0, 1.414])
    """
    ok = np.isfinite(pred)
    sq = np.where(ok, (np.where(ok, pred, 0.0) - y) ** 2, 0.0)
    cum, cnt = np.cumsum(sq), np.cumsum(ok)
    idx = np.unique(np.linspace(1, len(y), num=min(points, len(y))).astype(int)) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return idx + 1, np.sqrt(cum[idx] / cnt[idx])


def rolling_curve(pred: np.ndarray, y: np.ndarray, *, window: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """RMSE over the last ``window`` ratings at evenly spaced points of the stream."""
    ok = np.isfinite(pred)
    sq = np.concatenate([[0.0], np.cumsum(np.where(ok, (np.where(ok, pred, 0.0) - y) ** 2, 0.0))])
    cnt = np.concatenate([[0], np.cumsum(ok)])
    ends = np.unique(np.linspace(min(window, len(y)), len(y), num=min(points, len(y))).astype(int))
    starts = np.maximum(ends - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ends, np.sqrt((sq[ends] - sq[starts]) / (cnt[ends] - cnt[starts]))


def percentiles(values, qs=(50, 99)) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {f"p{q}": float(np.percentile(arr, q)) if arr.size else float("nan") for q in qs}
