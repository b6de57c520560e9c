"""The Eddy worker: queries in, predictions and decisions out; feedback in, learning out.

One loop, read top-down like the data flow::

    poll a batch (queries + feedback of the partitions this worker owns)
      -> decode; malformed records to dead-letter with their original bytes
      -> feedback: join to its decision, learn, emit model-update + outcome
      -> queries: feature net (one batched forward pass), per-user scores,
         exploration policy, emit prediction + decision
      -> write the batch's state to Redis in one MULTI/EXEC, fenced by epoch
      -> publish outputs and commit the input offsets in one Kafka transaction

A crash anywhere leaves either nothing or everything of a batch in Redis;
the offsets commit only after Redis has the state, and the applied-markers
make a re-read batch change nothing twice (see ``stream.joins``).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from bandits import Candidates, make_policy
from features.model import FeatureModel
from learners import PopulationModel
from stream import events
from stream.config import Settings
from stream.events import EventError, Feedback, ModelUpdate, Outcome, Prediction, Query, RankedItem
from stream.joins import Source, classify, pack_decision, unpack_decision
from stream.kafka_io import dead_letter, ensure_topics, partition_count
from stream.registry import Registry
from stream.store import BatchWrite, RedisStore
from stream.users import UserCache, merged_population

log = logging.getLogger("eddy.worker")


@dataclass
class Outputs:
    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # topic, key, value
    dead: list[tuple[Message, str, str]] = field(default_factory=list)  # msg, reason, detail


class Worker:
    def __init__(self, settings: Settings, *, model: FeatureModel | None = None):
        self.s = settings
        self.t = settings.topics
        self.store = RedisStore(settings.redis_url, settings.topic_prefix, decision_ttl_s=2 * settings.join_window_s)
        self.registry = Registry(self.store.client, settings.topic_prefix, settings.model_dir)
        self.policy = self._restore_policy(make_policy(settings.policy))
        self.stats: Counter[str] = Counter()
        self._stopping = False
        self._epochs: dict[int, int] = {}
        self._pop: dict[tuple[str, int], PopulationModel] = {}
        self._caches: dict[str, UserCache] = {}
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-model-loader")
        self._pending_model: concurrent.futures.Future | None = None
        self._next_check = 0.0
        self._next_prior = 0.0
        self._next_stats = 0.0
        torch.set_num_threads(settings.torch_threads)
        self.model = model or self._load_live_model()
        self._install(self.model)

    # ----------------------------------------------------------------- policy
    def _policy_key(self) -> str:
        return self.store.key("policy", self.s.group, self.policy.name)

    def _restore_policy(self, policy):
        """A learning policy (VW) resumes from its last snapshot in Redis."""
        if not hasattr(policy, "to_bytes"):
            return policy
        self.policy = policy
        blob = self.store.client.get(self._policy_key())
        if blob is not None:
            policy = type(policy).from_bytes(blob)
            log.info("policy %s restored from snapshot (%s)", policy.name, policy.version)
        return policy

    def _snapshot_policy(self, force: bool = False) -> None:
        # VW is one model per deployment, learned from the feedback each worker
        # joins; snapshots bound what a crash loses to the last 200 examples.
        if hasattr(self.policy, "to_bytes") and (force or self.policy.n_learned % 200 == 0):
            self.store.client.set(self._policy_key(), self.policy.to_bytes())

    # ------------------------------------------------------------------ model
    def _load_live_model(self) -> FeatureModel:
        version = self.registry.live()
        if version is None:
            raise SystemExit(
                "eddy worker: no live feature-net version in the registry; "
                "train one first (eddy train --from-file DATA.jsonl --promote, or eddy demo)"
            )
        return self.registry.load(version)

    def _install(self, model: FeatureModel) -> None:
        self.model = model
        base = None
        if model.user_weights:
            W = np.stack([w for w, _ in model.user_weights.values()])
            b = np.array([b for _, b in model.user_weights.values()])
            base = PopulationModel.from_user_weights(W, b).mean()
        self._caches[model.version] = UserCache(
            kind=self.s.learner, dim=model.output_dim, capacity=self.s.cache_users,
            base_prior=base, offline=model.user_weights,
        )
        self._next_prior = 0.0
        log.info("serving feature net %s (d=%d)", model.version, model.output_dim)

    def _cache(self, version: str, dim: int) -> UserCache:
        cache = self._caches.get(version)
        if cache is None:  # feedback for a decision made by an older feature net
            cache = self._caches[version] = UserCache(
                kind=self.s.learner, dim=dim, capacity=max(1000, self.s.cache_users // 10), base_prior=None)
        return cache

    def _maybe_swap(self, now: float) -> None:
        if self._pending_model is not None and self._pending_model.done():
            fut, self._pending_model = self._pending_model, None
            try:
                new = fut.result()
            except Exception as exc:  # a broken artifact must not stop serving the current one
                log.error("could not load the promoted feature net: %s", exc)
                self.stats["model_load_failed"] += 1
            else:
                old = self.model.version
                self._install(new)
                self.stats["model_swaps"] += 1
                log.info("hot-swapped feature net %s -> %s", old, new.version)
        if now >= self._next_check and self._pending_model is None:
            self._next_check = now + 1.0
            live = self.registry.live()
            if live and live != self.model.version:
                self._pending_model = self._loader.submit(self.registry.load, live)

    def _refresh_prior(self, now: float) -> None:
        if now < self._next_prior:
            return
        self._next_prior = now + self.s.prior_refresh_s
        fn = self.model.version
        pop = merged_population(self.store.population(fn, self.s.partitions))
        if pop is not None:
            self._caches[fn].set_prior(pop.mean())

    # -------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = sorted({tp.partition for tp in partitions})
        self._epochs = self.store.claim(self.s.group, parts)
        fn = self.model.version
        cache = self._caches[fn]
        for p in parts:
            self._population(fn, p, cache)
            users = self.store.users_of(fn, p, max(1, self.s.cache_users // max(1, len(parts)) // 2))
            cache.get_many(users, lambda ids: self.store.load_users(fn, ids))
        self.stats["rebalances"] += 1
        log.info("assigned partitions %s (epochs %s), warmed %d users", parts, self._epochs, len(cache))

    def _population(self, fn: str, partition: int, cache: UserCache) -> PopulationModel:
        """This partition's population statistics: in memory, else from Redis, else empty."""
        pop = self._pop.get((fn, partition))
        if pop is None:
            blob = self.store.client.get(self.store.key("pop", fn, partition))
            pop = PopulationModel.from_bytes(blob) if blob else cache.new_population()
            self._pop[(fn, partition)] = pop
        return pop

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # State is written through to Redis every batch, so nothing to flush:
        # forget it, since the next owner may change it.
        for c in self._caches.values():
            c.clear()
        self._pop.clear()
        self._epochs = {}
        log.info("revoked partitions %s", sorted({tp.partition for tp in partitions}))

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
        producer = Producer(self.s.producer_config(transactional=eos))
        if eos:
            producer.init_transactions(30)
        consumer = Consumer(self.s.consumer_config())
        consumer.subscribe([self.t["queries"], self.t["feedback"]], on_assign=self._on_assign, on_revoke=self._on_revoke)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self.stop)
            except ValueError:  # not the main thread (tests run workers in threads)
                pass
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info("worker %s consuming %s + %s (%s)", self.s.instance_id, self.t["queries"], self.t["feedback"], self.s.processing)
        try:
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                # Wait for the first record only, then take whatever else has already
                # arrived: consume(max_batch, timeout) would hold a lone query for the
                # whole timeout to fill a batch. Batches grow with load by themselves.
                msgs = consumer.consume(1, self.s.poll_timeout_ms / 1000)
                if msgs:
                    msgs += consumer.consume(self.s.max_batch - 1, 0)
                now = time.monotonic()
                self._maybe_swap(now)
                self._refresh_prior(now)
                if msgs:
                    self._handle_batch(msgs, consumer, producer, eos)
                if now >= self._next_stats:
                    self._next_stats = now + 1.0
                    self.store.publish_stats(self.s.group, self.s.instance_id, self.stats)
        finally:
            self._snapshot_policy(force=True)
            self.store.publish_stats(self.s.group, self.s.instance_id, self.stats)
            consumer.close()
            producer.flush(10)
            self._loader.shutdown(wait=False)
        return self.stats

    # ------------------------------------------------------------------ batch
    def _handle_batch(self, msgs: list[Message], consumer: Consumer, producer: Producer, eos: bool) -> None:
        t0 = time.perf_counter()
        out = Outputs()
        feedback: list[tuple[Message, Feedback]] = []
        queries: list[tuple[Message, Query]] = []
        offsets: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error():
                log.warning("consumer error: %s", m.error())
                continue
            self.stats["consumed"] += 1
            offsets[(m.topic(), m.partition())] = m.offset() + 1
            try:
                if m.topic() == self.t["feedback"]:
                    feedback.append((m, events.decode_feedback(m.value())))
                else:
                    queries.append((m, events.decode_query(m.value())))
            except EventError as exc:
                out.dead.append((m, exc.reason, exc.detail))
        write = BatchWrite()
        # Queries first: feedback later in the same batch can then join to them.
        if queries:
            self._predict(queries, write, out, t0)
        learned = self._learn(feedback, write, out) if feedback else {}
        if not self.store.commit(write, group=self.s.group, epochs=self._epochs):
            self._fenced(consumer, producer, eos, offsets, msgs)
            return
        for (fn, uid), model in learned.items():
            self._caches[fn].put(uid, model)
        try:
            self._publish(out, consumer, producer, eos, offsets)
        except KafkaException as exc:
            err = exc.args[0]
            if not (eos and err.txn_requires_abort()):
                raise  # fatal (e.g. fenced by a newer instance): exit, a restart resumes from committed offsets
            # Redis already holds this batch: re-reading it re-emits its outputs, learns nothing twice.
            log.warning("transaction aborted (%s); re-reading the batch", err)
            producer.abort_transaction(30)
            self.stats["aborted_batches"] += 1
            self._rewind(consumer, msgs)

    def _publish(self, out: Outputs, consumer: Consumer, producer: Producer, eos: bool,
                 offsets: dict[tuple[str, int], int]) -> None:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if eos:
            producer.begin_transaction()
        for topic, key, value in out.records:
            self._produce(producer, topic, key, value)
        for m, reason, detail in out.dead:
            dead_letter(producer, self.t["dead-letter"], m, reason, detail)
            self.stats["dead_lettered"] += 1
            self.stats[f"dead_lettered.{reason}"] += 1
        if eos:
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            consumer.commit(offsets=tps, asynchronous=False)

    @staticmethod
    def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.05)

    def _fenced(self, consumer: Consumer, producer: Producer, eos: bool,
                offsets: dict[tuple[str, int], int], msgs: list[Message]) -> None:
        """Another worker claimed one of our partitions: drop this batch, re-read from committed offsets."""
        self.stats["fenced_batches"] += 1
        log.warning("batch fenced by a newer owner; dropping it and rewinding")
        for c in self._caches.values():
            c.clear()
        self._pop.clear()  # ahead of Redis now: reloaded from Redis on next use
        self._rewind(consumer, msgs)

    @staticmethod
    def _rewind(consumer: Consumer, msgs: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            if not m.error():
                first.setdefault((m.topic(), m.partition()), m.offset())
        for (t, p), o in first.items():
            try:
                consumer.seek(TopicPartition(t, p, o))
            except KafkaException:
                pass  # no longer assigned: the new owner reads it

    # --------------------------------------------------------------- feedback
    def _learn(self, batch: list[tuple[Message, Feedback]], write: BatchWrite, out: Outputs) -> dict:
        rids = list(dict.fromkeys(f.request_id for _, f in batch))
        stored = self.store.load_decisions([r for r in rids if r not in write.decisions])
        stored.update({r: write.decisions[r] for r in rids if r in write.decisions})
        markers = {r: json.loads(v) for r, v in self.store.load_applied(rids).items()}
        learned: dict[tuple[str, str], object] = {}
        now = time.time()
        for m, fb in batch:
            source = Source(m.topic(), m.partition(), m.offset())
            record = stored.get(fb.request_id)
            decision, emb = unpack_decision(record) if record is not None else (None, None)
            verdict = classify(fb, source, decision, markers.get(fb.request_id), join_window_s=self.s.join_window_s)
            if verdict.action == "dead_letter":
                out.dead.append((m, verdict.reason, verdict.detail))
                continue
            key = fb.user_id.encode()
            if verdict.action == "redelivered":
                for topic, value in markers[fb.request_id]["outputs"]:
                    out.records.append((topic, key, value.encode()))
                self.stats["feedback_redelivered"] += 1
                continue
            fn = decision.feature_net_version
            cache = self._cache(fn, emb.shape[1])
            current = learned.get((fn, fb.user_id))
            if current is None:
                current = cache.get_many([fb.user_id], lambda ids: self.store.load_users(fn, ids))[fb.user_id]
            model = type(current).from_bytes(current.to_bytes())  # the cache changes only after Redis has it
            x = emb[verdict.item_index].astype(np.float64)
            w_before = np.concatenate([*map(np.atleast_1d, model.weights)])
            err = fb.reward - model.predict_one(x)
            model.learn_one(x, fb.reward)
            delta = float(np.linalg.norm(np.concatenate([*map(np.atleast_1d, model.weights)]) - w_before))
            learned[(fn, fb.user_id)] = model
            write.users[(fn, fb.user_id)] = (model.to_bytes(), m.partition())
            pop = self._population(fn, m.partition(), cache)
            pop.learn_one(x, fb.reward)
            write.population[(fn, m.partition())] = pop.to_bytes()
            if hasattr(self.policy, "learn") and verdict.item_index == decision.chosen_index:
                self.policy.learn(self._candidates(decision.scores, emb, decision), decision.chosen_index,
                                  fb.reward, decision.propensity)
                self._snapshot_policy()
            update = ModelUpdate(
                kind="user_weights", feature_net_version=fn, version=model.n_obs, user_id=fb.user_id,
                request_id=fb.request_id, summary={"n_obs": model.n_obs, "delta_norm": delta, "error": err},
                ts=now,
            )
            outcome = Outcome(decision=decision, item_id=fb.item_id, reward=fb.reward, feedback_ts=fb.ts)
            produced = [(self.t["model-updates"], events.encode(update).decode()),
                        (self.t["outcomes"], events.encode(outcome).decode())]
            marker = {"source": source.to_list(), "outputs": produced}
            markers[fb.request_id] = marker  # a second record in this same batch is a duplicate
            write.applied[fb.request_id] = json.dumps(marker).encode()
            for topic, value in produced:
                out.records.append((topic, key, value.encode()))
            self.stats["feedback_applied"] += 1
        return learned

    # ---------------------------------------------------------------- queries
    def _candidates(self, scores, emb: np.ndarray, decision_or_query, model=None) -> Candidates:
        ids = tuple(c.id for c in decision_or_query.candidates)
        mean = cov = None
        x = emb
        if model is not None and hasattr(model, "posterior"):
            mean, cov = model.posterior()
            x = np.hstack([emb, np.ones((emb.shape[0], 1), dtype=emb.dtype)])
        return Candidates(scores=np.asarray(scores, dtype=float), embeddings=x,
                          posterior_mean=mean, posterior_cov=cov, action_ids=ids)

    def _seed(self, request_id: str) -> int:
        digest = hashlib.blake2b(f"{self.s.seed}:{request_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def _predict(self, batch: list[tuple[Message, Query]], write: BatchWrite, out: Outputs, t0: float) -> None:
        fm = self.model
        fn = fm.version
        cache = self._caches[fn]
        users = cache.get_many([q.user_id for _, q in batch], lambda ids: self.store.load_users(fn, ids))
        embs = fm.embed_many([(q.context, [c.to_dict() for c in q.candidates]) for _, q in batch])
        now = time.time()
        for (m, q), emb in zip(batch, embs):
            model = users[q.user_id]
            scores = model.predict_many(emb.astype(np.float64))
            seed = self._seed(q.request_id)
            d = self.policy.decide(self._candidates(scores, emb, q, model), np.random.default_rng(seed))
            order = [d.chosen] + [i for i in np.argsort(-scores, kind="stable") if i != d.chosen]
            decision = events.Decision(
                request_id=q.request_id, user_id=q.user_id, ts=q.ts, context=q.context,
                candidates=q.candidates, scores=tuple(float(s) for s in scores),
                pmf=tuple(float(p) for p in d.pmf), chosen_index=int(d.chosen), propensity=float(d.propensity),
                policy=d.policy, policy_version=d.policy_version, seed=seed,
                feature_net_version=fn, user_weights_version=model.n_obs,
            )
            prediction = Prediction(
                request_id=q.request_id, user_id=q.user_id,
                ranked=tuple(RankedItem(q.candidates[i].id, float(scores[i]), float(d.pmf[i])) for i in order),
                chosen=tuple(q.candidates[i].id for i in order[: q.k]),
                feature_net_version=fn, user_weights_version=model.n_obs, policy=d.policy_version,
                latency_ms=(time.perf_counter() - t0) * 1000, ts=now,
            )
            key = q.user_id.encode()
            write.decisions[q.request_id] = pack_decision(decision, emb)
            out.records.append((self.t["predictions"], key, events.encode(prediction)))
            out.records.append((self.t["decisions"], key, events.encode(decision)))
            self.stats["predictions"] += 1
