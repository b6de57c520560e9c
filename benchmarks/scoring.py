"""Per-event hybrid scoring for the baselines: the worker's model and policy, none of its batching or cache.

The naive Kafka pipeline and the HTTP "model in a container" both call
:class:`PerEventScorer`: one feature-net forward pass per query, a Redis
round trip for the user's state on every event, the decision record written
to Redis for the feedback join, and the same learner, prior and exploration
policy as :class:`stream.worker.Worker`. What it leaves out is deliberate
(that is what the baselines measure): no batching, no in-process user cache,
no idempotence markers, no fencing.
"""

from __future__ import annotations

import time

import numpy as np

from bandits import make_policy
from features.model import FeatureModel
from learners import load_user_model
from stream import events
from stream.config import Settings
from stream.engine import BatchWrite, serving
from stream.engine.users import UserCache
from stream.events import Feedback, ModelUpdate, Prediction, Query
from stream.engine.joins import JoinRecord
from stream.store import open_registry
from stream.store import RedisStore


def load_live_model(settings: Settings) -> FeatureModel:
    """The feature net the registry marks live for ``settings.topic_prefix`` (as the worker loads it)."""
    registry = open_registry(settings)
    version = registry.live()
    if version is None:
        raise SystemExit(f"no live feature net under prefix {settings.topic_prefix!r}")
    return registry.load(version)


class PerEventScorer:
    def __init__(self, settings: Settings, model: FeatureModel):
        self.s = settings
        self.model = model
        self.store = RedisStore.from_settings(settings)
        self.policy = make_policy(settings.policy)
        # Used only for fresh(): the prior of a user Redis has never seen. Nothing is cached.
        self._fresh = UserCache(kind=settings.learner, dim=model.output_dim, capacity=1,
                                base_prior=serving.base_prior(model), offline=model.user_weights)

    def _user(self, fn: str, user_id: str):
        raw = self.store.load_users(fn, {user_id: 0}).get(user_id)  # one round trip per event; all in partition 0
        return load_user_model(raw) if raw is not None else self._fresh.fresh(user_id)

    def _write(self, write: BatchWrite) -> None:
        self.store.commit(write, group=self.s.group, epochs={})  # unfenced: one commit-script round trip

    def predict(self, q: Query) -> tuple[Prediction, events.Decision]:
        t0 = time.perf_counter()
        fm = self.model
        model = self._user(fm.version, q.user_id)
        emb = fm.embed(q.context, [c.to_dict() for c in q.candidates])  # one forward pass per query
        scores = model.predict_many(emb.astype(np.float64))
        seed = serving.request_seed(self.s.seed, q.request_id)
        ids = tuple(c.id for c in q.candidates)
        d = serving.decide(self.policy, serving.policy_candidates(scores, emb, ids, model), seed)
        decision, prediction = serving.records(
            q, scores, d, seed=seed, feature_net_version=fm.version, user_weights_version=model.n_obs,
            latency_ms=(time.perf_counter() - t0) * 1000, now=time.time())
        self._write(BatchWrite(decision_ttl_s=2 * self.s.join_window_s,
                               decisions={q.request_id: (JoinRecord(events.encode(decision), events.encode(prediction), emb).pack(), 0)}))
        return prediction, decision

    def learn(self, fb: Feedback) -> ModelUpdate | None:
        """Apply one feedback (no idempotence marker: a redelivery applies twice). None if unjoinable."""
        record = self.store.load_decisions({fb.request_id: 0}).get(fb.request_id)
        if record is None:
            return None
        joined = JoinRecord.unpack(record)
        decision, emb = joined.decision, joined.embeddings
        ids = [c.id for c in decision.candidates]
        if fb.item_id not in ids or decision.user_id != fb.user_id:
            return None
        fn = decision.feature_net_version
        model = self._user(fn, fb.user_id)
        x = emb[ids.index(fb.item_id)].astype(np.float64)
        err = fb.reward - model.predict_one(x)
        model.learn_one(x, fb.reward)
        self._write(BatchWrite(users={(fn, fb.user_id): (model.to_bytes(), 0)}))
        return ModelUpdate(kind="user_weights", feature_net_version=fn, version=model.n_obs, user_id=fb.user_id,
                           request_id=fb.request_id, summary={"n_obs": model.n_obs, "error": err}, ts=time.time())
