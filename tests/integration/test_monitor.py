"""eddy monitor: its changelog-backed tables survive SIGKILL, counting every record exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from stream import events
from stream.kafka_io import admin, delete_topics
from tests.integration.helpers import free_port, wait_for, worker_env

pytestmark = pytest.mark.integration


def _decision(i: int, policy_version: str = "epsilon_greedy/1?epsilon=0.1") -> events.Decision:
    return events.Decision(f"r{i}", f"u{i % 5}", 1000.0 + i, {}, (events.Item("a"), events.Item("b")), (0.5, 0.25),
                           (0.9, 0.1), 0, 0.9, "epsilon_greedy", policy_version, i, "v1", 0)


def _produce(settings, ts_ms: int, decisions: list[events.Decision], outcomes: list[events.Outcome],
             dead_reasons: list[str]) -> None:
    p = Producer(settings.producer_config())
    for d in decisions:
        p.produce(settings.topic("decisions"), events.encode(d), d.user_id.encode(), timestamp=ts_ms)
    for o in outcomes:
        p.produce(settings.topic("outcomes"), events.encode(o), o.decision.user_id.encode(), timestamp=ts_ms)
    for reason in dead_reasons:
        p.produce(settings.topic("dead-letter"), b"{}", b"u0", timestamp=ts_ms, headers=[("eddy.reason", reason.encode())])
    assert p.flush(30) == 0


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}``; empty while the endpoint is not up."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _start(settings, port: int, tmp_path, log) -> subprocess.Popen:
    env = worker_env(settings, monitor_port=port)
    env["EDDY_STATE_DIR"] = str(tmp_path)
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "monitor"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


ALL = (("dimension", "all"), ("value", ""))


def _total(figs, name: str, labels=ALL) -> float | None:
    return figs.get((name, labels))


def test_monitor_restarts_after_sigkill_with_its_counts_intact(settings, tmp_path):
    ts_ms = int(time.time() * 1000)  # every record in one tumbling and one hopping window
    first = [_decision(i) for i in range(20)]
    _produce(settings, ts_ms, first, [events.Outcome(d, "a", 1.0, d.ts + 2.0) for d in first[:10]],
             ["late_feedback", "late_feedback", "duplicate_feedback"])
    port = free_port()
    log = open(tmp_path / "monitor.log", "ab")
    proc = _start(settings, port, tmp_path, log)
    try:
        wait_for(lambda: _total(_scrape(port), "eddy_monitor_outcomes_total") == 10
                 and _total(_scrape(port), "eddy_monitor_decisions_total") == 20, timeout_s=90)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        second = [_decision(i, "softmax/1?temperature=0.5") for i in range(20, 30)]
        _produce(settings, ts_ms, second, [events.Outcome(d, "b", 0.0, d.ts + 4.0) for d in second[:5]],
                 ["unknown_request"])
        proc = _start(settings, port, tmp_path, log)
        figs = wait_for(lambda: (f := _scrape(port)) and _total(f, "eddy_monitor_outcomes_total") == 15
                        and _total(f, "eddy_monitor_decisions_total") == 30 and f, timeout_s=90)
        time.sleep(3)  # time to count something twice, were it to (not a timing assertion)
        figs = _scrape(port)
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
        _delete_monitor_topics(settings)
    log_text = (tmp_path / "monitor.log").read_text(errors="replace")

    assert _total(figs, "eddy_monitor_decisions_total") == 30, log_text[-3000:]
    assert _total(figs, "eddy_monitor_outcomes_total") == 15
    assert _total(figs, "eddy_monitor_reward_sum") == 10.0  # ten rewards of 1, five of 0
    # the error of the score of the item the feedback names: (1 - 0.5)^2 x 10 + (0 - 0.25)^2 x 5
    assert _total(figs, "eddy_monitor_prediction_squared_error_sum") == pytest.approx(10 * 0.25 + 5 * 0.0625)
    assert _total(figs, "eddy_monitor_feedback_delay_seconds_sum") == pytest.approx(10 * 2.0 + 5 * 4.0)
    arm = (("dimension", "arm"), ("value", "softmax/1?temperature=0.5|v1"))
    assert _total(figs, "eddy_monitor_decisions_total", arm) == 10, [k for k in figs if "decisions_total" in k[0]]
    assert _total(figs, "eddy_monitor_outcomes_total", (("dimension", "policy"), ("value", "epsilon_greedy"))) == 15
    for reason, n in (("late_feedback", 2), ("duplicate_feedback", 1), ("unknown_request", 1)):
        assert _total(figs, "eddy_monitor_dead_letters_total", (("reason", reason),)) == n

    for window in (f"tumbling_{settings.monitor_tumbling_s}s",
                   f"hopping_{settings.monitor_hopping_s}s_every_{settings.monitor_hop_s}s"):
        labels = (("dimension", "all"), ("value", ""), ("window", window))
        assert _total(figs, "eddy_monitor_window_decisions", labels) == 30, window
        assert _total(figs, "eddy_monitor_window_join_rate", labels) == 0.5
        assert _total(figs, "eddy_monitor_window_reward_mean", labels) == pytest.approx(10 / 15)
        assert _total(figs, "eddy_monitor_window_feedback_delay_max_seconds", labels) == 4.0
        assert _total(figs, "eddy_monitor_window_dead_letters", (("reason", "late_feedback"), ("window", window))) == 2
    assert "Traceback" not in log_text, log_text[-3000:]


def _delete_monitor_topics(settings) -> None:
    """The monitor's own topics (its tallies and changelogs); the fixture deletes Eddy's."""
    names = [t for t in admin(settings).list_topics(timeout=10).topics
             if t.startswith(settings.topic("monitor"))]
    if names:
        delete_topics(settings, names)
