"""The batch engine: records in, outputs and one state write out. No Kafka, no Redis.

:meth:`Engine.process` is the one place where a query is scored and a
feedback is learned. For one batch it

1. decodes every record (a record that does not decode is a dead letter);
2. scores the queries: one feature-net forward pass for the whole batch,
   each user's weights, the exploration policy's seeded draw, then the
   prediction, the decision log record and the join record;
3. joins each feedback to its decision (:func:`stream.engine.joins.classify`) and
   learns from it: the user's model, the partition's population statistics,
   and a learning policy;
4. returns the outputs and a :class:`~stream.engine.state.BatchWrite`.

Queries go first, so a feedback later in the same batch joins the decision
made in it. Whatever one record's content breaks (decoding, embedding,
scoring, the policy, learning) turns that record into a dead letter with a
reason, and the rest of the batch goes on. Failures of the state reader
(Redis) propagate: they are outages, not bad records.

The shell's contract: after :meth:`Engine.process`, it calls :meth:`Engine.commit`
once the batch is durable, or :meth:`Engine.forget` when it is not (fenced,
Redis unavailable). User models learn in place (copying a river model per
feedback cost two thirds of the learning time), so memory is ahead of Redis
between the two calls; population statistics are copied per batch. A
feedback that fails puts its user's model back as it was. (A learning policy,
VW, learns in place too; its snapshot is part of the batch's write.)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import msgspec
import numpy as np

from bandits import Policy
from features.cache import FeatureCache, FeatureCaches
from features.model import FeatureModel
from learners import PopulationModel, UserModel, all_finite
from stream import events
from stream.engine import apprentice, selection, serving, slates
from stream.engine.selection import Selection
from stream.engine.anytime import Anytime
from stream.engine.cascade import Cascade
from stream.engine.aggregation import RewardSums, source_field
from stream.engine.records import BatchOutputs, DeadLetter, InRecord
from stream.engine.fresh import FreshDecisions
from stream.engine.prefetch import Prefetched
from stream.engine.state import BatchWrite, StateReader
from stream.engine.users import UserCache, merged_population
from stream.events import EventError, Feedback, ModelUpdate, Query
from stream.engine.joins import DecisionHead, JoinRecord, Source, classify
from stream.engine.markers import Marker, decode_marker, encode_marker, encode_outbox, outbox_ref, outputs

log = logging.getLogger("eddy.engine")

PROCESSED = ("predictions", "predictions_redelivered", "feedback_applied", "feedback_redelivered", "feedback_held",
             "feedback_held_redelivered", "default_reward_superseded", "feedback_summed")
"""Counters of records handled without a dead letter: ``consumed = sum(PROCESSED) + dead_lettered``.

What becomes of held feedback later is counted apart (``held_applied``, ``held_dead_lettered``, ``held_expired``):
its record was consumed, and counted, when it was held."""

POLICY_SNAPSHOT_EVERY = 200
"""A learning policy's snapshot joins the batch write every this many examples."""


class Held(msgspec.Struct, array_like=True):
    """Feedback that came before its decision, as Redis holds it: the record and when holding it ends."""

    source: tuple[str, int, int]
    key: bytes | None
    value: bytes
    deadline: float

    def record(self) -> InRecord:
        topic, partition, offset = self.source
        return InRecord("feedback", topic, partition, offset, self.key, self.value)


_held_encoder = msgspec.msgpack.Encoder()
_held_decoder = msgspec.msgpack.Decoder(Held)


def decode_held(blob: bytes) -> Held:
    return _held_decoder.decode(blob)


def _outboxes(state: StateReader, markers: list[Marker]) -> dict[tuple[int, str], bytes]:
    """The outboxes ``markers`` point into, in one read (none when no marker points into one)."""
    refs = sorted({ref for ref in map(outbox_ref, markers) if ref is not None})
    return state.load_outboxes(refs) if refs else {}


def _slot(fb: Feedback) -> str:
    """The join key of the decision ``fb`` is for: its request and slate position."""
    return slates.slot_key(fb.request_id, fb.position)


@dataclass
class Batch:
    """One processed batch: publish ``outputs``, commit ``write``, then :meth:`Engine.commit` it."""

    outputs: BatchOutputs
    write: BatchWrite
    counts: Counter[str] = field(default_factory=Counter)
    learned: dict[tuple[str, str], UserModel] = field(default_factory=dict)
    partition_of: dict[tuple[str, str], int] = field(default_factory=dict)
    populations: dict[tuple[str, int], PopulationModel] = field(default_factory=dict)
    population_rows: dict[tuple[str, int], list[tuple[np.ndarray, float]]] = field(default_factory=dict)
    """The (x, reward) of each feedback learned, per population: added once, at the end of the batch."""
    query_ts: list[float] = field(default_factory=list)
    """The ``ts`` of each query decided in this batch (end-to-end latency is measured from it)."""
    feature_net_s: float | None = None
    """Seconds spent in the feature net's forward pass (None when the batch had no query to embed)."""
    features_ready: float | None = None
    """``time.perf_counter()`` when the batch's last feature vectors were ready (the anytime tail starts there)."""
    began: float = 0.0
    """The engine's clock when the batch began: its new decisions' age counts from it (:class:`FreshDecisions`)."""
    outbox: dict[int, tuple[str, list[tuple[str, bytes]]]] = field(default_factory=dict)
    """Per partition: the outbox id and the outputs of the feedback applied, in marker order
    (stream/engine/markers.py); written to ``write.outboxes`` at the end of the batch's feedback."""

    def mark(self, source: Source, produced: list[tuple[str, bytes]], via: str, summed: list[str]) -> Marker:
        """The applied-marker of ``source``'s record, its outputs appended to its partition's outbox. The
        outbox is named after the first record it holds: a record is applied once, so the name is new."""
        outbox_id, box = self.outbox.setdefault(source.partition, (f"{source.topic}:{source.offset}", []))
        marker = Marker(source=(source.topic, source.partition, source.offset), outbox=outbox_id, first=len(box),
                        count=len(produced), via=via, summed=summed)
        box.extend(produced)
        return marker

    def dead(self, record: InRecord, reason: str, detail: str, *, held: bool = False) -> None:
        """``held``: the record was consumed (and counted) when it was held, so it is counted apart."""
        self.outputs.dead.append(DeadLetter(record, reason, detail))
        prefix = "held_dead_lettered" if held else "dead_lettered"
        self.counts[prefix] += 1
        self.counts[f"{prefix}.{reason}"] += 1


@dataclass
class _Scored:
    """A query with its embeddings and scores, waiting for the policy."""

    record: InRecord
    query: Query
    embeddings: np.ndarray
    user: UserModel
    scores: np.ndarray
    seed: int
    feature_net_version: str
    approximated: tuple[int, ...] = ()  # candidates scored with E[f] (anytime)
    escalated: bool = False  # the cascade's cheap model was unsure
    coarsened: tuple[int, ...] = ()  # candidates whose features came from a coarsened cache entry (LSH)


class Engine:
    """Scores queries and learns from feedback for the partitions a worker owns.

    Parameters
    ----------
    model
        The live feature net. :meth:`install` swaps it between batches.
    policy
        The exploration policy.
    learner
        Per-user learner kind (``river``, ``bayes``).
    join_window_s
        Feedback later than this after its decision is late; decisions are
        kept for twice as long.
    seed
        The deployment's base seed of exploration draws.
    cache_users
        Per-user models kept in memory for the live feature net.
    held_max
        Early feedback (before its decision) held per partition; beyond it, a dead letter.
    reward_wait_s
        0: off. Otherwise each decision waits this long for its reward (``{pN}:pending``);
        the reward timer (:mod:`stream.rewards`) then emits the default reward, and a real
        reward after the wait is late.
    feature_caches
        The feature cache per feature-net version (:mod:`features.cache`); None: off.
    anytime
        Deadlines and the budgeted feature net (:mod:`stream.engine.anytime`); None: no deadlines.
    cascade
        The IDK cascade's cheap model (:mod:`stream.engine.cascade`); None: the live model answers all.
    reward_aggregation
        ``earliest``: a request's first reward is applied. ``sum`` (needs ``reward_wait_s``):
        its rewards within the wait are added up and applied once when it ends
        (:mod:`stream.engine.aggregation`).
    policy_learns
        False: a learning policy (VW) is trained elsewhere (the learner role,
        :mod:`stream.learner`) and swapped in with :meth:`install_policy`; feedback
        does not train it here and no batch snapshots it.
    """

    def __init__(self, model: FeatureModel, policy: Policy, *, learner: str, join_window_s: float,
                 seed: int = 0, cache_users: int = 100_000, held_max: int = 10_000, reward_wait_s: float = 0.0,
                 reward_aggregation: str = "earliest", policy_learns: bool = True,
                 clock: Callable[[], float] = time.time, feature_caches: FeatureCaches | None = None,
                 anytime: Anytime | None = None, cascade: Cascade | None = None,
                 join_memory_bytes: int = 64 << 20):
        self.feature_caches = feature_caches
        self.policy = policy
        self.reward_aggregation = reward_aggregation
        self.policy_learns = policy_learns
        self.serving_snapshot: int | None = None  # the learner role's snapshot version being served
        self.held_max = held_max
        self.reward_wait_s = reward_wait_s
        self.learner = learner
        self.join_window_s = join_window_s
        self.seed = seed
        self.cache_users = cache_users
        self._clock = clock
        self._caches: dict[str, UserCache] = {}
        self._populations: dict[tuple[str, int], PopulationModel] = {}
        # Partitions known to hold no early feedback (see held_counts): their queries skip the lookup.
        self._held_none: set[int] = set()
        # Join records of this engine's own new decisions: their feedback joins without a store read.
        self.fresh = FreshDecisions(max_bytes=join_memory_bytes, max_age_s=join_window_s)
        self.anytime = anytime
        self.cascade = cascade
        self.serve_default = False
        self.selection: Selection | None = None
        self.model = model
        self.install(model)

    # ----------------------------------------------------------------- model
    def install(self, model: FeatureModel, feature_cache: FeatureCache | None = None) -> None:
        """Serve ``model`` from the next batch on (with its warmed ``feature_cache``, if any); feedback for
        older versions still learns."""
        self.model = model
        if self.feature_caches is not None and feature_cache is not None:
            self.feature_caches.install(feature_cache)
        for m in (model, self.cascade.cheap) if self.cascade is not None else (model,):
            if m is model or m.version not in self._caches:
                self._caches[m.version] = UserCache(
                    kind=self.learner, dim=m.output_dim, capacity=self.cache_users,
                    base_prior=serving.base_prior(m), offline=m.user_weights,
                )

    def serve_selection(self, selection: Selection | None) -> None:
        """Serve ``selection``'s challengers beside the live feature net (stream/engine/selection.py) from
        the next batch on; None: the live version alone. Each partition's selector state is read again from
        the store, so a new set of challengers goes on from what the committed batches learned."""
        self.selection = selection
        for m in selection.challengers.values() if selection is not None else ():
            self.version_cache(m)

    def version_cache(self, model: FeatureModel) -> UserCache:
        """The user models of ``model``'s version (a challenger's new users start from its own prior)."""
        cache = self._caches.get(model.version)
        if cache is None or cache.base_prior is None and model.user_weights:
            cache = self._caches[model.version] = UserCache(
                kind=self.learner, dim=model.output_dim, capacity=self.cache_users,
                base_prior=serving.base_prior(model), offline=model.user_weights)
        return cache

    def install_policy(self, policy: Policy, snapshot: int) -> None:
        """Decide with ``policy`` (the learner role's snapshot ``snapshot``) from the next batch on."""
        self.policy = policy
        self.serving_snapshot = snapshot

    def _cache(self, version: str, dim: int) -> UserCache:
        cache = self._caches.get(version)
        if cache is None:  # feedback for a decision made by a feature net no longer live
            cache = self._caches[version] = UserCache(
                kind=self.learner, dim=dim, capacity=max(1000, self.cache_users // 10), base_prior=None)
        return cache

    def set_prior(self, population_blobs: list[bytes]) -> None:
        """New users of the live version start from every partition's statistics merged."""
        pop = merged_population(population_blobs)
        if pop is not None:
            self._caches[self.model.version].set_prior(pop.mean())

    def warm(self, states: dict[str, bytes]) -> None:
        """Load users of the live version into memory (a newly assigned partition's)."""
        self._caches[self.model.version].warm(states)

    def refused(self, batch: Batch) -> None:
        """An optimistic ``batch``'s commit was refused (:class:`DecisionsExist`), so nothing of it was
        written: the users it learned into, in place, are read again from the store on next use."""
        for fn, uid in batch.learned:
            self._caches[fn].discard(uid)

    def forget(self) -> None:
        """Drop everything held in memory: the partitions' next owner may change it (revoke, fence)."""
        self.fresh.clear()
        for cache in self._caches.values():
            cache.clear()
        self._populations.clear()
        self._held_none.clear()
        if self.selection is not None:
            self.selection.forget()

    def held_counts(self, counts: Mapping[int, int]) -> None:
        """Held early feedback per partition, read from the store between batches (the worker's held sweep).

        Only this partition's owner holds feedback in it, and only by its batches' writes, so
        a partition read at 0 holds none until a batch of this engine holds some there
        (:meth:`commit` notes it): until then its queries skip the held lookup, one store
        round trip per query batch. :meth:`forget` (revoke, fence, outage) drops what is known.
        """
        for p, n in counts.items():
            if n == 0:
                self._held_none.add(p)
            else:
                self._held_none.discard(p)

    def cached_users(self) -> int:
        return len(self._caches[self.model.version])

    def cache_figures(self) -> list[tuple[str, int, int, int, int]]:
        """Per feature-net version: (version, users held, capacity, lookups, hits)."""
        return [(v, len(c), c.capacity, c.lookups, c.hits) for v, c in list(self._caches.items())]

    # ----------------------------------------------------------------- batch
    def process(self, records: list[InRecord], state: StateReader, *, started: float | None = None,
                optimistic: bool = False) -> Batch:
        """Handle one batch; ``started`` is the ``time.perf_counter()`` when it was polled.

        ``optimistic``: a batch whose queries are in partitions known to hold no early feedback
        decides without first reading for decisions already stored (a batch read again, a
        retried request id) and leaves that check to its commit (``BatchWrite.expect_new``:
        the store writes nothing and raises :class:`DecisionsExist` if a decision, or an
        applied-marker, of a request it decided is there). The caller then calls
        :meth:`refused` (the users it learned into, in place, are read again from the store)
        and processes the same records again, not optimistically, which re-emits the stored
        decisions. It saves a store round trip per batch. A batch with feedback is optimistic
        only where nothing else learns in memory (a learning policy, model selection).
        """
        started = time.perf_counter() if started is None else started
        batch = Batch(BatchOutputs(), BatchWrite(decision_ttl_s=2 * self.join_window_s), began=self._clock())
        learns_in_memory = self.selection is not None or (self.policy_learns and hasattr(self.policy, "learn"))
        optimistic = optimistic and all(r.partition in self._held_none if r.kind == "query" else not learns_in_memory
                                        for r in records)
        if self.selection is not None:
            self.selection.begin()
        queries: list[tuple[InRecord, Query]] = []
        feedback: list[tuple[InRecord, Feedback]] = []
        for r in records:
            batch.counts["consumed"] += 1
            try:
                if r.kind == "query":
                    queries.append((r, events.decode_query(r.value)))
                else:
                    feedback.append((r, events.decode_feedback(r.value)))
            except EventError as exc:
                batch.dead(r, exc.reason, exc.detail)
            except Exception as exc:  # a decoder bug must not stop the partition
                batch.dead(r, "undecodable", f"{type(exc).__name__}: {exc}")
        held: list[tuple[InRecord, Feedback]] = []
        fresh = self._fresh_joins(feedback, batch.began)
        state = self._prefetch(state, queries, feedback, fresh, check_decided=not optimistic)
        if queries:
            self._score(queries, state, batch, started, check_decided=not optimistic)
            batch.write.expect_new = optimistic and bool(batch.write.decisions)
            held = self._release_held(queries, state, batch)
        if feedback or held:
            self._learn(held + feedback, state, batch, n_held=len(held), fresh=fresh)
        if self.selection is not None:
            self.selection.write(batch)
        n_learned = getattr(self.policy, "n_learned", None)
        if n_learned is not None and batch.counts["policy_learned"]:
            if n_learned // POLICY_SNAPSHOT_EVERY != (n_learned - batch.counts["policy_learned"]) // POLICY_SNAPSHOT_EVERY:
                batch.write.policy = (self.policy.name, self.policy.to_bytes())
        batch.write.counts = dict(batch.counts)
        return batch

    def _fresh_joins(self, feedback: list[tuple[InRecord, Feedback]], now: float) -> dict[str, bytes]:
        """The feedback's join records that memory holds (``fresh.py``): no read, and no applied-marker."""
        if not feedback:
            return {}
        rids = {_slot(fb): r.partition for r, fb in feedback}  # as _learn reads them
        if not len(self.fresh):
            self.fresh.lookups += len(rids)
            return {}
        found = {slot: self.fresh.get(slot, partition=p, now=now) for slot, p in rids.items()}
        return {slot: record for slot, record in found.items() if record is not None}

    def _prefetch(self, state: StateReader, queries: list[tuple[InRecord, Query]],
                  feedback: list[tuple[InRecord, Feedback]], fresh: Mapping[str, bytes], *,
                  check_decided: bool) -> StateReader:
        """The reads this batch will make, in one round trip (``prefetch.py``): its users not in memory,
        the queries' stored decisions (unless ``check_decided`` is off: an optimistic batch), the
        feedback's join records and applied-markers (unless ``fresh`` answers for them)."""
        fn = self.model.version
        users: dict[str, int] = {}
        for r, q in queries:
            users.setdefault(q.user_id, r.partition)
        for r, fb in feedback:
            users.setdefault(fb.user_id, r.partition)
        cache = self._caches.get(fn)
        if cache is not None:
            users = {u: p for u, p in users.items() if u not in cache}
        decisions = ({slates.slot_key(q.request_id, j): r.partition for r, q in queries for j in range(q.k)}
                     if check_decided else {})
        applied = {_slot(fb): r.partition for r, fb in feedback}
        for slot in fresh:
            del applied[slot]
        decisions.update(applied)
        if not users and not decisions:
            return state
        return Prefetched.read(state, fn, users=users, decisions=decisions, applied=applied)

    def commit(self, batch: Batch) -> None:
        """The batch is durable: memory takes its new user models and statistics, and the join records of
        the decisions its commit checked were new (:class:`FreshDecisions`)."""
        for (fn, uid), model in batch.learned.items():
            self._caches[fn].put(uid, model)
        fresh = self.fresh
        if batch.write.expect_new:
            for slot, (record, partition) in batch.write.decisions.items():
                fresh.add(slot, record, partition=partition, t=batch.began)
        fresh.applied(batch.write.applied)
        fresh.expire(batch.began)
        self._held_none.difference_update(p for p, _ in batch.write.held)
        self._populations.update(batch.populations)
        if self.selection is not None:
            self.selection.commit()

    def policy_snapshot(self) -> BatchWrite | None:
        """A write holding only the learning policy's snapshot (on shutdown), or None."""
        if not self.policy_learns or not hasattr(self.policy, "to_bytes"):
            return None
        return BatchWrite(policy=(self.policy.name, self.policy.to_bytes()))

    # ---------------------------------------------------------------- queries
    def _embedder(self, model: FeatureModel) -> Callable[[list], tuple[list[np.ndarray], list[tuple[int, ...]]]]:
        """``model``'s forward pass over many queries: each query's rows, and the indices of its candidates
        served from a coarsened (LSH) cache entry. The live version's feature cache only: a cascade's cheap
        version is not cached (``for_model`` would swap)."""
        cache = None if self.feature_caches is None or model is not self.model else self.feature_caches.for_model(model)
        if cache is None:
            return lambda inputs: (model.embed_many(inputs), [()] * len(inputs))

        def embed(inputs: list) -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
            coarsened: list[tuple[int, ...]] = []
            return model.embed_many(inputs, cache=cache, coarsened=coarsened), coarsened
        return embed

    def _embed(self, model: FeatureModel, queries: list[tuple[InRecord, Query]],
               batch: Batch) -> list[tuple[InRecord, Query, np.ndarray, tuple[int, ...], tuple[int, ...]]]:
        """One forward pass for the batch; if it fails, one per query, to find the record that broke it.
        Under a deadline, the budgeted pass of :mod:`stream.engine.anytime`. The last two items: the
        candidates approximated (anytime) and those served from a coarsened cache entry."""
        inputs = [(q.context, [c.to_dict() for c in q.candidates]) for _, q in queries]
        embed = self._embedder(model)
        t0 = time.perf_counter()
        if self.anytime is not None and self.anytime.applies([q for _, q in queries]):
            out = []
            for (r, q), e in zip(queries, self.anytime.embed(embed, model, [q for _, q in queries], inputs)):
                if e.error is not None:
                    batch.dead(r, "embedding_failed", f"{type(e.error).__name__}: {e.error}")
                else:
                    out.append((r, q, e.rows, e.approximated, e.coarsened))
                    batch.counts["candidates_approximated"] += len(e.approximated)
                    batch.counts["queries_approximated"] += bool(e.approximated)
            batch.feature_net_s = (batch.feature_net_s or 0.0) + time.perf_counter() - t0
            batch.features_ready = time.perf_counter()
            return out
        if self.anytime is not None:
            self.anytime.idle()  # a chunk past its budget may still run, and the feature cache is not thread-safe
        try:
            embs, marks = embed(inputs)
            return [(r, q, e, (), m) for (r, q), e, m in zip(queries, embs, marks)]
        except Exception:
            pass
        finally:
            batch.feature_net_s = (batch.feature_net_s or 0.0) + time.perf_counter() - t0
        out = []
        t0 = time.perf_counter()
        for (r, q), x in zip(queries, inputs):
            try:
                embs, marks = embed([x])
                out.append((r, q, embs[0], (), marks[0]))
            except Exception as exc:
                batch.dead(r, "embedding_failed", f"{type(exc).__name__}: {exc}")
        batch.feature_net_s += time.perf_counter() - t0
        return out

    def _score_with(self, model: FeatureModel, queries: list[tuple[InRecord, Query]], state: StateReader,
                    batch: Batch) -> list[_Scored]:
        """``model``'s embeddings and its users' scores for each query (a failure is that record's dead letter)."""
        fn = model.version
        partition_of = {q.user_id: r.partition for r, q in queries}
        users = self._caches[fn].get_many(list(partition_of),
                                          lambda ids: state.load_users(fn, {u: partition_of[u] for u in ids}))
        scored: list[_Scored] = []
        for r, q, emb, approximated, coarsened in self._embed(model, queries, batch):
            try:
                user = users[q.user_id]
                scores = user.predict_many(emb.astype(np.float64))
                if not all_finite(scores):
                    raise FloatingPointError("the user model scored a candidate NaN or infinite")
                scored.append(_Scored(r, q, emb, user, scores, serving.request_seed(self.seed, q.request_id), fn,
                                      approximated, coarsened=coarsened))
            except Exception as exc:
                batch.dead(r, "scoring_failed", f"{type(exc).__name__}: {exc}")
        return scored

    def _score(self, queries: list[tuple[InRecord, Query]], state: StateReader, batch: Batch, started: float,
               *, check_decided: bool = True) -> None:
        if check_decided:
            queries = self._reemit_decided(queries, state, batch)
        if not queries:
            return
        unique: list[tuple[InRecord, Query]] = []
        repeats: list[tuple[InRecord, Query]] = []
        seen: set[str] = set()
        for r, q in queries:
            if q.request_id in seen:  # the same request twice in one batch: one decision, given twice
                repeats.append((r, q))
            else:
                seen.add(q.request_id)
                unique.append((r, q))
        score_with = lambda model, qs: self._score_with(model, qs, state, batch)  # noqa: E731
        if self.cascade is not None and self.cascade.cheap.version != self.model.version:
            scored = self.cascade.score(unique, self.model, score_with)
            batch.counts["cascade_escalated"] += sum(s.escalated for s in scored)
            batch.counts["cascade_cheap"] += sum(not s.escalated for s in scored)
        else:
            scored = score_with(self.model, unique)
        plans = selection.plan_or_none(self, scored, state, batch)
        now = self._clock()
        for i, (s, d) in enumerate(zip(scored, self._decide(scored))):
            try:
                if isinstance(d, Exception):
                    raise d
                plan = plans[i] if plans else None
                if plan is not None:
                    d, fields = self.selection.finish(self, s, plan, d)
                decision, prediction = serving.records(
                    s.query, s.scores, d, seed=s.seed,
                    feature_net_version=plan.answering if plan else s.feature_net_version,
                    user_weights_version=s.user.n_obs, latency_ms=(time.perf_counter() - started) * 1000, now=now,
                    approximated=s.approximated, escalated=s.escalated, policy_snapshot=self.serving_snapshot,
                    coarsened=s.coarsened)
                if plan is not None:
                    decision = msgspec.structs.replace(decision, **fields)
                others = selection.Selection.others(plan, plan.answering) if plan else {}
                decisions = [decision]
                if s.query.k > 1:  # a slate: one decision per position (stream/engine/slates.py)
                    decisions, prediction = slates.slate_records(
                        decision, prediction, slates.fill(d, s.scores, s.query.k, seed=s.seed))
                # positions after the first keep no prediction: the first position's record re-emits it
                records = [JoinRecord(events.encode(x), events.encode(prediction) if x is decision else b"",
                                      s.embeddings, others) for x in decisions]
                packed = [record.pack() for record in records]
            except Exception as exc:
                batch.dead(s.record, "scoring_failed", f"{type(exc).__name__}: {exc}")
                continue
            key = s.query.user_id.encode()
            for x, record, blob in zip(decisions, records, packed):
                slot = slates.slot_key(x.request_id, x.position)
                batch.write.decisions[slot] = (blob, s.record.partition)
                if self.reward_wait_s > 0:
                    batch.write.pending[(s.record.partition, slot)] = x.ts + self.reward_wait_s
                batch.outputs.records.append(("decisions", key, record.decision_bytes))
            batch.outputs.predictions.append((key, records[0].prediction_bytes))
            batch.counts["predictions"] += 1
            if decision.coarsened:
                batch.counts["candidates_coarsened"] += len(decision.coarsened)
                batch.counts["queries_coarsened"] += 1
            batch.query_ts.append(s.query.ts)
        for r, q in repeats:
            packed, _ = batch.write.decisions.get(q.request_id, (None, None))
            if packed is None:
                batch.dead(r, "scoring_failed", f"the first record of request {q.request_id!r} in this batch failed")
            else:
                for j in range(q.k):
                    slot = batch.write.decisions.get(slates.slot_key(q.request_id, j))
                    if slot is not None:
                        self._reemit(q.user_id.encode(), JoinRecord.unpack(slot[0]), batch)

    def _decide(self, scored: list[_Scored]) -> list:
        """The policy's decision per request (or the exception it raised for that one).

        A policy that needs only scores decides the whole batch at once; if that fails,
        each request is decided alone so that only the one that broke it is lost.
        In apprentice mode every request gets its default action, propensity 1."""
        if self.serve_default:
            return [apprentice.default_decision(s.query) for s in scored]
        if self.policy.needs == {"scores"} and scored:
            try:
                return self.policy.decide_many([s.scores for s in scored], [s.seed for s in scored])
            except Exception:
                pass
        out = []
        for s in scored:
            try:
                ids = tuple(c.id for c in s.query.candidates)
                out.append(serving.decide(self.policy, serving.policy_candidates(s.scores, s.embeddings, ids, s.user),
                                          s.seed))
            except Exception as exc:
                out.append(exc)
        return out

    def _reemit_decided(self, queries: list[tuple[InRecord, Query]], state: StateReader,
                        batch: Batch) -> list[tuple[InRecord, Query]]:
        """Queries whose request was already decided get that decision again; the rest are returned.

        A batch read again after its Redis commit (crash, abort, rebalance) may have
        shown its predictions already: deciding again could show one item and log
        another, so the stored prediction and decision are re-emitted byte for byte.
        """
        slots = {slates.slot_key(q.request_id, j): r.partition for r, q in queries for j in range(q.k)}
        stored = state.load_decisions(slots)
        if not stored:
            return queries
        # Held feedback that the deciding batch applied is that batch's output: re-emitted with it.
        markers = {r: decode_marker(v)
                   for r, v in state.load_applied({k: p for k, p in slots.items() if k in stored}).items()}
        outboxes = _outboxes(state, [m for m in markers.values() if m.via == "held"])
        fresh = []
        for r, q in queries:
            if q.request_id not in stored:
                fresh.append((r, q))
                continue
            for j in range(q.k):  # a slate's positions were stored in one write: all or none
                slot = slates.slot_key(q.request_id, j)
                if slot in stored:
                    self._reemit(q.user_id.encode(), JoinRecord.unpack(stored[slot]), batch)
                marker = markers.pop(slot, None)  # pop: a repeat of the query re-emits it once
                if marker is not None and marker.via == "held":
                    self._reemit_outputs(q.user_id.encode(), marker, outboxes, batch)
                    batch.counts["held_redelivered"] += 1
        return fresh

    @staticmethod
    def _reemit_outputs(key: bytes, marker: Marker, outboxes: dict[tuple[int, str], bytes], batch: Batch) -> None:
        """Re-emit the outputs of an applied record read again: none once they committed (outbox deleted)."""
        produced = outputs(marker, outboxes)
        if not produced and outbox_ref(marker) is not None:
            batch.counts["redelivered_after_commit"] += 1
        batch.outputs.records.extend((topic, key, value) for topic, value in produced)

    @staticmethod
    def _reemit(key: bytes, record: JoinRecord, batch: Batch) -> None:
        """Re-emit a stored decision, and its prediction if it holds one (a slate's first position does)."""
        if record.prediction_bytes:
            batch.outputs.predictions.append((key, record.prediction_bytes))
            batch.counts["predictions_redelivered"] += 1
        batch.outputs.records.append(("decisions", key, record.decision_bytes))

    # --------------------------------------------------------------- feedback
    def _release_held(self, queries: list[tuple[InRecord, Query]], state: StateReader,
                      batch: Batch) -> list[tuple[InRecord, Feedback]]:
        """Feedback held for the requests this batch just decided, to be applied after the decision and
        removed in this batch's write. Entries past their deadline stay for the sweep to dead-letter."""
        decided = [(r.partition, slates.slot_key(q.request_id, j)) for r, q in queries
                   if q.request_id in batch.write.decisions and r.partition not in self._held_none
                   for j in range(q.k)]
        now = self._clock()
        out = []
        if decided and self.held_max > 0:  # 0: holding is off
            for (partition, rid), blob in state.load_held(decided).items():
                held = decode_held(blob)
                if held.deadline <= now:
                    continue
                batch.write.released.add((partition, rid))
                record = held.record()
                try:
                    out.append((record, events.decode_feedback(record.value)))
                except Exception as exc:  # it decoded when it was held; a newer decoder may disagree
                    batch.dead(record, "undecodable", f"{type(exc).__name__}: {exc}", held=True)
        return out

    def _hold(self, r: InRecord, fb: Feedback, existing: dict[tuple[int, str], Held], held_counts: dict[int, int],
              state: StateReader, now: float, batch: Batch) -> None:
        """Hold feedback whose decision is not known (yet), if the partition has room."""
        key = (r.partition, _slot(fb))
        source = (r.topic, r.partition, r.offset)
        prior = existing.get(key)
        if prior is not None:
            if tuple(prior.source) == source:  # this very record, read again: it is held already
                batch.counts["feedback_held_redelivered"] += 1
            else:
                batch.dead(r, "duplicate_feedback",
                           f"request {fb.request_id!r} already has feedback held from {list(prior.source)}")
            return
        if r.partition not in held_counts:
            held_counts[r.partition] = state.held_count(r.partition)
        if held_counts[r.partition] >= self.held_max:
            batch.dead(r, "unknown_request", f"no decision for request {fb.request_id!r}, and partition "
                                             f"{r.partition} already holds {self.held_max} early feedbacks")
            return
        held = Held(source, r.key, r.value, now + self.join_window_s)
        existing[key] = held
        held_counts[r.partition] += 1
        batch.write.held[key] = (_held_encoder.encode(held), held.deadline)
        batch.counts["feedback_held"] += 1

    @staticmethod
    def _sum(r: InRecord, fb: Feedback, decision: DecisionHead, sums: RewardSums, batch: Batch,
             from_held: bool) -> tuple[Feedback, int, list[str]] | None:
        """``reward_aggregation=sum``: a real reward goes into its request's accumulator (None: nothing to
        learn now); the default event that ends the wait closes it: ``(the feedback to apply, its item's
        index, the records summed)``, the sum if any came, else the default reward itself."""
        key = (r.partition, _slot(fb))
        if not fb.default:
            src = source_field(r.topic, r.partition, r.offset)
            status, blob = sums.add(key, src, fb.item_id, fb.reward)
            if status == "added":
                batch.write.reward_sums.setdefault(key, {})[src] = blob
                batch.counts["held_summed" if from_held else "feedback_summed"] += 1
            elif status == "redelivered":
                if not from_held:  # a held record was counted when it was held
                    batch.counts["feedback_redelivered"] += 1
            else:
                batch.dead(r, "duplicate_feedback",
                           f"request {fb.request_id!r} already has rewards for item {sums.item_of(key)!r}: "
                           "reward_aggregation=sum adds up the rewards of one item", held=from_held)
            return None
        batch.write.sums_closed.add(key)
        closed = sums.close(key)
        if closed is None:  # no reward came: the default reward
            return fb, [c.id for c in decision.candidates].index(fb.item_id), []
        item, total, sources = closed
        summed = msgspec.structs.replace(fb, item_id=item, reward=total, default=False)
        return summed, [c.id for c in decision.candidates].index(item), sources

    def _population(self, fn: str, partition: int, cache: UserCache, state: StateReader,
                    batch: Batch) -> PopulationModel:
        """This batch's copy of a partition's statistics: from this batch, memory, Redis, or empty."""
        key = (fn, partition)
        pop = batch.populations.get(key)
        if pop is None:
            current = self._populations.get(key)
            if current is None:
                blob = state.load_population(fn, partition)
                pop = PopulationModel.from_bytes(blob) if blob else cache.new_population()
            else:
                pop = current.copy()  # the batch learns into its own copy: memory moves only on commit
            batch.populations[key] = pop
        return pop

    def _learn(self, feedback: list[tuple[InRecord, Feedback]], state: StateReader, batch: Batch,
               n_held: int = 0, *, fresh: Mapping[str, bytes]) -> None:
        """The first ``n_held`` feedbacks were held until this batch decided their requests. ``fresh``: join
        records that memory answers for (:meth:`_fresh_joins`), with no applied-marker in the store."""
        rids = {_slot(f): r.partition for r, f in feedback}
        made_here = batch.write.decisions
        stored = state.load_decisions({r: p for r, p in rids.items() if r not in made_here and r not in fresh})
        stored.update({r: fresh[r] for r in rids if r in fresh})
        stored.update({r: made_here[r][0] for r in rids if r in made_here})
        markers: dict[str, Marker] = {r: decode_marker(v) for r, v in
                                      state.load_applied({r: p for r, p in rids.items() if r not in fresh}).items()}
        sources = {(r.topic, r.partition, r.offset) for r, _ in feedback}
        outboxes = _outboxes(state, [m for m in markers.values() if m.source in sources])  # read again: re-emit
        unknown = [(r.partition, _slot(fb)) for r, fb in feedback[n_held:]
                   if _slot(fb) not in stored and _slot(fb) not in markers]
        existing = {k: decode_held(blob) for k, blob in state.load_held(unknown).items()} if unknown else {}
        held_counts: dict[int, int] = {}
        now = self._clock()
        sums = (RewardSums.load(state, [(r.partition, _slot(fb)) for r, fb in feedback])
                if self.reward_aggregation == "sum" else None)
        for i, (r, fb) in enumerate(feedback):
            from_held = i < n_held
            source = Source(r.topic, r.partition, r.offset)
            slot = _slot(fb)
            data = stored.get(slot)
            joined = JoinRecord.unpack(data) if data is not None else None
            decision = joined.head if joined is not None else None  # the whole decision only where needed
            emb = joined.embeddings if joined is not None else None
            marker = markers.get(slot)
            if marker is not None and marker.via == "sum" and source_field(*source.to_list()) in marker.summed:
                batch.counts["feedback_redelivered"] += 1  # summed: the record that closed the sum owns the outputs
                continue
            verdict = classify(fb, source, decision,
                               None if marker is None else {"source": list(marker.source), "via": marker.via},
                               join_window_s=self.join_window_s, reward_wait_s=self.reward_wait_s)
            key = fb.user_id.encode()
            if verdict.action == "dead_letter":
                if verdict.reason == "unknown_request" and not from_held and not fb.default:
                    self._hold(r, fb, existing, held_counts, state, now, batch)
                else:
                    batch.dead(r, verdict.reason, verdict.detail, held=from_held)
                continue
            if verdict.action == "redelivered":
                if marker.via != "held":  # held: the deciding batch published (and re-emits) its outputs
                    self._reemit_outputs(key, marker, outboxes, batch)
                batch.counts["feedback_redelivered"] += 1
                continue
            if verdict.action == "superseded":
                batch.counts["default_reward_superseded"] += 1
                continue
            item_index, summed = verdict.item_index, None
            if sums is not None:
                closing = self._sum(r, fb, decision, sums, batch, from_held)
                if closing is None:
                    continue
                fb, item_index, summed = closing
            # The state this feedback learns into, read first and outside the try: a failed read is an
            # outage (it propagates, the shell rewinds the batch), never this record's fault.
            model = self._user_model(decision.feature_net_version, fb.user_id, emb.shape[1], r.partition, state, batch)
            self._population(decision.feature_net_version, r.partition,
                             self._cache(decision.feature_net_version, emb.shape[1]), state, batch)
            try:
                produced = self._apply(fb, joined, item_index, r.partition, now, model, batch)
            except Exception as exc:
                batch.dead(r, "learning_failed", f"{type(exc).__name__}: {exc}", held=from_held)
                continue
            if self.selection is not None and decision.version_scores:
                selection.learn_or_count(self, fb, joined, verdict.item_index, r.partition, state, batch)
            marker = batch.mark(source, produced, "held" if from_held else "default" if fb.default else
                                "sum" if summed else "", summed or [])
            markers[slot] = marker  # a second record in this same batch is a duplicate
            batch.write.applied[slot] = (encode_marker(marker), r.partition)
            for topic, value in produced:
                batch.outputs.records.append((topic, key, value))
            batch.counts["held_applied" if from_held else "feedback_applied"] += 1
            if fb.default:
                batch.counts["default_rewards"] += 1
            if summed:
                batch.counts["reward_sums_applied"] += 1
            if self.reward_wait_s > 0:  # its reward is in: the timer forgets it
                waiting = (r.partition, slot)
                batch.write.pending.pop(waiting, None)
                batch.write.rewarded.add(waiting)
        for p, (outbox_id, box) in batch.outbox.items():  # written with the markers that point into it
            batch.write.outboxes[(p, outbox_id)] = encode_outbox(box)
        for k, model in batch.learned.items():  # each user and partition once, however many feedbacks
            batch.write.users[k] = (model.to_bytes(), batch.partition_of[k])
        for k, rows in batch.population_rows.items():  # one update per partition: x and rewards are finite
            batch.populations[k].learn_many(np.array([x for x, _ in rows]), np.array([y for _, y in rows]))
        for k in batch.population_rows:  # loaded but learned nothing (its feedback failed): unchanged
            batch.write.population[k] = batch.populations[k].to_bytes()

    def _user_model(self, fn: str, user: str, dim: int, partition: int, state: StateReader,
                    batch: Batch) -> UserModel:
        """The user's model in ``fn``: as this batch left it, else from memory, else from the store."""
        model = batch.learned.get((fn, user))
        if model is None:
            model = self._cache(fn, dim).get_many(
                [user], lambda ids: state.load_users(fn, dict.fromkeys(ids, partition)))[user]
        return model

    def _apply(self, fb: Feedback, joined: JoinRecord, item_index: int, partition: int, now: float, model: UserModel,
               batch: Batch) -> list[tuple[str, bytes]]:
        """Learn one joined feedback into ``model`` (:meth:`_user_model`; the partition's statistics are
        this batch's already). The user's model learns in place (the shell commits or forgets every
        batch); if this feedback fails, the model is as it was before it. No state is read here.
        ``joined``: the decision's join record; the outcome carries its decision as published."""
        decision, emb = joined.head, joined.embeddings
        fn = decision.feature_net_version  # the version that made the decision, not the live one
        key = (fn, fb.user_id)
        x = emb[item_index].astype(np.float64)
        if not all_finite(x):
            raise FloatingPointError("the decision's embedding of this item is not finite")
        outcome = events.encode_outcome(joined.decision_bytes, fb.item_id, fb.reward, fb.ts, default=fb.default)
        # Puts the model back as it was if learning fails: nothing half-learned stays in memory.
        # Nothing after it can fail (the outcome is built, err and delta_norm are finite).
        err, delta_norm = model.learn_one_checked(x, fb.reward)
        update = ModelUpdate(
            kind="user_weights", feature_net_version=fn, version=model.n_obs, user_id=fb.user_id,
            request_id=fb.request_id, summary={"n_obs": model.n_obs, "delta_norm": delta_norm, "error": err},
            ts=now,
        )
        produced = [("model-updates", events.encode(update)), ("outcomes", outcome)]
        batch.population_rows.setdefault((fn, partition), []).append((x, fb.reward))
        batch.learned[key] = model
        batch.partition_of[key] = partition
        if self.policy_learns and hasattr(self.policy, "learn") and item_index == decision.chosen_index:
            self._policy_learn(joined.decision, emb, fb.reward, batch)
        return produced

    def _policy_learn(self, decision: events.Decision, emb: np.ndarray, reward: float, batch: Batch) -> None:
        try:
            serving.learn_policy(self.policy, decision, emb, reward)
            batch.counts["policy_learned"] += 1
        except Exception as exc:  # the user's update stands; the shared policy skips this example
            batch.counts["policy_learn_failed"] += 1
            log.warning("policy %s could not learn from request %s: %s", self.policy.name, decision.request_id, exc)

