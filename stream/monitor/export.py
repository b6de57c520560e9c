"""The monitor's figures in Prometheus form, served by prometheus_client from a snapshot.

The faust tables live on the app's event loop; the HTTP server runs on its own
thread. So a faust timer copies the tables into metric families once a second
(:meth:`Snapshot.refresh`), and the collector hands out the last copy: a scrape
never reads a table while an agent writes it.

Metric names (``eddy_monitor_...``) and labels are listed in docs/monitor.md.
A figure's key ``dimension=value`` becomes two labels, ``dimension`` and
``value`` (``all`` has the value ``""``); dead letters are labelled ``reason``.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from stream.monitor import figures as f

_LABELS = ("dimension", "value")
_WINDOW_GAUGES = (  # (metric suffix, figure, help)
    ("decisions", "decisions", "decisions in the window"),
    ("outcomes", "outcomes", "outcomes (decisions joined with feedback) in the window"),
    ("reward_mean", "reward_mean", "mean reward of the window's outcomes"),
    ("join_rate", "join_rate", "outcomes / decisions in the window (feedback joins decisions of earlier windows too)"),
    ("prediction_rmse", "prediction_rmse", "RMSE of reward - score of the item the feedback is about"),
    ("prediction_mae", "prediction_mae", "mean absolute error of reward - score"),
    ("feedback_delay_mean_seconds", "feedback_delay_mean_s", "mean of feedback ts - decision ts"),
    ("feedback_delay_max_seconds", "feedback_delay_max_s", "largest feedback ts - decision ts"),
)


def split_key(key: str) -> tuple[str, str]:
    dimension, _, value = key.partition("=")
    return dimension, value


def total_families(totals: Mapping[str, f.Tally]) -> list[Metric]:
    """Counters and summaries of every record read (the ``totals`` table)."""
    decisions = CounterMetricFamily("eddy_monitor_decisions", "decisions read", labels=_LABELS)
    outcomes = CounterMetricFamily("eddy_monitor_outcomes", "outcomes read", labels=_LABELS)
    dead = CounterMetricFamily("eddy_monitor_dead_letters", "dead-lettered records by reason", labels=("reason",))
    reward = SummaryMetricFamily("eddy_monitor_reward", "rewards of the outcomes", labels=_LABELS)
    error = SummaryMetricFamily("eddy_monitor_prediction_squared_error",
                                "(reward - score)^2 of the outcomes", labels=_LABELS)
    delay = SummaryMetricFamily("eddy_monitor_feedback_delay_seconds", "feedback ts - decision ts of the outcomes",
                                labels=_LABELS)
    for key, t in sorted(totals.items()):
        dimension, value = split_key(key)
        if dimension == "dead_letter":
            dead.add_metric([value], t[f.DEAD_LETTERS])
            continue
        labels = [dimension, value]
        decisions.add_metric(labels, t[f.DECISIONS])
        outcomes.add_metric(labels, t[f.OUTCOMES])
        reward.add_metric(labels, t[f.OUTCOMES], t[f.REWARD])
        error.add_metric(labels, t[f.OUTCOMES], t[f.SQUARED_ERROR])
        delay.add_metric(labels, t[f.OUTCOMES], t[f.DELAY])
    return [decisions, outcomes, dead, reward, error, delay]


def window_families(windows: Iterable[tuple[str, Iterable]]) -> list[Metric]:
    """Gauges of the window each windowed table shows (:func:`figures.latest_windows`), labelled ``window``."""
    labels = ("window", *_LABELS)
    gauges = {suffix: GaugeMetricFamily(f"eddy_monitor_window_{suffix}", text, labels=labels)
              for suffix, _, text in _WINDOW_GAUGES}
    dead = GaugeMetricFamily("eddy_monitor_window_dead_letters", "dead-lettered records in the window by reason",
                             labels=("window", "reason"))
    start = GaugeMetricFamily("eddy_monitor_window_start_seconds", "start of the window shown (epoch seconds)",
                              labels=("window",))
    for name, items in windows:
        rng, tallies = f.latest_windows(items)
        if rng is None:
            continue
        start.add_metric([name], rng[0])
        for key, t in sorted(tallies.items()):
            dimension, value = split_key(key)
            if dimension == "dead_letter":
                dead.add_metric([name, value], t[f.DEAD_LETTERS])
                continue
            figs = f.figures(t)
            for suffix, figure, _ in _WINDOW_GAUGES:
                if not math.isnan(figs[figure]):  # no data is no sample, not a 0
                    gauges[suffix].add_metric([name, dimension, value], figs[figure])
    return [*gauges.values(), dead, start]


class Snapshot(Collector):
    """A prometheus_client collector serving the families of the last :meth:`refresh`."""

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def refresh(self, totals: Mapping[str, f.Tally], windows: Iterable[tuple[str, Iterable]]) -> None:
        self._families = total_families(totals) + window_families(windows)  # one reference swap: atomic

    def collect(self) -> Iterable[Metric]:
        return list(self._families)
