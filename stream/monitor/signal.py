"""The monitor's figures as the signal of ``eddy retrain --watch --monitor-url``.

:class:`WindowRMSE` has the shape of :class:`stream.retrain_trigger.RollingRMSE`
(``value``, ``n``, ``full``, ``clear``), so :class:`~stream.retrain_trigger.RetrainTrigger`
applies the same rule to it: the first *full* value after a (re)train is the
baseline; retrain when a later value exceeds ``threshold`` x the baseline.
Here a value is the monitor's hopping-window prediction RMSE of the live
feature net (``eddy_monitor_window_prediction_rmse{window="hopping_...",
dimension="feature_net", value=<live version>}``), and it is *full* when that
window started after the last (re)train (so it measures only the model
installed then) and holds at least ``min_outcomes`` outcomes.
"""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, timeout_s: float = 5.0) -> Samples:
    """``{(sample name, sorted labels): value}`` from a Prometheus text endpoint; OSError when unreachable."""
    text = urllib.request.urlopen(url, timeout=timeout_s).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


class WindowRMSE:
    """The live feature net's hopping-window RMSE from the monitor, shaped like ``RollingRMSE``.

    >>> w = WindowRMSE(window="hopping_300s_every_60s", min_outcomes=2, not_before=100.0)
    >>> labels = (("dimension", "feature_net"), ("value", "v1"), ("window", "hopping_300s_every_60s"))
    >>> start = ("eddy_monitor_window_start_seconds", (("window", "hopping_300s_every_60s"),))
    >>> w.update({("eddy_monitor_window_prediction_rmse", labels): 0.5,
    ...           ("eddy_monitor_window_outcomes", labels): 40.0, start: 60.0}, live="v1")
    >>> w.full, w.value      # the window began before the (re)train: not a measure of the new model
    (False, 0.5)
    >>> w.update({("eddy_monitor_window_prediction_rmse", labels): 0.7,
    ...           ("eddy_monitor_window_outcomes", labels): 40.0, start: 120.0}, live="v1")
    >>> w.full, w.value, w.n
    (True, 0.7, 40)
    """

    def __init__(self, *, window: str, min_outcomes: int, not_before: float):
        self.window, self.min_outcomes, self.not_before = window, min_outcomes, not_before
        self.value, self.n, self._start = math.nan, 0, -math.inf

    def update(self, samples: Samples, *, live: str) -> None:
        labels = (("dimension", "feature_net"), ("value", live), ("window", self.window))
        self.value = samples.get(("eddy_monitor_window_prediction_rmse", labels), math.nan)
        self.n = int(samples.get(("eddy_monitor_window_outcomes", labels), 0))
        self._start = samples.get(("eddy_monitor_window_start_seconds", (("window", self.window),)), -math.inf)

    def clear(self, now: float | None = None) -> None:
        """Forget the value; only windows that start from ``now`` (epoch seconds; default: the wall clock) count."""
        import time

        self.not_before = time.time() if now is None else now
        self.value, self.n = math.nan, 0

    @property
    def full(self) -> bool:
        return self._start >= self.not_before and self.n >= self.min_outcomes and math.isfinite(self.value)
