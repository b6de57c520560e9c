"""How one query is served, written once: the worker's engine, replay's feature-net
target, and the benchmarks' per-event baselines all call these functions.

* :func:`request_seed`: the seed of a request's exploration draw, so the draw
  can be repeated from the log;
* :func:`base_prior`: where a user the feature net never saw starts
  (Velox: the average of the offline user weights);
* :func:`policy_candidates`: what a policy sees (scores, and embeddings and
  the posterior when the user model has one);
* :func:`decide` and :func:`records`: the policy's draw, then the
  counterfactual log record and the prediction built from it.
"""

from __future__ import annotations

import numpy as np

from bandits import Candidates, Policy, decision_seed
from bandits.base import Decision as PolicyDecision
from features.model import FeatureModel
from learners import UserModel
from stream.events import Decision, Prediction, Query, RankedItem


def request_seed(base_seed: int, request_id: str) -> int:
    """The seed of ``request_id``'s draw under a deployment's ``base_seed`` (63 bits, stable)."""
    return decision_seed(f"{base_seed}:{request_id}")


def base_prior(model: FeatureModel) -> np.ndarray | None:
    """``[w..., b]`` a new user starts from: the offline users' mean weights, or None without any."""
    if not model.user_weights:
        return None
    w, b = model.mean_user_weights()
    return np.append(w.astype(np.float64), float(b))


def policy_candidates(scores: np.ndarray, embeddings: np.ndarray, action_ids: tuple[str, ...],
                      user: UserModel | None = None) -> Candidates:
    """The policy's view of one request. A Bayesian user model adds its posterior
    (over ``[w, b]``, so the embeddings gain a constant column for the bias)."""
    mean = cov = None
    x = embeddings
    if user is not None and hasattr(user, "posterior"):
        mean, cov = user.posterior()
        x = np.hstack([embeddings, np.ones((embeddings.shape[0], 1), dtype=embeddings.dtype)])
    return Candidates(scores=np.asarray(scores, dtype=float), embeddings=x,
                      posterior_mean=mean, posterior_cov=cov, action_ids=action_ids)


def learn_policy(policy: Policy, decision: Decision, embeddings: np.ndarray, reward: float) -> None:
    """A learning policy learns one logged decision and its chosen item's reward (the worker, or the learner
    role from the outcomes topic: the same example either way)."""
    candidates = policy_candidates(np.asarray(decision.scores), embeddings, tuple(c.id for c in decision.candidates))
    policy.learn(candidates, decision.chosen_index, reward, decision.propensity)


def decision_embeddings(model: FeatureModel, decisions: list[Decision]) -> list[np.ndarray]:
    """The candidates' embeddings of logged decisions, rebuilt with ``model`` (the feature net that made them,
    ``feature_net_version``) in one forward pass: what the learner role learns from, as the worker learns from
    the join record's copy."""
    inputs = [(d.context or {}, [c.to_dict() for c in d.candidates]) for d in decisions]
    return [np.asarray(e, dtype=np.float32) for e in model.embed_many(inputs)]


def decide(policy: Policy, candidates: Candidates, seed: int) -> PolicyDecision:
    return policy.decide(candidates, np.random.default_rng(seed))


def records(query: Query, scores: np.ndarray, d: PolicyDecision, *, seed: int, feature_net_version: str,
            user_weights_version: int, latency_ms: float, now: float, approximated: tuple[int, ...] = (),
            escalated: bool = False, policy_snapshot: int | None = None,
            coarsened: tuple[int, ...] = ()) -> tuple[Decision, Prediction]:
    """The decision log record and the prediction for ``query``: the chosen item first, then by score.

    ``approximated``: indices of the candidates scored with the expectation of their features (anytime);
    ``escalated``: a cascade's cheap model was unsure and ``feature_net_version`` answered;
    ``policy_snapshot``: the learner role's snapshot version of the policy, when it has one;
    ``coarsened``: indices of the candidates whose features came from a cache entry computed for another
    input (LSH coarsening)."""
    chosen = int(d.chosen)
    order = np.argsort(-scores, kind="stable").tolist()  # tolist: Python ints and floats in one C call each
    order.remove(chosen)
    order.insert(0, chosen)
    pmf = np.asarray(d.pmf, dtype=np.float64).tolist()
    score_list = np.asarray(scores, dtype=np.float64).tolist()
    decision = Decision(
        request_id=query.request_id, user_id=query.user_id, ts=query.ts, context=query.context,
        candidates=query.candidates, scores=tuple(score_list), pmf=tuple(pmf), chosen_index=chosen,
        propensity=float(d.propensity), policy=d.policy, policy_version=d.policy_version, seed=seed,
        feature_net_version=feature_net_version, user_weights_version=user_weights_version,
        approximated=tuple(approximated), escalated=escalated, policy_snapshot=policy_snapshot,
        coarsened=tuple(coarsened),
    )
    prediction = Prediction(
        request_id=query.request_id, user_id=query.user_id,
        ranked=tuple(RankedItem(query.candidates[i].id, score_list[i], pmf[i]) for i in order),
        chosen=tuple(query.candidates[i].id for i in order[: query.k]),
        feature_net_version=feature_net_version, user_weights_version=user_weights_version,
        policy=d.policy_version, latency_ms=latency_ms, ts=now,
        approximated=tuple(query.candidates[i].id for i in approximated),
        coarsened=tuple(query.candidates[i].id for i in coarsened),
    )
    return decision, prediction
