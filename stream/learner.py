"""The learner role: one process trains the learning policy (VW) for every worker, from the outcomes topic.

With ``policy_learner=role`` workers decide with the policy but do not train it;
``eddy learner`` does (the Decision Service's split: decision makers score with
the latest model, one learner trains from the joined outcomes and publishes).
Its loop:

1. read the outcomes topic, every partition, ``read_committed`` (aborted
   outputs of a worker's failed span are never seen; the topic holds each
   joined outcome once);
2. for each outcome whose reward is for the chosen item, rebuild the decision's
   example (the candidates' embeddings from the feature net that made the
   decision, loaded from the registry; scores, candidate ids, chosen index and
   propensity from the logged decision) and learn it;
3. at most every ``learner_snapshot_s`` while it learns (and when it stops):
   in ONE atomic Redis write, fenced by the learner's epoch, write the
   snapshot, its version (+1), the next input offset of every partition and
   the counts; then announce the version on the model-updates topic.

Exactly once: the snapshot and the offsets it covers change together or not
at all. On start (after a crash, SIGKILL included) the learner loads both from
the same commit and reads on from those offsets, so every outcome before them
is in the snapshot once and every outcome after them is learned once more
from a model that has not seen it. Its memory beyond the last commit is lost
and relearned. A second learner of the same policy bumps the epoch; the first
then fails its next commit and exits (docs/design.md, "One learner for many
workers").
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections import Counter

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from bandits import Policy, make_policy
from features.model import FeatureModel
from stream import events, faults
from stream.config import ConfigError, Settings
from stream.engine import serving
from stream.kafka_io import ensure_topics, partition_count, produce, quiet_logging
from stream.store import RedisStore, StoreUnavailable

log = logging.getLogger("eddy.learner")

COUNTS = ("outcomes", "learned", "not_chosen", "undecodable", "no_feature_net", "learn_failed")
"""The learner's counters, durable with its snapshot: ``outcomes`` = the sum of the others."""


class LearnerFenced(SystemExit):
    pass


class PolicyLearner:
    def __init__(self, settings: Settings):
        self.s = settings
        self.store = RedisStore.from_settings(settings)
        self.registry = self.store.registry(settings.model_dir)
        policy = make_policy(settings.policy)
        if not (hasattr(policy, "learn") and hasattr(policy, "to_bytes")):
            raise ConfigError(f"policy must be a learning policy (vw:...) for eddy learner, got {settings.policy!r}",
                              setting="policy")
        self.name = policy.name
        self.epoch = self.store.claim_learner(settings.group, self.name)
        saved = self.store.load_learner(settings.group, self.name)
        self.version = int(saved.get("version", 0))
        self.offsets: dict[int, int] = {int(p): o for p, o in json.loads(saved.get("offsets", b"{}")).items()}
        self.counts: Counter[str] = Counter(json.loads(saved.get("counts", b"{}")))
        self.policy: Policy = type(policy).from_bytes(saved["snapshot"]) if "snapshot" in saved else policy
        self._models: dict[str, FeatureModel | None] = {}
        self._dirty = False
        self._stopping = False
        log.info("learner of policy %s, epoch %d, resuming at snapshot %d (%d examples learned), offsets %s",
                 self.name, self.epoch, self.version, self.counts["learned"], self.offsets or "from the beginning")

    def stop(self, *_: object) -> None:
        self._stopping = True

    # ------------------------------------------------------------------ loop
    def run(self, *, max_seconds: float | None = None) -> Counter[str]:
        ensure_topics(self.s)
        topic = self.s.topic("outcomes")
        consumer = Consumer(self.s.consumer_config(group=f"{self.s.group}-learner", **quiet_logging()))
        consumer.assign([TopicPartition(topic, p, self.offsets.get(p, OFFSET_BEGINNING))
                         for p in range(partition_count(self.s, topic))])
        announcer = Producer(self.s.producer_config(**quiet_logging()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self.stop)
            except ValueError:  # not the main thread
                pass
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        next_publish = time.monotonic() + self.s.learner_snapshot_s
        try:
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                msgs = [m for m in consumer.consume(500, 0.1) if not m.error()]
                if msgs:
                    self.learn(msgs)
                if self._dirty and time.monotonic() >= next_publish:
                    self._try_publish(announcer)
                    next_publish = time.monotonic() + self.s.learner_snapshot_s
            stop_by = time.monotonic() + self.s.outage_give_up_s  # stopping: the last commit, waiting out an outage
            while self._dirty and not self._try_publish(announcer) and time.monotonic() < stop_by:
                time.sleep(1.0)
        finally:
            consumer.close()
            announcer.flush(10)
        return self.counts

    # ----------------------------------------------------------------- learn
    def learn(self, msgs: list[Message]) -> None:
        """Learn a batch of outcome records; the next offsets move with them (committed by :meth:`publish`)."""
        chosen: list[events.Outcome] = []
        for m in msgs:
            self.offsets[m.partition()] = m.offset() + 1
            self.counts["outcomes"] += 1
            try:
                outcome = events.decode_outcome(m.value())
            except events.EventError as exc:
                self.counts["undecodable"] += 1
                log.warning("outcome at %s/%d/%d does not decode: %s", m.topic(), m.partition(), m.offset(), exc)
                continue
            if outcome.item_id != outcome.decision.chosen_item:  # as in the worker: only the chosen item's reward
                self.counts["not_chosen"] += 1
            else:
                chosen.append(outcome)
        self._dirty = True
        for outcome, emb in zip(chosen, self._embeddings(chosen)):
            if emb is None:
                self.counts["no_feature_net"] += 1
                continue
            try:
                serving.learn_policy(self.policy, outcome.decision, emb, outcome.reward)
                self.counts["learned"] += 1
            except Exception as exc:  # one example the policy refuses must not stop the learner
                self.counts["learn_failed"] += 1
                log.warning("policy %s could not learn request %s: %s", self.name, outcome.decision.request_id, exc)

    def _embeddings(self, outcomes: list[events.Outcome]) -> list[np.ndarray | None]:
        """Each decision's candidate embeddings, from the feature net version that made it (one pass per version)."""
        out: list[np.ndarray | None] = [None] * len(outcomes)
        by_version: dict[str, list[int]] = {}
        for i, o in enumerate(outcomes):
            by_version.setdefault(o.decision.feature_net_version, []).append(i)
        for version, idx in by_version.items():
            model = self._model(version)
            if model is None:
                continue
            for i, emb in zip(idx, serving.decision_embeddings(model, [outcomes[i].decision for i in idx])):
                out[i] = emb
        return out

    def _model(self, version: str) -> FeatureModel | None:
        if version not in self._models:
            try:
                self._models[version] = self.registry.load(version)
            except Exception as exc:  # a removed artifact: its decisions cannot be rebuilt, the rest go on
                log.error("feature net %s cannot be loaded (%s); its outcomes are skipped", version, exc)
                self._models[version] = None
        return self._models[version]

    # --------------------------------------------------------------- publish
    def _try_publish(self, announcer: Producer) -> bool:
        """:meth:`publish`, or False while Redis does not answer: learning and offsets stay in memory and go
        out together with the next commit that succeeds (exactly once either way)."""
        try:
            self.publish(announcer)
        except StoreUnavailable as exc:
            log.warning("could not publish the policy snapshot (%s); retrying", exc)
            return False
        return True

    def publish(self, announcer: Producer) -> None:
        """Snapshot + version + offsets + counts in one fenced atomic write, then the model-updates record."""
        faults.at("crash_before_learner_commit", applies_feedback=self.counts["learned"] > 0)
        version = self.version + 1
        fields = {"version": version, "snapshot": self.policy.to_bytes(), "n_learned": self.counts["learned"],
                  "offsets": json.dumps({str(p): o for p, o in sorted(self.offsets.items())}),
                  "counts": json.dumps(dict(self.counts), sort_keys=True)}
        if not self.store.commit_learner(self.s.group, self.name, self.epoch, fields):
            raise LearnerFenced(f"eddy learner: another learner of policy {self.name!r} (group {self.s.group!r}) "
                                "took over; this one stops (run one learner per policy)")
        self.version = version
        self._dirty = False
        update = events.ModelUpdate(kind="policy", feature_net_version="", version=version, user_id=None,
                                    request_id=None, summary={"n_learned": float(self.counts["learned"])},
                                    ts=time.time())
        produce(announcer, self.s.topic("model-updates"), events.encode(update), key=self.name.encode())
        announcer.poll(0)
        log.info("published policy %s snapshot %d (%d examples)", self.name, version, self.counts["learned"])
