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

import hashlib
import time

import numpy as np

from bandits import Candidates, make_policy
from features.model import FeatureModel
from learners import PopulationModel, load_user_model
from stream import events
from stream.config import Settings
from stream.events import Feedback, ModelUpdate, Prediction, Query, RankedItem
from stream.joins import pack_decision, unpack_decision
from stream.registry import Registry
from stream.store import RedisStore
from stream.users import UserCache


def load_live_model(settings: Settings) -> FeatureModel:
    """The feature net the registry marks live for ``settings.topic_prefix`` (as the worker loads it)."""
    store = RedisStore(settings.redis_url, settings.topic_prefix, decision_ttl_s=1)
    registry = Registry(store.client, settings.topic_prefix, settings.model_dir)
    version = registry.live()
    if version is None:
        raise SystemExit(f"no live feature net under prefix {settings.topic_prefix!r}")
    return registry.load(version)


class PerEventScorer:
    def __init__(self, settings: Settings, model: FeatureModel):
        self.s = settings
        self.model = model
        self.store = RedisStore(settings.redis_url, settings.topic_prefix, decision_ttl_s=2 * settings.join_window_s)
        self.policy = make_policy(settings.policy)
        base = None
        if model.user_weights:
            W = np.stack([w for w, _ in model.user_weights.values()])
            b = np.array([b for _, b in model.user_weights.values()])
            base = PopulationModel.from_user_weights(W, b).mean()
        # Used only for fresh(): the prior of a user Redis has never seen. Nothing is cached.
        self._fresh = UserCache(kind=settings.learner, dim=model.output_dim, capacity=1, base_prior=base,
                                offline=model.user_weights)
        self._ttl = max(1, int(2 * settings.join_window_s))

    def _user(self, user_id: str):
        fn = self.model.version
        raw = self.store.client.get(self.store.key("user", fn, user_id))  # one round trip per event
        return load_user_model(raw) if raw is not None else self._fresh.fresh(user_id)

    def _seed(self, request_id: str) -> int:
        digest = hashlib.blake2b(f"{self.s.seed}:{request_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def predict(self, q: Query) -> tuple[Prediction, events.Decision]:
        t0 = time.perf_counter()
        fm = self.model
        model = self._user(q.user_id)
        emb = fm.embed(q.context, [c.to_dict() for c in q.candidates])  # one forward pass per query
        scores = model.predict_many(emb.astype(np.float64))
        mean = cov = None
        x = emb
        if hasattr(model, "posterior"):
            mean, cov = model.posterior()
            x = np.hstack([emb, np.ones((emb.shape[0], 1), dtype=emb.dtype)])
        cands = Candidates(scores=scores, embeddings=x, posterior_mean=mean, posterior_cov=cov,
                           action_ids=tuple(c.id for c in q.candidates))
        seed = self._seed(q.request_id)
        d = self.policy.decide(cands, np.random.default_rng(seed))
        order = [d.chosen] + [i for i in np.argsort(-scores, kind="stable") if i != d.chosen]
        decision = events.Decision(
            request_id=q.request_id, user_id=q.user_id, ts=q.ts, context=q.context, candidates=q.candidates,
            scores=tuple(float(s) for s in scores), pmf=tuple(float(p) for p in d.pmf),
            chosen_index=int(d.chosen), propensity=float(d.propensity), policy=d.policy,
            policy_version=d.policy_version, seed=seed, feature_net_version=fm.version,
            user_weights_version=model.n_obs,
        )
        self.store.client.set(self.store.key("decision", q.request_id), pack_decision(decision, emb), ex=self._ttl)
        prediction = Prediction(
            request_id=q.request_id, user_id=q.user_id,
            ranked=tuple(RankedItem(q.candidates[i].id, float(scores[i]), float(d.pmf[i])) for i in order),
            chosen=tuple(q.candidates[i].id for i in order[: q.k]),
            feature_net_version=fm.version, user_weights_version=model.n_obs, policy=d.policy_version,
            latency_ms=(time.perf_counter() - t0) * 1000, ts=time.time(),
        )
        return prediction, decision

    def learn(self, fb: Feedback) -> ModelUpdate | None:
        """Apply one feedback (no idempotence marker: a redelivery applies twice). None if unjoinable."""
        record = self.store.client.get(self.store.key("decision", fb.request_id))
        if record is None:
            return None
        decision, emb = unpack_decision(record)
        ids = [c.id for c in decision.candidates]
        if fb.item_id not in ids or decision.user_id != fb.user_id:
            return None
        fn = decision.feature_net_version
        model = self._user(fb.user_id)
        x = emb[ids.index(fb.item_id)].astype(np.float64)
        err = fb.reward - model.predict_one(x)
        model.learn_one(x, fb.reward)
        self.store.client.set(self.store.key("user", fn, fb.user_id), model.to_bytes())
        return ModelUpdate(kind="user_weights", feature_net_version=fn, version=model.n_obs, user_id=fb.user_id,
                           request_id=fb.request_id, summary={"n_obs": model.n_obs, "error": err}, ts=time.time())
