"""A real Prometheus (Debian's package, run by deploy/prometheus) scrapes a live worker: the
counters it reports match what the test sent, the Redis ``stats:`` hash and ``eddy stats``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from stream import events
from stream.client import EddyClient
from stream.simulator import SimulatedWorld
from stream.store import RedisStore

from .helpers import read_dead_letters, read_json, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_QUERIES, N_FEEDBACK = 20, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus on a free port; returns (port, configure(targets)) and stops it afterwards."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run deploy/setup (Debian's `prometheus` package)")
    port = _free_port()
    env = {**os.environ, "EDDY_STATE_DIR": str(tmp_path / "state"), "EDDY_PROMETHEUS_PORT": str(port),
           "EDDY_PROMETHEUS_SCRAPE_INTERVAL": "1s", "EDDY_STACK_TIMEOUT": "60"}

    def up(targets: str) -> None:
        subprocess.run([str(REPO / "deploy/prometheus"), "up"], env={**env, "EDDY_PROMETHEUS_TARGETS": targets},
                       check=True, timeout=90)

    yield port, up
    subprocess.run([str(REPO / "deploy/prometheus"), "down"], env=env, check=True, timeout=60)


def _query(port: int, promql: str) -> dict[tuple, float]:
    """An instant query: {label values (sorted, without __name__ and job/instance): value}."""
    body = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
    assert body["status"] == "success", body
    out = {}
    for r in body["data"]["result"]:
        labels = tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__", "job", "instance")))
        out[labels] = float(r["value"][1])
    return out


def _scalar(port: int, promql: str) -> float | None:
    got = _query(port, promql)
    return next(iter(got.values())) if got else None


def test_prometheus_scrapes_the_worker_counters_that_match_what_was_sent(settings, live_model, worker_thread,
                                                                       prometheus):
    prom_port, prometheus_up = prometheus
    metrics_port = _free_port()
    s = dataclasses.replace(settings, metrics_port=metrics_port,
                            held_feedback_max=0)  # "never-asked" below is a dead letter at once, not held
    prometheus_up(f"127.0.0.1:{metrics_port}")
    world = SimulatedWorld(n_users=5, n_items=20, seed=11)
    client = EddyClient(s)
    with worker_thread(s) as w:
        wait_for(lambda: _try_get(f"http://127.0.0.1:{metrics_port}/metrics"), timeout_s=60)
        queries = [world.query(i, ts=time.time(), user=i % 5, prefix="req") for i in range(N_QUERIES)]
        for q in queries:
            client.send(q)
        client.send_raw(s.topic("queries"), b"u0", b"not json")
        client.flush()
        preds = {p["request_id"]: p for p in read_json(s, "predictions", n=N_QUERIES)}
        for q in queries[:N_FEEDBACK]:
            client.send(events.Feedback(q.request_id, q.user_id, preds[q.request_id]["chosen"][0], 1.0, time.time()))
        client.send(events.Feedback("never-asked", "u0", "i0", 1.0, time.time()))
        client.flush()
        read_json(s, "model-updates", n=N_FEEDBACK)
        read_dead_letters(s, n=2)
        consumed = N_QUERIES + 1 + N_FEEDBACK + 1

        # the endpoint itself, as `curl 127.0.0.1:PORT/metrics` shows it
        text = wait_for(lambda: (t := _get(f"http://127.0.0.1:{metrics_port}/metrics"))
                        and f"eddy_records_consumed_total {consumed}.0" in t
                        and "eddy_consumer_lag{" in t and t, timeout_s=30)  # lag: librdkafka reports every 1 s
        for name in ("eddy_records_processed_total", "eddy_records_dead_lettered_total", "eddy_feedback_applied_total",
                     "eddy_records_redelivered_total", "eddy_batches_fenced_total", "eddy_batches_aborted_total",
                     "eddy_query_latency_seconds_bucket", "eddy_batch_duration_seconds_count",
                     "eddy_feature_net_duration_seconds_sum", "eddy_redis_commit_duration_seconds_count",
                     "eddy_kafka_commit_duration_seconds_count", "eddy_batch_size_records_bucket",
                     "eddy_consumer_lag{", "eddy_feature_net_info{", "eddy_user_cache_users{",
                     "eddy_user_cache_hits_total{", "eddy_batch_size_limit", "eddy_join_memory_records",
                     "eddy_join_memory_bytes", "eddy_join_memory_lookups_total", "eddy_join_memory_hits_total",
                     'eddy_gc_pause_seconds_count{generation="0"}'):
            assert name in text, name

        # through Prometheus: scraped, stored, queried
        wait_for(lambda: _scalar(prom_port, "eddy_records_consumed_total") == consumed, timeout_s=60, interval_s=0.5)
        assert _scalar(prom_port, "eddy_predictions_total") == N_QUERIES
        assert _scalar(prom_port, "eddy_feedback_applied_total") == N_FEEDBACK
        assert _scalar(prom_port, "eddy_records_processed_total") == N_QUERIES + N_FEEDBACK
        assert _query(prom_port, "eddy_records_dead_lettered_total") == {
            (("reason", "not_json"),): 1.0, (("reason", "unknown_request"),): 1.0}
        assert _scalar(prom_port, "sum(eddy_records_redelivered_total)") == 0
        assert _scalar(prom_port, "eddy_batches_fenced_total") == 0
        assert _scalar(prom_port, "eddy_query_latency_seconds_count") == N_QUERIES
        assert _scalar(prom_port, "sum(eddy_batch_size_records_sum)") == consumed
        assert _query(prom_port, "eddy_feature_net_info") == {(("version", live_model.version),): 1.0}
        wait_for(lambda: _scalar(prom_port, "sum(eddy_consumer_lag)") == 0, timeout_s=30, interval_s=0.5)
        assert len(_query(prom_port, "eddy_consumer_lag")) == 2 * s.partitions  # queries + feedback, all assigned
        assert _scalar(prom_port, "up") == 1
        redis_stats = RedisStore.from_settings(s).read_stats(s.group)[s.instance_id]
        local = dict(w.worker.stats)
    # one source: the stats: hash the batches' MULTI/EXECs wrote holds the same counts
    assert redis_stats["consumed"] == consumed
    assert redis_stats["predictions"] == N_QUERIES and redis_stats["feedback_applied"] == N_FEEDBACK
    assert redis_stats["dead_lettered"] == 2 and local["consumed"] == consumed
    out = subprocess.run([sys.executable, "-m", "stream.cli", "stats", "--redis-url", s.redis_url,
                          "--topic-prefix", s.topic_prefix, "--group", s.group],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"all 1 workers: reconciles (consumed {consumed} = processed + dead-lettered {consumed})" in out.stdout
    assert "query_latency_us.p99" in out.stdout


def _try_get(url: str) -> str | None:
    try:
        return _get(url)
    except OSError:
        return None
