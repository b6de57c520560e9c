"""The Eddy worker: the Kafka/Redis shell around the pure engine (:mod:`stream.engine`).

One loop, read top-down like the data flow::

    poll a batch (queries + feedback of the partitions this worker owns: whatever has
      arrived, up to an adaptive limit, AIMD under ``batch_slo_ms``)
      -> engine.process: decode, score queries, join + learn feedback
         (bad records become dead letters; nothing is published yet)
      -> store.commit: the batch's state in one atomic commit script, fenced by epoch
         (against a Redis Cluster: one per partition, docs/design.md "Redis Cluster")
      -> engine.commit: memory takes the batch's new user models
      -> publish the predictions at once (their decisions are durable now)
      -> the rest joins the open span; every ``commit_interval_ms`` the span's outputs and
         input offsets go out in one Kafka transaction, committed on a thread of its own
         once the span's predictions are acknowledged, while the loop goes on

What the shell owns: polling, the transaction, rewinding a batch that could
not commit, fencing, rebalances, and outages. A crash anywhere leaves either
nothing or everything of a batch (of each partition's part of it, against a
Redis Cluster) in Redis; the offsets commit only after
Redis has the state, and the applied-markers make a re-read batch change
nothing twice (see ``stream.engine.joins``). A Redis or Kafka outage is waited out
with bounded backoff: the batch is rewound and read again once the service
answers, and the worker gives up only after ``outage_give_up_s``.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from bandits import Policy, make_policy
from features.cache import FeatureCaches
from features.model import FeatureModel, limit_threads
from stream import faults
from stream.config import Settings
from stream.engine import Batch, BatchOutputs, DecisionsExist, Engine, InRecord
from stream.engine.anytime import Anytime
from stream.engine.cascade import Cascade
from stream.engine.batching import AdaptiveBatchSize
from stream.heap import GcPauses, HeapKeeper
from stream.held import HeldSweep
from stream.apprentice import SwitchWatch
from stream.challengers import ChallengerWatcher, selection_from_settings
from stream.hotswap import ModelWatcher
from stream.kafka_io import KafkaUnavailable, ensure_topics, partition_count, produce, quiet_logging
from stream.metrics import WorkerMetrics
from stream.outage import Outage
from stream.policy_swap import PolicyWatcher
from stream.rewards import RewardTimer
from stream.span import CommitSpan, committed_already, first_offsets, rewind_positions
from stream.stall import StallWatch, records_behind, records_waiting
from stream.store import RedisStore, StoreUnavailable

log = logging.getLogger("eddy.worker")

# Empty polls for this long with records waiting (twice) mean a stalled consumer (stream.stall).
_STALL_IDLE_S = 10.0
# While a commit is in flight the next span's outputs wait in memory; past this many, the loop waits.
_SPAN_MAX_OUTPUTS = 200_000

_PRODUCER_FENCED = {KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, getattr(KafkaError, "PRODUCER_FENCED", -1)}


class Worker:
    """``engine`` replaces the hybrid-model engine (the benchmarks' echo floor runs this same shell)."""

    def __init__(self, settings: Settings, *, model: FeatureModel | None = None, engine: Engine | None = None):
        self.s = settings
        self.t = settings.topics
        self.store = RedisStore.from_settings(settings)
        self.registry = self.store.registry(settings.model_dir)
        self.stats: Counter[str] = Counter()
        self.outage = Outage(give_up_s=settings.outage_give_up_s, stats=self.stats)
        self.batching = AdaptiveBatchSize(slo_ms=settings.batch_slo_ms, start=min(32, settings.max_batch),
                                          highest=settings.max_batch)
        limit_threads(settings.torch_threads)
        self.feature_caches = FeatureCaches(capacity=settings.feature_cache_size, lsh_bits=settings.lsh_bits,
                                            warm=settings.feature_cache_warm,
                                            kinds=tuple(k for k in settings.feature_cache_kinds.split(",") if k))
        self.engine = engine or Engine(
            model or self._live_model(), self._restored_policy(make_policy(settings.policy)),
            learner=settings.learner, join_window_s=settings.join_window_s, seed=settings.seed,
            cache_users=settings.cache_users, held_max=settings.held_feedback_max,
            reward_wait_s=settings.reward_wait_s, feature_caches=self.feature_caches,
            anytime=Anytime(deadline_ms=settings.deadline_ms, reserve_ms=settings.deadline_reserve_ms,
                            chunk_rows=settings.anytime_chunk_rows, items=settings.anytime_items),
            cascade=self._cascade(),
            reward_aggregation=settings.reward_aggregation,
            policy_learns=settings.policy_learner == "worker",
            join_memory_bytes=int(settings.join_memory_mb * 2**20),
        )
        self.serves_model = self.engine.model is not None
        if self.serves_model and engine is None and settings.challengers:
            selection = selection_from_settings(settings, self.registry, self.engine.model.version)
            if selection is not None:
                self.engine.serve_selection(selection)
                log.info("model selection %s: serving %s beside the live version", settings.selection,
                         ", ".join(selection.challengers))
        self.challenger_watcher = (ChallengerWatcher(self.registry, settings,
                                                     lambda: (self.engine.model.version, self.engine.selection))
                                   if self.serves_model and engine is None else None)
        self.watcher = (ModelWatcher(self.registry, lambda: self.engine.model.version,
                                     feature_caches=getattr(self.engine, "feature_caches", None))
                        if self.serves_model else None)
        self._kind = {self.t["queries"]: "query", self.t["feedback"]: "feedback"}
        self._stopping = False
        self._epochs: dict[int, int] = {}
        self._unclaimed: list[int] = []
        self._next_prior = 0.0
        self._next_stats = 0.0
        self._producer: Producer | None = None
        self._answers: Producer | None = None
        self._span = CommitSpan()
        # Under exactly-once a span's transaction commits on a thread of its own, one at a time, while
        # the loop goes on answering: the answer never waits for a transaction commit.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-commit")
        self._inflight: Future | None = None
        self._inflight_span: CommitSpan | None = None
        self._fenced_in_a_row = 0
        self._stall = StallWatch(idle_s=_STALL_IDLE_S)
        self.heap = HeapKeeper.from_settings(settings)
        self.metrics = WorkerMetrics(self)
        self.gc_pauses = GcPauses(self.metrics.gc_paused)
        self._held_sweep = HeldSweep(self.store, settings, self.stats)
        self._reward_timer = RewardTimer(self.store, settings, self.stats)
        self._apprentice = SwitchWatch(settings, self.store)
        self.policy_watcher = self._policy_watcher()
        if self.serves_model:
            self._apprentice.poll(time.monotonic())  # Redis out: apprentice mode starts on the default action
            self.engine.serve_default = self._apprentice.serving_default
            log.info("serving feature net %s (d=%d)", self.engine.model.version, self.engine.model.output_dim)

    @property
    def model(self) -> FeatureModel:
        return self.engine.model

    def _live_model(self) -> FeatureModel:
        version = self.registry.live()
        if version is None:
            raise SystemExit("eddy worker: no live feature-net version in the registry; "
                             "train one first (eddy train --from-file DATA.jsonl --promote, or eddy demo)")
        return self.registry.load(version)

    def _cascade(self) -> Cascade | None:
        version = self.s.cascade_cheap_version
        if not version:
            return None
        if version not in {e["version"] for e in self.registry.versions()}:
            raise SystemExit(f"eddy worker: cascade_cheap_version {version!r} is not a registered feature-net version")
        return Cascade(self.registry.load(version), self.s.cascade_margin)

    def _restored_policy(self, policy: Policy) -> Policy:
        """A learning policy (VW) resumes from its last snapshot (the learner role's: :meth:`_policy_watcher`)."""
        if not hasattr(policy, "to_bytes") or self.s.policy_learner == "role":
            return policy
        blob = self.store.load_policy(self.s.group, policy.name)
        if blob is not None:
            policy = type(policy).from_bytes(blob)
            log.info("policy %s restored from snapshot (%s)", policy.name, policy.version)
        return policy

    def _policy_watcher(self) -> PolicyWatcher | None:
        """With ``policy_learner=role``: serve the learner's newest snapshot now, and swap in newer ones."""
        policy = getattr(self.engine, "policy", None)  # the benchmarks' echo engine has none
        if self.s.policy_learner != "role" or not hasattr(policy, "to_bytes"):
            return None
        watcher = PolicyWatcher(self.store, self.s.group, policy)
        loaded = watcher.load_now()
        if loaded is not None:
            self.engine.install_policy(*loaded)
            log.info("policy %s from the learner's snapshot %d", policy.name, loaded[1])
        else:
            log.info("policy %s: no learner snapshot yet; deciding with an untrained policy", policy.name)
        return watcher

    # -------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._unclaimed = sorted({tp.partition for tp in partitions})
        self._epochs = {}
        self.stats["rebalances"] += 1
        log.info("assigned partitions %s", self._unclaimed)
        try:
            self._claim()
            if not self.serves_model:
                return
            fn = self.engine.model.version
            per_partition = max(1, self.s.cache_users // max(1, len(self._epochs)) // 2)
            for p in self._epochs:
                members = self.store.users_of(fn, p, per_partition)
                self.engine.warm(self.store.load_users(fn, dict.fromkeys(members, p)))
            log.info("claimed epochs %s, warmed %d users", self._epochs, self.engine.cached_users())
        except StoreUnavailable as exc:  # claimed before the next batch commits; warming is optional
            log.warning("could not claim or warm partitions now: %s", exc)

    def _claim(self) -> None:
        if self._unclaimed:
            self._epochs = self.store.claim(self.s.group, self._unclaimed)
            self._unclaimed = []

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what was published while the partitions are still ours (the generation is still valid):
        # the next owner starts after it. If that fails, it re-reads the span and Redis re-emits it.
        self._commit_due(consumer, force=True)
        # State is written through to Redis every batch: nothing to flush. Forget it, the next owner may change it.
        self.engine.forget()
        self._epochs, self._unclaimed = {}, []
        log.info("revoked partitions %s", sorted({tp.partition for tp in partitions}))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost without a clean revoke (session timeout): another worker may already own them, so
        # our open span cannot commit its offsets; drop it, the new owner re-reads it.
        self._drop_span(consumer)
        self.engine.forget()
        self._epochs, self._unclaimed = {}, []
        self.stats["partitions_lost"] += 1
        log.warning("lost partitions %s (session timed out?)", sorted({tp.partition for tp in partitions}))

    # ------------------------------------------------------------------- loop
    def stop(self, *_: object) -> None:
        self._stopping = True

    def run(self, *, max_seconds: float | None = None) -> Counter[str]:
        ensure_topics(self.s)
        counts = {partition_count(self.s, self.t[n]) for n in ("queries", "feedback")}
        if len(counts) != 1:
            raise SystemExit(f"eddy worker: {self.t['queries']} and {self.t['feedback']} must have the same "
                             f"number of partitions (got {sorted(counts)}): a user's state must live in one worker")
        eos = self.s.processing == "exactly_once"
        self._producer = self._new_producer(eos)
        # Predictions leave before the transaction, on an idempotent producer of their own
        # that sends at once (linger 0): the answer never waits on a transaction commit.
        self._answers = self._new_answers() if eos else None
        consumer = self._new_consumer()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self.stop)
            except ValueError:  # not the main thread (tests run workers in threads)
                pass
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.metrics.serve()
        self.heap.start()
        self.gc_pauses.start()
        log.info("worker %s consuming %s + %s (%s)", self.s.instance_id, self.t["queries"], self.t["feedback"],
                 self.s.processing)
        try:
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                # Wait for the first record only, then take whatever else has already
                # arrived: consume(max_batch, timeout) would hold a lone query for the
                # whole timeout to fill a batch. Batches grow with load by themselves.
                msgs = consumer.consume(1, self.s.poll_timeout_ms / 1000)
                if msgs and self.batching.limit > 1:
                    msgs += consumer.consume(self.batching.limit - 1, 0)
                if msgs:
                    self._stall.consumed()
                elif self._stall.check(now=time.monotonic(),
                                       lag=lambda: records_waiting(consumer, cluster_answers=self._cluster_answers)):
                    consumer = self._replace_stalled(consumer)
                    continue
                started = time.perf_counter()
                now = time.monotonic()
                self._between_batches(now)
                if self._inflight is None:  # their own transaction: a commit in flight owns the producer
                    self._held_sweep.maybe_run(now, self._producer, eos, self._epochs)
                    if self.serves_model and (held := self._held_sweep.take_counts()) is not None:
                        self.engine.held_counts(held)
                    self._reward_timer.maybe_run(now, self._producer, eos, self._epochs)
                if msgs:
                    compute_ms = self._handle(msgs, consumer, eos, started)
                    if compute_ms is not None:
                        self.batching.observe(n=len(msgs), elapsed_ms=compute_ms,
                                              waiting=lambda: records_behind(consumer))
                self._commit_due(consumer)
        finally:
            self._shutdown(consumer)
        return self.stats

    def _new_consumer(self) -> Consumer:
        consumer = Consumer(self.s.consumer_config(**quiet_logging(), **self.metrics.consumer_config()))
        consumer.subscribe([self.t["queries"], self.t["feedback"]],
                           on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        return consumer

    def _cluster_answers(self) -> bool:
        """Whether the broker answers a client other than the consumer (a metadata request, 2 s): the
        predictions producer (the transactional one may be busy committing), else the producer."""
        client = self._answers if self._answers is not None else self._producer
        try:
            client.list_topics(timeout=2)
            return True
        except KafkaException:
            return False

    def _replace_stalled(self, consumer: Consumer) -> Consumer:
        """See :mod:`stream.stall`: a rebalance like any other (revoke commits the open span)."""
        log.warning("the consumer fetched nothing for %gs while records wait on its partitions (or while its "
                    "own offset requests fail and the broker answers others); replacing it", 2 * self._stall.idle_s)
        self.stats["consumers_replaced"] += 1
        try:
            consumer.close()
        except KafkaException as exc:
            log.warning("closing the stalled consumer failed (%s)", exc.args[0].str())
        return self._new_consumer()

    def _between_batches(self, now: float) -> None:
        """Hot swap, the population prior, the heap and the process-level figures, each on its own schedule."""
        ran = self.heap.maybe_run()
        if ran is not None:
            self.stats[f"gc_{ran}_runs"] += 1
        loaded = self.watcher.ready(now) if self.watcher is not None else None
        if loaded is not None:
            model, old = loaded.model, self.engine.model.version
            self.engine.install(model, loaded.feature_cache)
            self._next_prior = 0.0
            self.stats["model_swaps"] += 1
            log.info("hot-swapped feature net %s -> %s", old, model.version)
        changed = self.challenger_watcher.ready(now) if self.challenger_watcher is not None else None
        if changed is not None:
            self.engine.serve_selection(changed.selection)
            self._next_prior = 0.0  # the new selectors decide on every partition's losses at once
            self.stats["challenger_changes"] += 1
            log.info("model selection: serving %s beside the live version (%s)",
                     ", ".join(changed.versions) or "nothing", changed.mode)
        if self.serves_model and self._apprentice.poll(now) is not None:
            self.engine.serve_default = self._apprentice.serving_default
        swapped = self.policy_watcher.ready(now) if self.policy_watcher is not None else None
        if swapped is not None:
            self.engine.install_policy(*swapped)
            self.stats["policy_swaps"] += 1
            log.debug("swapped in the learner's policy snapshot %d", swapped[1])
        try:
            if self.serves_model and now >= self._next_prior:
                self._next_prior = now + self.s.prior_refresh_s
                self.engine.set_prior(self.store.populations(self.engine.model.version, self.s.partitions))
                if self.engine.selection is not None:  # the selectors decide on every partition's losses
                    self.engine.selection.share(self.store.selections(self.s.partitions))
            if now >= self._next_stats:
                self._next_stats = now + 1.0
                self.stats["model_load_failed"] = self.watcher.failed if self.watcher is not None else 0
                self.stats["batch_limit"] = self.batching.limit
                self.stats["gc_full_collections"] = self.gc_pauses.counts[2]
                self.stats["gc_longest_pause_ms"] = round(self.gc_pauses.longest_ms)
                self.store.publish_stats(self.s.group, self.s.instance_id, {**self.stats, **self.metrics.figures()})
        except StoreUnavailable:
            pass  # reported by the batch path; these refreshes are retried on their own schedule

    def _shutdown(self, consumer: Consumer) -> None:
        snapshot = self.engine.policy_snapshot()
        try:
            if snapshot is not None and self._epochs:
                self.store.commit(snapshot, group=self.s.group, epochs=self._epochs, instance=self.s.instance_id)
            self.store.publish_stats(self.s.group, self.s.instance_id, {**self.stats, **self.metrics.figures()})
        except StoreUnavailable as exc:
            log.warning("could not save the final policy snapshot and stats: %s", exc)
        self._commit_due(consumer, force=True)
        consumer.close()
        self._committer.shutdown(wait=True)
        for p in (self._producer, self._answers):
            if p is not None:
                p.flush(10)
        for watcher in (self.watcher, self.policy_watcher, self.challenger_watcher):
            if watcher is not None:
                watcher.close()
        self.metrics.close()
        self.gc_pauses.stop()
        self.heap.stop()

    # ------------------------------------------------------------------ batch
    def _records(self, msgs: list[Message]) -> tuple[list[InRecord], dict[tuple[str, int], int]]:
        records, offsets = [], {}
        for m in msgs:
            if m.error():
                self.outage.kafka_error(m.error())
                continue
            offsets[(m.topic(), m.partition())] = m.offset() + 1
            records.append(InRecord(self._kind[m.topic()], m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        return records, offsets

    def _handle(self, msgs: list[Message], consumer: Consumer, eos: bool, started: float) -> float | None:
        """Process, commit and publish one batch; returns the engine's compute time in ms (None if none ran).

        The adaptive batch limit follows the compute time only: the commits' round trips
        cost the same for any batch size, and counting them would shrink batches exactly
        when larger ones are what amortises them."""
        records, offsets = self._records(msgs)
        if not records:
            return None
        try:
            self._claim()
            t0 = time.perf_counter()
            # Optimistic on one Redis: the commit checks for stored decisions (a cluster commits
            # per partition, so a refusal there could come after another partition's write).
            batch = self.engine.process(records, self.store, started=started, optimistic=not self.store.cluster)
            compute_ms = (time.perf_counter() - t0) * 1000
            faults.at("stop_before_redis_commit", applies_feedback=_applies_feedback(batch))
            t_redis = time.perf_counter()
            try:
                committed = self.store.commit(batch.write, group=self.s.group, epochs=self._epochs,
                                              instance=self.s.instance_id)
            except DecisionsExist:  # read again or retried: nothing was written; decide with the check
                self.stats["optimistic_retried"] += 1
                self.engine.refused(batch)  # the users it learned into are read again
                batch = self.engine.process(records, self.store, started=started)
                committed = self.store.commit(batch.write, group=self.s.group, epochs=self._epochs,
                                              instance=self.s.instance_id)
        except StoreUnavailable as exc:
            self.engine.forget()  # memory may be ahead of Redis or Redis may have restarted: reload
            self._rewind(consumer, first_offsets(records))
            self.outage.wait("redis", exc)
            return None
        self.outage.over("redis")
        if not committed:
            self._fenced(consumer, records)
            return None
        self.engine.commit(batch)
        self.metrics.committed_batch(batch, redis_s=time.perf_counter() - t_redis)
        faults.at("crash_after_redis_commit", applies_feedback=_applies_feedback(batch))
        self.stats.update(batch.counts)  # in Redis now; a failed publish re-emits it, counting nothing twice
        self._span.outboxes.extend(batch.write.outboxes)
        try:
            self._publish(batch.outputs, eos, offsets, records)
        except (KafkaException, KafkaUnavailable) as exc:
            err = exc.args[0] if isinstance(exc, KafkaException) else KafkaError(KafkaError._TIMED_OUT, str(exc))
            if self._inflight is None or self._collect(consumer):  # else: all rewound already
                self._span_failed(err, consumer, [self._span])
            return None
        self.metrics.published_batch(batch, started=started)
        if batch.features_ready is not None and self.engine.anytime is not None:  # what the deadline must leave
            self.engine.anytime.observe_tail(time.perf_counter() - batch.features_ready)
        return compute_ms

    def _publish(self, out: BatchOutputs, eos: bool, offsets: dict[tuple[str, int], int],
                 records: list[InRecord]) -> None:
        """Predictions leave at once: their decisions are durable in Redis already, and a batch read
        again re-emits the same bytes. The rest joins the open span, committed by :meth:`_commit_due`."""
        span = self._span
        span.add(records, offsets, time.monotonic())  # first: a failure below rewinds this batch too
        predictions = self.t["predictions"]
        if eos:
            for key, value in out.predictions:
                produce(self._answers, predictions, value, key=key, on_delivery=span.prediction_delivered)
                span.predictions_sent += 1
            # Held until the span commits: the transactional producer belongs to the commit thread.
            span.outputs.extend((self.t[name], key, value, None) for name, key, value in out.records)
            span.outputs.extend((self.t["dead-letter"], d.record.key, d.value, d.headers) for d in out.dead)
            return
        producer = self._producer
        for key, value in out.predictions:
            produce(producer, predictions, value, key=key)
        for name, key, value in out.records:
            produce(producer, self.t[name], value, key=key)
        for d in out.dead:
            produce(producer, self.t["dead-letter"], d.value, key=d.record.key, headers=d.headers)

    # ----------------------------------------------------------------- spans
    def _commit_due(self, consumer: Consumer, *, force: bool = False) -> None:
        """Collect a finished background commit; start the next one once the open span is due
        (``force``: now, and wait for it: rebalances and shutdown)."""
        if self._inflight is not None and (force or self._inflight.done()
                                           or len(self._span.outputs) > _SPAN_MAX_OUTPUTS):
            self._collect(consumer)
        if self._inflight is None and (force or self._span.due(time.monotonic(), self.s.commit_interval_ms / 1000)):
            self._start_commit(consumer)
            if force and self._inflight is not None:
                self._collect(consumer)

    def _start_commit(self, consumer: Consumer) -> None:
        span, self._span = self._span, CommitSpan()
        if span.empty:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in span.offsets.items()]
        if self.s.processing == "exactly_once":
            self._inflight = self._committer.submit(self._commit_transaction, span, tps,
                                                    consumer.consumer_group_metadata())
            self._inflight_span = span
            return
        t_kafka = time.perf_counter()
        try:  # at least once: everything was produced already; flush it, then commit the offsets
            if self._producer.flush(30) > 0:
                raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "outputs not delivered within 30 s"))
            consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            self._span_failed(exc.args[0], consumer, [span])
            return
        self.metrics.kafka_commit_time.observe(time.perf_counter() - t_kafka)
        self._committed(span)

    def _commit_transaction(self, span: CommitSpan, tps: list[TopicPartition], group_metadata: object) -> None:
        """On the commit thread, which owns the transactional producer meanwhile: one transaction with
        the span's outputs and offsets, committed only once every prediction of the span is
        acknowledged (so no committed offset leaves a prediction behind)."""
        producer = self._producer
        t_kafka = time.perf_counter()
        producer.begin_transaction()
        for topic, key, value, headers in span.outputs:
            produce(producer, topic, value, key=key, headers=headers)
        producer.send_offsets_to_transaction(tps, group_metadata, 30)
        deadline = time.monotonic() + 30
        while span.predictions_unacknowledged() and time.monotonic() < deadline:
            self._answers.poll(0.002)
        if span.prediction_error is not None:
            raise KafkaException(span.prediction_error)
        if span.predictions_unacknowledged():
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "predictions not acknowledged in 30 s"))
        backoff = 0.05
        span.commit_sent = True
        for attempt in range(8):
            try:
                producer.commit_transaction(30)
                if faults.at("commit_response_lost", applies_feedback=span.predictions_sent > 0):
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "fault: commit response lost"))
                self.metrics.kafka_commit_time.observe(time.perf_counter() - t_kafka)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or err.txn_requires_abort() or err.fatal() or attempt == 7:
                    raise
                time.sleep(backoff)  # the commit may be retried as it is (librdkafka's contract)
                backoff = min(2.0, backoff * 2)

    def _collect(self, consumer: Consumer) -> bool:
        """The background commit's outcome. A failure drops the open span too: every batch of both is
        in Redis, so rewinding to the first of them re-emits everything, learning nothing twice."""
        future, span = self._inflight, self._inflight_span
        self._inflight = self._inflight_span = None
        try:
            future.result()
        except KafkaException as exc:
            self._span_failed(exc.args[0], consumer, [span, self._span])
            return False
        except KafkaUnavailable as exc:  # the local queue stayed full: the broker takes nothing
            self._span_failed(KafkaError(KafkaError._TIMED_OUT, str(exc)), consumer, [span, self._span])
            return False
        self._committed(span)
        return True

    def _committed(self, span: CommitSpan) -> None:
        self._fenced_in_a_row = 0
        self.stats["commits"] += 1
        self.outage.over("kafka")
        if span.outboxes:  # the outputs are in Kafka: a record read again re-emits nothing (markers.py)
            try:
                self.store.delete_outboxes(span.outboxes)
            except StoreUnavailable as exc:  # left behind, they expire with their markers
                log.warning("could not delete %d committed outboxes: %s", len(span.outboxes), exc)

    def _drop_span(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Wait out a commit in flight, then drop the open span (nothing of it reached the transactional
        producer); returns its first offsets, for whoever re-reads it."""
        if self._inflight is not None:
            self._collect(consumer)
        first, self._span = self._span.first, CommitSpan()
        return first

    def _span_failed(self, err: KafkaError, consumer: Consumer, spans: list[CommitSpan]) -> None:
        """Redis already holds every batch of these spans: abort (or replace the producer), rewind to
        their first offsets, back off."""
        eos = self.s.processing == "exactly_once"
        if eos and err.code() in _PRODUCER_FENCED:
            # The broker fences a producer whose transaction it timed out (an outage longer than
            # transaction.timeout.ms) as well as one whose transactional id another process took.
            # The first is over once a new producer commits; the second fences us again at once.
            self._fenced_in_a_row += 1
            if self._fenced_in_a_row >= 2:
                raise SystemExit(f"eddy worker: another process took over transactional id of "
                                 f"{self.s.instance_id!r} ({err.str()}); two workers must not share --instance-id")
            log.warning("producer fenced (%s); starting a new producer", err.str())
            self._producer = self._new_producer(eos)
        elif eos and err.txn_requires_abort():
            log.warning("transaction aborted (%s)", err.str())
            try:
                self._producer.abort_transaction(30)
            except KafkaException as exc:
                log.warning("abort failed (%s); starting a new producer", exc.args[0].str())
                self._producer = self._new_producer(eos)
        else:
            log.warning("publishing failed (%s); starting a new producer", err.str())
            self._producer = self._new_producer(eos)
        if eos and err.fatal() and self._answers is not None:
            self._answers = self._new_answers()  # harmless if it was the transactional producer's error
        if eos and spans and spans[0].commit_sent and self._committed_after_all(consumer, spans[0], err):
            self._committed(spans[0])
            spans = spans[1:]
        batches = sum(s.batches for s in spans)  # counted after the check: a confirmed span is not re-read
        if batches:
            log.warning("re-reading %d batch(es) from their first offsets", batches)
        self.stats["aborted_batches"] += batches
        first = rewind_positions(spans)  # the earlier span's offsets win
        if spans and spans[-1] is self._span:
            self._span = CommitSpan()
        self._rewind(consumer, first)
        if any(not s.empty for s in spans):  # else the commit took effect: Kafka answers
            self.outage.wait("kafka", err)

    def _committed_after_all(self, consumer: Consumer, span: CommitSpan, err: KafkaError) -> bool:
        """Whether a transaction whose commit reported ``err`` committed anyway (a lost response, a
        timeout after the broker wrote the commit marker). The producer that replaced or aborted it
        has resolved it by now, so the group's committed offsets are final: re-reading a committed
        span would log its decisions and outcomes twice."""
        for attempt in range(3):
            try:
                got = consumer.committed([TopicPartition(t, p) for t, p in span.offsets], timeout=10)
                break
            except KafkaException as exc:
                log.warning("could not read the committed offsets (%s)%s", exc.args[0].str(),
                            "; re-reading the span" if attempt == 2 else "; trying again")
        else:
            return False  # re-read: its outputs may appear twice (identical), nothing is learned twice
        committed = {(tp.topic, tp.partition): (tp.offset if tp.error is None else None) for tp in got}
        if not committed_already(span.offsets, committed):
            return False
        log.warning("the commit of %d batch(es) reported %s, but their offsets are committed: it took "
                    "effect; not re-reading them", span.batches, err.str())
        self.stats["commits_confirmed_after_error"] += 1
        return True

    def _new_answers(self) -> Producer:
        return Producer(self.s.producer_config(**quiet_logging(), **{"linger.ms": 0}))

    def _new_producer(self, eos: bool) -> Producer:
        if self._producer is not None:
            try:
                self._producer.flush(0)
            except KafkaException:  # a fenced or failed producer raises its fatal error: it is replaced anyway
                pass
        while True:
            producer = Producer(self.s.producer_config(transactional=eos, **quiet_logging()))
            if not eos:
                return producer
            try:
                producer.init_transactions(30)  # also aborts what a previous incarnation left open
                self.outage.over("kafka")
                return producer
            except KafkaException as exc:
                if self._stopping:
                    raise SystemExit("eddy worker: stopped while Kafka was unavailable") from None
                self.outage.wait("kafka", exc.args[0])

    def _fenced(self, consumer: Consumer, records: list[InRecord]) -> None:
        """Another worker claimed one of our partitions: drop this batch, re-read from committed offsets."""
        self.stats["fenced_batches"] += 1
        log.warning("batch fenced by a newer owner of a partition; dropping it and the open span, rewinding")
        self.engine.forget()  # ahead of Redis now: reloaded from Redis on next use
        # The open span may hold offsets of the partition that moved: it must not commit. Every batch
        # in it is in Redis, so whoever owns each partition now re-reads and re-emits it.
        self._rewind(consumer, first_offsets(records, self._drop_span(consumer)))
        try:
            current = self.store.epochs(self.s.group, list(self._epochs))
        except StoreUnavailable:
            return
        if any(current[p] < e for p, e in self._epochs.items()):
            # No newer owner: Redis lost its keys (restarted without persistence). Claim again.
            log.error("Redis has older epochs than this worker holds (%s < %s): it lost data; claiming again",
                      current, self._epochs)
            self._unclaimed = sorted(self._epochs)

    @staticmethod
    def _rewind(consumer: Consumer, first: dict[tuple[str, int], int]) -> None:
        for (t, p), o in first.items():
            try:
                consumer.seek(TopicPartition(t, p, o))
            except KafkaException:
                pass  # no longer assigned: the new owner reads it


def _applies_feedback(batch: Batch) -> bool:
    """Whether a batch learns (the fault points' condition): from feedback, or from held feedback it released."""
    return bool(batch.counts["feedback_applied"] or batch.counts["held_applied"])


__all__ = ["Worker", "Batch"]
