"""The rolling RMSE and the retrain trigger of ``eddy retrain --watch`` (stream.retrain_trigger)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.config import ConfigError
from stream.retrain_trigger import RetrainTrigger, RollingRMSE

pytestmark = pytest.mark.unit


def test_rolling_rmse_matches_numpy_over_the_last_window():
    rng = np.random.default_rng(0)
    errors = rng.normal(size=25_000)
    r = RollingRMSE(window=300)
    for e in errors:
        r.add(e)
    assert r.full and r.n == 300
    assert r.value == pytest.approx(math.sqrt(np.mean(errors[-300:] ** 2)), rel=1e-9)


def test_rolling_rmse_ignores_non_finite_errors_and_clears():
    r = RollingRMSE(window=3)
    assert math.isnan(r.value)
    r.add(float("nan"))
    r.add(float("inf"))
    assert r.n == 0
    r.add(2.0)
    assert r.value == 2.0
    r.clear()
    assert r.n == 0 and math.isnan(r.value)


@pytest.mark.parametrize("window", [0, -1, 1.5, True, "10"])
def test_rolling_rmse_rejects_bad_windows(window):
    with pytest.raises(ConfigError, match="window"):
        RollingRMSE(window)


def _feed(trigger: RetrainTrigger, rolling: RollingRMSE, errors, now: float = 0.0):
    reasons = []
    for e in errors:
        rolling.add(e)
        reasons.append(trigger.check(rolling, now))
    return reasons


def test_baseline_is_the_first_full_window_after_reset_and_degradation_triggers():
    t, r = RetrainTrigger(threshold=1.2, started_at=0.0), RollingRMSE(window=10)
    assert _feed(t, r, [1.0] * 9) == [None] * 9 and t.baseline is None
    assert _feed(t, r, [1.0]) == [None] and t.baseline == 1.0
    assert all(x is None for x in _feed(t, r, [1.05] * 10))  # 5% worse: below the 20% threshold
    reasons = _feed(t, r, [2.0] * 10)
    first = next(i for i, x in enumerate(reasons) if x)
    assert reasons[first].startswith("degraded: rolling RMSE")
    assert first > 0  # it takes a few bad errors to move the window past 1.2 x baseline


def test_reset_forgets_the_baseline():
    t, r = RetrainTrigger(threshold=1.2), RollingRMSE(window=2)
    _feed(t, r, [1.0, 1.0])
    t.reset(now=5.0)
    r.clear()
    _feed(t, r, [3.0, 3.0], now=5.0)
    assert t.baseline == 3.0  # measured again after the (re)train


def test_schedule_triggers_without_traffic():
    t, r = RetrainTrigger(threshold=1.2, every_s=60.0, started_at=100.0), RollingRMSE(window=5)
    assert t.check(r, now=159.0) is None
    assert t.check(r, now=160.0).startswith("schedule: 1.0 min")


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": 0.9}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"threshold": "1.2"}, "threshold"),
    ({"every_s": 0.0}, "every-minutes"),
    ({"every_s": -60.0}, "every-minutes"),
])
def test_trigger_rejects_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RetrainTrigger(**kwargs)
