"""The demo's prequential curves and summaries (stream.demo.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.demo.metrics import percentiles, prequential_curve, rmse, rolling_curve

pytestmark = pytest.mark.unit


def test_prequential_and_rolling_curves():
    y = np.zeros(6)
    pred = np.array([1.0, 1.0, np.nan, 3.0, 3.0, 3.0])
    assert rmse(pred, y) == pytest.approx(math.sqrt((1 + 1 + 9 + 9 + 9) / 5))
    x, v = prequential_curve(pred, y, points=6)
    assert x.tolist() == [1, 2, 3, 4, 5, 6]
    assert v[1] == pytest.approx(1.0) and v[2] == pytest.approx(1.0)  # NaN (unanswered) is skipped
    x, v = rolling_curve(pred, y, window=2, points=5)
    assert x[-1] == 6 and v[-1] == pytest.approx(3.0)
    assert math.isnan(rmse(np.full(3, np.nan), np.zeros(3)))


def test_percentiles_of_nothing_are_nan():
    assert all(math.isnan(v) for v in percentiles([]).values())
    assert percentiles([1.0, 2.0, 3.0], (50,)) == {"p50": 2.0}
