"""A worker's Prometheus metrics (prometheus_client), served on ``metrics_bind:metrics_port``/metrics.

One source for every counter. The record counters come from each batch's ``counts``, the
same Counter that :meth:`stream.store.RedisStore.commit` adds to the ``stats:`` hash inside
the batch's MULTI/EXEC, taken at the same moment (once that commit succeeded), so a
worker's Prometheus counters and its ``eddy stats`` figures move together; process-level
counters (fenced and aborted batches, rebalances, outages) are read at scrape time from the
worker's ``stats``, the Counter ``eddy stats`` shows as process figures. Gauges are read at
scrape time too: nothing is sampled on the hot path but the histograms.

Names follow Prometheus' conventions (``eddy_..._total``, ``_seconds``); the identities::

    eddy_records_consumed_total = eddy_records_processed_total + sum(eddy_records_dead_lettered_total)
    eddy_records_processed_total = eddy_predictions_total + eddy_feedback_applied_total
                                   + sum(eddy_records_redelivered_total)

Each worker has its own registry (tests run several workers in one process); with
``eddy worker --processes N`` each child listens on its own port (:mod:`stream.processes`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.engine import PROCESSED

if TYPE_CHECKING:
    from stream.config import Settings
    from stream.engine import Batch
    from stream.engine.batching import AdaptiveBatchSize


class Worker(Protocol):
    """What the metrics read from a worker (:class:`stream.worker.Worker`) at scrape time."""

    s: Settings
    stats: Counter[str]
    batching: AdaptiveBatchSize
    engine: Any  # an Engine; a stand-in (the benchmarks' echo) may lack the model and caches

log = logging.getLogger("eddy.metrics")

STATISTICS_INTERVAL_MS = 1000
"""How often librdkafka reports its statistics (the consumer lag gauge's freshness)."""

_LATENCY_BUCKETS = (.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30)
_GC_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# process-level figures of Worker.stats: key -> (metric name, help)
_PROCESS_COUNTERS = {
    "fenced_batches": ("eddy_batches_fenced", "batches dropped because a newer owner claimed a partition"),
    "aborted_batches": ("eddy_batches_aborted", "batches whose publish or Kafka transaction failed (re-read)"),
    "rebalances": ("eddy_rebalances", "partition assignments received"),
    "partitions_lost": ("eddy_partitions_lost", "assignments lost without a revoke (session timeout)"),
    "model_swaps": ("eddy_model_swaps", "feature-net versions hot-swapped in"),
    "policy_swaps": ("eddy_policy_swaps", "learner-role policy snapshots hot-swapped in (policy_learner=role)"),
    "kafka_errors": ("eddy_kafka_errors", "Kafka errors reported on consumed messages"),
    "commits": ("eddy_kafka_commits", "commit spans committed (Kafka transactions, or offset commits)"),
    "commits_confirmed_after_error": ("eddy_kafka_commits_confirmed_after_error",
                                      "transactions whose commit reported an error but took effect (found in "
                                      "the group's committed offsets, not re-read)"),
    "consumers_replaced": ("eddy_consumers_replaced", "stalled consumers replaced (stream/stall.py)"),
    "optimistic_retried": ("eddy_batches_optimistic_retried",
                           "optimistic query batches whose commit found a stored decision, processed again"),
}


class _Scraped(Collector):
    """What is read from the worker at scrape time."""

    def __init__(self, metrics: WorkerMetrics, worker: Worker):
        self._m = metrics
        self._w = worker

    def collect(self) -> Iterator[Metric]:
        committed = dict(self._m.committed)
        stats = dict(self._w.stats)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield counter("eddy_records_consumed", "records consumed, counted once their batch committed to Redis",
                      committed.get("consumed", 0))
        yield counter("eddy_records_processed", "records that produced their outputs (not dead-lettered)",
                      sum(committed.get(k, 0) for k in PROCESSED))
        dead = CounterMetricFamily("eddy_records_dead_lettered", "records sent to the dead-letter topic",
                                   labels=["reason"])
        for key, n in sorted(committed.items()):
            if key.startswith("dead_lettered."):
                dead.add_metric([key.split(".", 1)[1]], n)
        yield dead
        yield counter("eddy_predictions", "queries decided (first time)", committed.get("predictions", 0))
        yield counter("eddy_feedback_applied", "feedback joined to its decision and learned",
                      committed.get("feedback_applied", 0))
        again = CounterMetricFamily("eddy_records_redelivered",
                                    "records read again after their batch committed (outputs re-emitted, "
                                    "nothing learned twice)", labels=["kind"])
        again.add_metric(["query"], committed.get("predictions_redelivered", 0))
        again.add_metric(["feedback"], committed.get("feedback_redelivered", 0))
        yield again
        for key, (name, doc) in _PROCESS_COUNTERS.items():
            yield counter(name, doc, stats.get(key, 0))
        outages = CounterMetricFamily("eddy_outages", "Redis or Kafka outages waited out", labels=["service"])
        outage_s = CounterMetricFamily("eddy_outage_seconds", "time spent waiting out outages", labels=["service"])
        for service in ("redis", "kafka"):
            outages.add_metric([service], stats.get(f"outages.{service}", 0))
            outage_s.add_metric([service], stats.get(f"outage_ms.{service}", 0) / 1000)
        yield outages
        yield outage_s

        yield GaugeMetricFamily("eddy_batch_size_limit", "the adaptive (AIMD) batch-size limit",
                                value=self._w.batching.limit)
        lag = GaugeMetricFamily("eddy_consumer_lag", "records of an assigned partition not yet read",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(self._m.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        engine = self._w.engine
        if getattr(engine, "model", None) is not None:
            yield InfoMetricFamily("eddy_feature_net", "the live feature-net version",
                                   value={"version": engine.model.version})
        if hasattr(engine, "cache_figures"):
            size = GaugeMetricFamily("eddy_user_cache_users", "per-user models held in memory",
                                     labels=["feature_net_version"])
            cap = GaugeMetricFamily("eddy_user_cache_capacity", "most per-user models held in memory",
                                    labels=["feature_net_version"])
            lookups = CounterMetricFamily("eddy_user_cache_lookups", "users looked up by batches",
                                          labels=["feature_net_version"])
            hits = CounterMetricFamily("eddy_user_cache_hits", "lookups answered from memory (hit rate: "
                                       "rate(hits) / rate(lookups))", labels=["feature_net_version"])
            for version, n, capacity, n_lookups, n_hits in engine.cache_figures():
                size.add_metric([version], n)
                cap.add_metric([version], capacity)
                lookups.add_metric([version], n_lookups)
                hits.add_metric([version], n_hits)
            yield from (size, cap, lookups, hits)
        fresh = getattr(engine, "fresh", None)
        if fresh is not None:
            yield GaugeMetricFamily("eddy_join_memory_records", "join records of this worker's own recent "
                                    "decisions held in memory (join_memory_mb)", value=len(fresh))
            yield GaugeMetricFamily("eddy_join_memory_bytes", "their bytes", value=fresh.nbytes)
            yield CounterMetricFamily("eddy_join_memory_lookups", "feedback looked up in memory", value=fresh.lookups)
            yield CounterMetricFamily("eddy_join_memory_hits", "feedback joined from memory, with no Redis read (hit "
                                      "rate: rate(hits) / rate(lookups))", value=fresh.hits)
        caches = getattr(engine, "feature_caches", None)
        if caches is not None and caches.enabled:
            f = caches.figures()
            for key, doc in (("hits", "feature-cache lookups answered from the cache (hit rate: rate(hits) / "
                                      "(rate(hits) + rate(misses)))"),
                             ("misses", "feature-cache lookups the feature net computed"),
                             ("evictions", "feature-cache entries evicted, least recently used first")):
                yield counter(f"eddy_feature_cache_{key}", doc, f[key])
            yield GaugeMetricFamily("eddy_feature_cache_entries", "entries in the live feature net's cache",
                                    value=f["entries"])
            yield GaugeMetricFamily("eddy_feature_cache_capacity", "most entries of the feature cache",
                                    value=f["capacity"])


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative histogram buckets ``(upper bound, count)``, as PromQL's
    ``histogram_quantile`` estimates it (linear within a bucket; the last finite bound past it).

    >>> bucket_quantile(0.5, [(1.0, 2), (2.0, 6), (float("inf"), 8)])
    1.5
    >>> bucket_quantile(0.99, [(1.0, 2), (2.0, 6), (float("inf"), 8)])
    2.0
    >>> bucket_quantile(0.5, [(1.0, 0), (float("inf"), 0)]) is None
    True
    """
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, n in buckets:
        if n >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * ((rank - below) / (n - below) if n > below else 1.0)
        lower, below = upper, n
    return lower


class WorkerMetrics:
    """The metrics of one worker; :meth:`serve` starts its endpoint (when ``metrics_port`` is not 0)."""

    def __init__(self, worker: Worker):
        self.registry = CollectorRegistry(auto_describe=True)
        self.committed: Counter[str] = Counter()
        self.lag: dict[tuple[str, int], int] = {}
        self._settings = worker.s
        self._engine = getattr(worker, "engine", None)
        self._server: Any = None
        self._thread: threading.Thread | None = None

        def histogram(name: str, doc: str, buckets=_LATENCY_BUCKETS) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=self.registry)

        self.query_latency = histogram("eddy_query_latency_seconds",
                                       "end to end: from the query's ts to its prediction being produced")
        self.batch_time = histogram("eddy_batch_duration_seconds",
                                    "one batch, from its poll to its outputs produced")
        self.feature_net_time = histogram("eddy_feature_net_duration_seconds",
                                          "the feature net's forward pass over a batch's queries")
        self.redis_commit_time = histogram("eddy_redis_commit_duration_seconds",
                                           "a batch's state write (the commit script)")
        self.kafka_commit_time = histogram("eddy_kafka_commit_duration_seconds",
                                           "committing a span of batches: their offsets, in one Kafka "
                                           "transaction (or one offset commit), once their predictions are acked")
        self.batch_size = histogram("eddy_batch_size_records", "records per batch", buckets=_SIZE_BUCKETS)
        gc_pause = Histogram("eddy_gc_pause_seconds", "Python garbage collections of this process (the loop "
                             "waits for each), by generation: 2 is a full collection (stream.heap)",
                             ["generation"], buckets=_GC_BUCKETS, registry=self.registry)
        self._gc_pause = [gc_pause.labels(str(g)) for g in range(3)]
        self.registry.register(_Scraped(self, worker))

    # ------------------------------------------------------------------ hooks
    def gc_paused(self, generation: int, seconds: float) -> None:
        """One garbage collection (:class:`stream.heap.GcPauses`), from whichever thread ran it."""
        self._gc_pause[generation].observe(seconds)

    def committed_batch(self, batch: Batch, *, redis_s: float) -> None:
        """The batch is in Redis: count what its commit added to the ``stats:`` hash."""
        self.committed.update(batch.counts)
        self.redis_commit_time.observe(redis_s)
        if batch.feature_net_s is not None:
            self.feature_net_time.observe(batch.feature_net_s)

    def published_batch(self, batch: Batch, *, started: float) -> None:
        """The batch's outputs are produced (its offsets join the open commit span); ``started``:
        the perf_counter of its poll. The span's commit is timed in ``kafka_commit_time``."""
        self.batch_time.observe(time.perf_counter() - started)
        self.batch_size.observe(batch.counts.get("consumed", 0))
        now = time.time()
        for ts in batch.query_ts:
            self.query_latency.observe(max(0.0, now - ts))

    def figures(self) -> dict[str, int]:
        """What ``eddy stats`` shows besides the counters: total lag and p50/p99 of each histogram (µs)."""
        out = {"consumer_lag": sum(self.lag.values())}
        # The batch-size histogram's count and sum: the mean batch between two readings (the benchmark's
        # batch sizes over time) is the records over the batches they added.
        sizes = {s.name: s.value for s in self.batch_size.collect()[0].samples}
        out["batches"] = round(sizes["eddy_batch_size_records_count"])
        out["batch_records"] = round(sizes["eddy_batch_size_records_sum"])
        caches = getattr(self._engine, "feature_caches", None)
        if caches is not None and caches.enabled:
            f = caches.figures()
            out.update({f"feature_cache_{k}": f[k] for k in ("hits", "misses", "evictions", "entries")})
        for name, h in (("query_latency", self.query_latency), ("batch", self.batch_time),
                        ("feature_net", self.feature_net_time), ("redis_commit", self.redis_commit_time),
                        ("kafka_commit", self.kafka_commit_time)):
            buckets = [(s.labels["le"], s.value) for s in h.collect()[0].samples if s.name.endswith("_bucket")]
            for q in (0.5, 0.99):
                v = bucket_quantile(q, [(float(le), n) for le, n in buckets])
                if v is not None:
                    out[f"{name}_us.p{round(q * 100)}"] = round(v * 1e6)
        return out

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka statistics every second: the consumer lag per partition comes from them."""
        return {"statistics.interval.ms": STATISTICS_INTERVAL_MS, "stats_cb": self._on_statistics}

    def _on_statistics(self, raw: str) -> None:
        """Lag of each assigned partition: the last stable offset (read_committed) minus the next to read."""
        lag = {}
        for topic, t in json.loads(raw).get("topics", {}).items():
            for p in t.get("partitions", {}).values():
                part, end, pos = p.get("partition", -1), p.get("ls_offset", -1), p.get("app_offset", -1)
                if part < 0 or p.get("fetch_state") == "none" or end < 0:
                    continue
                if pos < 0:  # nothing read yet: from the committed offset, else the start (auto.offset.reset=earliest)
                    pos = p.get("committed_offset", -1)
                    if pos < 0:
                        pos = p.get("lo_offset", -1)
                if pos >= 0:
                    lag[(topic, part)] = max(0, end - pos)
        self.lag = lag

    # ---------------------------------------------------------------- serving
    def serve(self) -> None:
        """Start the /metrics endpoint; a port in use is logged and the worker runs without one."""
        s = self._settings
        if not s.metrics_port:
            return
        try:
            self._server, self._thread = start_http_server(s.metrics_port, s.metrics_bind, registry=self.registry)
        except OSError as exc:
            log.error("no metrics endpoint: cannot listen on %s:%d (%s); set --metrics-port / "
                      "EDDY_METRICS_PORT to a free port, or 0 to turn it off", s.metrics_bind, s.metrics_port,
                      exc.strerror or exc)
            return
        log.info("metrics at http://%s:%d/metrics", s.metrics_bind, s.metrics_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


__all__ = ["WorkerMetrics", "STATISTICS_INTERVAL_MS"]
