"""The worker's Prometheus metrics without a broker: the counters come from the batches' counts
(the ones the store adds to the ``stats:`` hash), reconcile, and the scrape-time gauges read
the engine, the batch-size limit and librdkafka's statistics."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from stream import config
from stream.engine.batching import AdaptiveBatchSize
from stream.metrics import WorkerMetrics, bucket_quantile
from tests.unit.test_engine import T0, Log, MemoryState, engine, feedback, model, query, run  # noqa: F401

pytestmark = pytest.mark.unit


def _worker(engine) -> SimpleNamespace:
    """What the metrics read from a worker: settings, its process-level stats, the batch limit, the engine."""
    return SimpleNamespace(s=config.from_env({}, metrics_port=0), stats=Counter(),
                           batching=AdaptiveBatchSize(slo_ms=10.0, start=8), engine=engine)


def value(m: WorkerMetrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_counters_are_the_committed_batch_counts_and_reconcile(engine):
    worker = _worker(engine)
    m = WorkerMetrics(worker)
    log, state = Log(), MemoryState()
    b1 = run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2")), log.raw("query", b"{oops")])
    m.committed_batch(b1, redis_s=0.002)
    m.published_batch(b1, started=0.0)
    chosen = json.loads(b1.outputs.predictions[0][1])["chosen"][0]
    b2 = run(engine, state, [log.rec(feedback("r1", chosen)), log.rec(feedback("nope", chosen)),
                             log.rec(query("r2", user="u2"))])  # r2 again: re-emitted, not decided twice
    m.committed_batch(b2, redis_s=0.001)
    total = state.counts  # what the store's MULTI/EXEC added to the stats: hash
    assert value(m, "eddy_records_consumed_total") == total["consumed"] == 6
    assert value(m, "eddy_predictions_total") == 2
    assert value(m, "eddy_feedback_applied_total") == 1
    assert value(m, "eddy_records_redelivered_total", kind="query") == 1
    assert value(m, "eddy_records_dead_lettered_total", reason="not_json") == 1
    assert total["feedback_held"] == 1  # "nope" may still be decided: held, not dead-lettered
    dead = sum(v for k, v in total.items() if k.startswith("dead_lettered."))
    assert value(m, "eddy_records_consumed_total") == value(m, "eddy_records_processed_total") + dead
    # histograms: one observation per committed batch, one latency per query decided
    assert value(m, "eddy_redis_commit_duration_seconds_count") == 2
    assert value(m, "eddy_batch_duration_seconds_count") == 1
    assert value(m, "eddy_batch_size_records_sum") == 3
    assert (m.figures()["batches"], m.figures()["batch_records"]) == (1, 3)  # what the benchmark's batch watch reads
    assert value(m, "eddy_query_latency_seconds_count") == 2
    assert value(m, "eddy_feature_net_duration_seconds_count") == 1  # b2 embedded nothing: r2 was re-emitted


def test_process_counters_and_gauges_are_read_at_scrape_time(engine):
    worker = _worker(engine)
    m = WorkerMetrics(worker)
    assert value(m, "eddy_batches_fenced_total") == 0
    worker.stats.update({"fenced_batches": 2, "aborted_batches": 1, "outages.redis": 1, "outage_ms.redis": 1500,
                         "commits_confirmed_after_error": 3})
    worker.batching.limit = 40
    assert value(m, "eddy_batches_fenced_total") == 2
    assert value(m, "eddy_batches_aborted_total") == 1
    assert value(m, "eddy_kafka_commits_confirmed_after_error_total") == 3
    assert value(m, "eddy_outage_seconds_total", service="redis") == 1.5
    assert value(m, "eddy_batch_size_limit") == 40
    assert value(m, "eddy_feature_net_info", version=engine.model.version) == 1
    v = engine.model.version
    log, state = Log(), MemoryState()
    run(engine, state, [log.rec(query("r1"))])  # u1 from the store: a miss
    run(engine, state, [log.rec(query("r2"))])  # u1 in memory: a hit
    assert value(m, "eddy_user_cache_users", feature_net_version=v) == 1
    assert value(m, "eddy_user_cache_lookups_total", feature_net_version=v) == 2
    assert value(m, "eddy_user_cache_hits_total", feature_net_version=v) == 1
    text = generate_latest(m.registry).decode()
    assert "# TYPE eddy_records_consumed_total counter" in text and "eddy_consumer_lag" in text


def test_consumer_lag_per_assigned_partition_from_librdkafka_statistics(engine):
    m = WorkerMetrics(_worker(engine))
    stats = {"topics": {"t.queries": {"partitions": {
        "0": {"partition": 0, "fetch_state": "active", "ls_offset": 120, "app_offset": 100, "committed_offset": 90},
        "1": {"partition": 1, "fetch_state": "active", "ls_offset": 50, "app_offset": -1001, "committed_offset": 45},
        "2": {"partition": 2, "fetch_state": "none", "ls_offset": 9, "app_offset": -1001, "committed_offset": -1001},
        "3": {"partition": 3, "fetch_state": "active", "ls_offset": 7, "lo_offset": 3, "app_offset": -1001,
              "committed_offset": -1001},  # never committed: read from the start
        "-1": {"partition": -1, "fetch_state": "none", "ls_offset": -1, "app_offset": -1001},
    }}}}
    m._on_statistics(json.dumps(stats))
    assert value(m, "eddy_consumer_lag", topic="t.queries", partition="0") == 20
    assert value(m, "eddy_consumer_lag", topic="t.queries", partition="1") == 5  # nothing read yet: committed
    assert value(m, "eddy_consumer_lag", topic="t.queries", partition="2") is None  # not assigned
    assert value(m, "eddy_consumer_lag", topic="t.queries", partition="3") == 4
    assert m.figures()["consumer_lag"] == 29


def test_figures_give_histogram_quantiles_for_eddy_stats(engine):
    m = WorkerMetrics(_worker(engine))
    assert "query_latency_us.p50" not in m.figures()  # nothing observed yet
    for s in (0.004, 0.004, 0.004, 0.2):
        m.query_latency.observe(s)
    f = m.figures()
    assert 2_500 <= f["query_latency_us.p50"] <= 5_000
    assert (f["batches"], f["batch_records"]) == (0, 0)
    assert 100_000 <= f["query_latency_us.p99"] <= 250_000


@pytest.mark.parametrize("q, buckets, expected", [
    (0.5, [(1.0, 0), (2.0, 4), (float("inf"), 4)], 1.5),
    (0.25, [(1.0, 2), (float("inf"), 2)], 0.25),
    (1.0, [(1.0, 1), (float("inf"), 2)], 1.0),  # in the +Inf bucket: the last finite bound
    (0.5, [], None),
])
def test_bucket_quantile(q, buckets, expected):
    assert bucket_quantile(q, buckets) == expected


def test_each_worker_process_gets_its_own_metrics_port():
    from stream.processes import child_env

    s = config.from_env({}, metrics_port=9400, instance_id="w")
    assert [child_env(s, i)["EDDY_METRICS_PORT"] for i in range(3)] == ["9400", "9401", "9402"]
    assert child_env(config.from_env({}, metrics_port=0), 2)["EDDY_METRICS_PORT"] == "0"  # off stays off


def test_feature_cache_counts_are_exported(model):  # noqa: F811
    from bandits import make_policy
    from features.cache import FeatureCaches
    from stream.engine import Engine

    eng = Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, clock=lambda: T0,
                 feature_caches=FeatureCaches(capacity=100, kinds=("mlp",)))
    m = WorkerMetrics(_worker(eng))
    log, state = Log(), MemoryState()
    run(eng, state, [log.rec(query("r1")), log.rec(query("r2"))])  # the same context and items: 4 misses, 4 hits
    assert value(m, "eddy_feature_cache_misses_total") == 4 and value(m, "eddy_feature_cache_hits_total") == 4
    assert value(m, "eddy_feature_cache_entries") == 4 and value(m, "eddy_feature_cache_capacity") == 100
    assert m.figures()["feature_cache_hits"] == 4


def test_gc_pauses_are_observed_by_generation(engine):
    m = WorkerMetrics(_worker(engine))
    m.gc_paused(2, 0.094)
    m.gc_paused(0, 0.0001)
    m.gc_paused(0, 0.0002)
    assert value(m, "eddy_gc_pause_seconds_count", generation="2") == 1
    assert value(m, "eddy_gc_pause_seconds_bucket", generation="2", le="0.05") == 0
    assert value(m, "eddy_gc_pause_seconds_bucket", generation="2", le="0.1") == 1
    assert value(m, "eddy_gc_pause_seconds_count", generation="0") == 2
    assert value(m, "eddy_gc_pause_seconds_count", generation="1") == 0


def test_join_memory_figures_are_read_at_scrape_time(engine):
    m, log, state = WorkerMetrics(_worker(engine)), Log(), MemoryState()
    engine.held_counts({0: 0})
    for batch in ([log.rec(query("r1"))], [log.rec(feedback("r9", "i1"))]):  # r9: no decision, a miss
        b = engine.process(batch, state, optimistic=True)  # optimistic: r1's record is kept in memory
        state.commit(b.write)
        engine.commit(b)
    assert value(m, "eddy_join_memory_records") == 1
    assert value(m, "eddy_join_memory_bytes") == len(state.decisions["r1"])
    run(engine, state, [log.rec(feedback("r1", "i1"))])
    assert value(m, "eddy_join_memory_lookups_total") == 2
    assert value(m, "eddy_join_memory_hits_total") == 1
    assert value(m, "eddy_join_memory_records") == 0  # applied: the store answers from now on
