"""The monitor's pure parts: each record's tallies, their sums, the window shown, the Prometheus form."""

from __future__ import annotations

import math

import pytest
from faust.windows import HoppingWindow, TumblingWindow
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream import config, events
from stream.monitor import figures as f
from stream.monitor.app import tallies_of
from stream.monitor.export import Snapshot


def _decision(scores=(0.5, 0.25), ts=100.0) -> events.Decision:
    return events.Decision("r1", "u1", ts, {}, (events.Item("a"), events.Item("b")), scores, (0.9, 0.1), 0, 0.9,
                           "softmax", "softmax/1?temperature=0.5", 7, "v2", 3)


def test_an_outcome_counts_the_error_of_the_score_of_the_item_its_feedback_names():
    [(grain, t)] = f.outcome_tallies(events.Outcome(_decision(), "b", 1.0, 103.5))
    assert f.figure_keys(grain) == ["all", "policy=softmax", "feature_net=v2", "arm=softmax/1?temperature=0.5|v2"]
    assert t[f.OUTCOMES] == 1 and t[f.DECISIONS] == 0
    assert t[f.SQUARED_ERROR] == pytest.approx(0.75 ** 2) and t[f.ABS_ERROR] == pytest.approx(0.75)
    assert t[f.DELAY] == t[f.DELAY_MAX] == 3.5


def test_an_error_beyond_float_range_counts_the_outcome_but_not_the_error():
    (_, t), *_ = f.outcome_tallies(events.Outcome(_decision(scores=(-1e308, 0.0)), "a", 1e6, 101.0))
    assert t[f.OUTCOMES] == 1 and t[f.SQUARED_ERROR] == 0 and all(math.isfinite(x) for x in t)


def test_merge_adds_sums_and_keeps_the_largest_delay():
    a, b = f.empty(), f.empty()
    a[f.DELAY], a[f.DELAY_MAX], b[f.DELAY], b[f.DELAY_MAX] = 5.0, 5.0, 1.0, 1.0
    m = f.merge(f.merge([], a), b)  # a table's default may be an empty list
    assert m[f.DELAY] == 6.0 and m[f.DELAY_MAX] == 5.0


def test_ratios_without_data_are_nan_not_zero():
    figs = f.figures(f.decision_tallies(_decision())[0][1])
    assert figs["join_rate"] == 0.0
    assert all(math.isnan(figs[k]) for k in ("reward_mean", "prediction_rmse", "prediction_mae",
                                             "feedback_delay_mean_s"))


@pytest.mark.parametrize("window", [TumblingWindow(60), HoppingWindow(300, 60)])
def test_the_window_shown_is_the_newest_full_size_one(window):
    """Records at t = 0, 100, ..., 1000 s, windowed as faust does: the window shown holds the newest record
    and reaches back a full window length."""
    items: dict = {}
    for t in range(0, 1001, 100):
        for rng in window.ranges(float(t)):
            items[("all", rng)] = f.merge(items.get(("all", rng)), f.decision_tallies(_decision(ts=t))[0][1])
    items[("all", (-10_000.0, -10_000.0 + window.size - 0.1))] = f.empty()  # an old window, not yet expired
    (start, end), tallies = f.latest_windows(items.items())
    assert start <= 1000 <= end and end == pytest.approx(start + window.size - 0.1)
    assert end < 1000 + window.step  # it ends in the newest record's step
    assert tallies["all"][f.DECISIONS] == len([t for t in range(0, 1001, 100) if start <= t <= end])


def test_partitions_and_grains_roll_up_into_figures_per_key_and_window():
    [(grain, one)] = f.decision_tallies(_decision())
    other = ("arm", "softmax", "softmax/1?temperature=0.9", "v2")
    got = f.rolled_up([(f.table_key(0, grain), one), (f.table_key(3, grain), one), (f.table_key(1, other), one),
                       ((f.table_key(1, grain), (0.0, 59.9)), one)])
    assert got["all"][f.DECISIONS] == got["policy=softmax"][f.DECISIONS] == got["feature_net=v2"][f.DECISIONS] == 3
    assert got["arm=softmax/1?temperature=0.5|v2"][f.DECISIONS] == 2
    assert got[("all", (0.0, 59.9))][f.DECISIONS] == 1


def test_tallies_of_source_records():
    s = config.Settings(topic_prefix="x.")
    assert tallies_of("x.decisions", s, b"not json", None) == []  # a record that does not decode counts nowhere
    assert tallies_of("x.decisions", s, events.encode(_decision()), None) == f.decision_tallies(_decision())
    [(grain, t)] = tallies_of("x.dead-letter", s, b"\xff", [("eddy.reason", b"late_feedback")])
    assert f.figure_keys(grain) == ["dead_letter=late_feedback"] and t[f.DEAD_LETTERS] == 1
    assert tallies_of("x.dead-letter", s, b"", None)[0][0] == ("dead_letter", "unknown")


def test_the_prometheus_form():
    [(grain, outcome)] = f.outcome_tallies(events.Outcome(_decision(), "a", 1.0, 102.0))
    totals = f.rolled_up([(f.table_key(0, grain), f.merge(f.decision_tallies(_decision())[0][1], outcome)),
                          (f.table_key(2, ("dead_letter", "duplicate_feedback")), f.dead_letter_tallies("x")[0][1])])
    window = f.rolled_up([((f.table_key(1, grain), (60.0, 119.9)), f.decision_tallies(_decision())[0][1])])
    snap = Snapshot()
    snap.refresh(totals, [("tumbling_60s", window.items())])  # decisions in the window, no outcome yet
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(generate_latest(registry).decode()) for s in fam.samples}
    arm = (("dimension", "arm"), ("value", "softmax/1?temperature=0.5|v2"))
    assert samples[("eddy_monitor_decisions_total", arm)] == 1
    assert samples[("eddy_monitor_reward_sum", arm)] == 1.0
    assert samples[("eddy_monitor_prediction_squared_error_sum", arm)] == pytest.approx(0.25)
    assert samples[("eddy_monitor_dead_letters_total", (("reason", "duplicate_feedback"),))] == 1
    win = (*arm, ("window", "tumbling_60s"))
    assert samples[("eddy_monitor_window_join_rate", win)] == 0.0
    assert ("eddy_monitor_window_reward_mean", win) not in samples  # no outcome: no sample, not a 0
    assert samples[("eddy_monitor_window_start_seconds", (("window", "tumbling_60s"),))] == 60.0


@pytest.mark.parametrize("overrides, message", [
    ({"monitor_port": 70000}, "monitor_port must be a TCP port"),
    ({"monitor_tumbling_s": 0}, "monitor_tumbling_s must be whole seconds"),
    ({"monitor_hop_s": 600}, "monitor_hop_s must be <= monitor_hopping_s (300)"),
])
def test_bad_monitor_settings_are_named(overrides, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_env({}, **overrides)


def test_retrain_rule_on_the_monitor_figure():
    """eddy retrain --watch --monitor-url: the first full window after the (re)train is the baseline; a later
    window worse than threshold x baseline is the reason to retrain."""
    from stream.monitor.signal import WindowRMSE
    from stream.retrain_trigger import RetrainTrigger

    name = "hopping_300s_every_60s"
    labels = (("dimension", "feature_net"), ("value", "v1"), ("window", name))

    def samples(start: float, rmse: float, outcomes: float):
        return {("eddy_monitor_window_prediction_rmse", labels): rmse,
                ("eddy_monitor_window_outcomes", labels): outcomes,
                ("eddy_monitor_window_start_seconds", (("window", name),)): start}

    signal, trigger = WindowRMSE(window=name, min_outcomes=100, not_before=1000.0), RetrainTrigger(threshold=1.2)
    for start, rmse, outcomes in ((940.0, 0.1, 500), (1000.0, 1.0, 50)):  # before the retrain; too few outcomes
        signal.update(samples(start, rmse, outcomes), live="v1")
        assert trigger.check(signal, now=0.0) is None and trigger.baseline is None
    signal.update(samples(1060.0, 1.0, 500), live="v1")
    assert trigger.check(signal, now=0.0) is None and trigger.baseline == 1.0
    signal.update(samples(1120.0, 1.1, 500), live="v1")
    assert trigger.check(signal, now=0.0) is None
    signal.update(samples(1180.0, 1.3, 500), live="v2")  # a figure of another feature net is not the live one's
    assert trigger.check(signal, now=0.0) is None
    signal.update(samples(1180.0, 1.3, 500), live="v1")
    assert trigger.check(signal, now=0.0).startswith("degraded: rolling RMSE 1.3000 > 1.2 x 1.0000")


def test_the_watch_reads_the_monitor_endpoint_and_says_once_when_it_is_down(capsys):
    """retrain --watch --monitor-url end to end over HTTP: a Snapshot served by prometheus_client, scraped into
    the watch's signal; a monitor that stops answering is reported once."""
    from prometheus_client import start_http_server

    from stream.commands.retrain_cmd import _scrape_monitor, _Watch
    from stream.monitor.signal import WindowRMSE
    from stream.retrain_trigger import RetrainTrigger
    from tests.integration.helpers import free_port

    [(grain, outcome)] = f.outcome_tallies(events.Outcome(_decision(), "a", 1.0, 102.0))  # error 0.5
    snap = Snapshot()
    snap.refresh({}, [("hopping_300s_every_60s", f.rolled_up([((f.table_key(0, grain), (2000.0, 2299.9)),
                                                                f.merge(outcome, outcome))]).items())])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        state = _Watch(live="v2", rolling=WindowRMSE(window="hopping_300s_every_60s", min_outcomes=2,
                                                     not_before=1000.0), trigger=RetrainTrigger(), count_errors=False)
        _scrape_monitor(f"http://127.0.0.1:{port}/metrics", state)
        assert (state.rolling.full, state.rolling.value, state.rolling.n) == (True, 0.5, 2)
    finally:
        server.shutdown()
        server.server_close()  # refuse connections from now on, as a stopped monitor does
    for _ in range(2):
        _scrape_monitor(f"http://127.0.0.1:{port}/metrics", state)
    assert capsys.readouterr().err.count("eddy monitor not answering") == 1
    assert state.rolling.value == 0.5  # the last figure stands while the monitor is away
