"""Target ``fn=<version>:<spec>``: a policy over scores recomputed with a feature net and per-user weights.

For every logged decision the candidates are embedded again with feature net
``<version>`` (from the registry), and scored ``w_u . f(x, item) + b_u`` with
user u's weights as they are in Redis **now**
(``<prefix>user:<version>:<user_id>``), not as they were when the decision
was made: replay answers "what would this policy do with today's weights on
yesterday's traffic". Users with no stored state start where the worker would
start them: the feature net's offline weights for that user, else the
population prior (the stored population statistics, else the offline
average). A policy that needs more than scores (``Policy.needs``: Thompson
sampling, UCB, VW) gets the embeddings and, for Bayesian user models, the
posterior, as in the worker.
"""

from __future__ import annotations

import numpy as np

from bandits import Candidates, make_policy
from stream.config import Settings
from stream.replay.dataset import BanditLog
from stream.replay.errors import ReplayError
from stream.replay.targets import policy_distribution

__all__ = ["fn_distribution", "embed_log"]


def embed_log(model, log: BanditLog, *, batch: int = 512) -> np.ndarray:
    """(n, K, d) float64 embeddings of every round's candidates; padded rows zero."""
    chunks = []
    rounds = log.rounds
    for start in range(0, len(rounds), batch):
        part = rounds[start:start + batch]
        chunks.extend(model.embed_many([(r.decision.context, [c.to_dict() for c in r.decision.candidates])
                                        for r in part]))
    emb = np.zeros((log.n_rounds, log.n_actions, model.output_dim))
    emb[log.mask] = np.concatenate(chunks, axis=0)
    return emb


def fn_distribution(settings: Settings, version: str, spec: str, log: BanditLog) -> tuple[np.ndarray, list[str]]:
    """(n, K) pmf of ``spec`` over scores from feature net ``version`` and current user weights; and notes."""
    from stream.store import StoreUnavailable

    try:
        return _fn_distribution(settings, version, spec, log)
    except StoreUnavailable as exc:
        raise ReplayError(f"--policy fn={version}:{spec} needs Redis at {settings.redis_url}: {exc}") from None


def _fn_distribution(settings: Settings, version: str, spec: str, log: BanditLog) -> tuple[np.ndarray, list[str]]:
    from stream.engine import serving
    from stream.engine.users import UserCache, merged_population
    from stream.store import RedisStore

    store = RedisStore.from_settings(settings)
    try:
        model = store.registry(settings.model_dir).load(version, device="cpu")
    except FileNotFoundError as exc:
        raise ReplayError(f"--policy fn={version}: artifact missing ({exc})") from None
    base = serving.base_prior(model)
    users = sorted(set(log.users.tolist()))
    cache = UserCache(kind=settings.learner, dim=model.output_dim, capacity=len(users) + 1, base_prior=base,
                      offline=model.user_weights)
    pop = merged_population(store.populations(version, settings.partitions))
    if pop is not None:
        cache.set_prior(pop.mean())
    stored = store.load_users(version, store.partitions_of_users(version, users, settings.partitions))
    models = cache.get_many(users, lambda ids: {u: stored[u] for u in ids if u in stored})
    row = {u: j for j, u in enumerate(users)}
    weights = np.stack([np.atleast_1d(models[u].weights[0]) for u in users])
    bias = np.array([models[u].weights[1] for u in users])
    user_idx = np.fromiter((row[u] for u in log.users.tolist()), dtype=np.intp, count=log.n_rounds)
    emb = embed_log(model, log)
    scores = np.einsum("nkd,nd->nk", emb, weights[user_idx]) + bias[user_idx][:, None]
    scores = np.where(log.mask, scores, 0.0)
    policy = make_policy(spec)

    def candidates(i: int, m: int) -> Candidates:
        return serving.policy_candidates(scores[i, :m], emb[i, :m], tuple(log.item_ids[i, :m].tolist()),
                                         models[log.users[i]])

    scores_only = policy.needs == {"scores"}
    dist = policy_distribution(policy, scores, log.mask, log.seed, candidates=None if scores_only else candidates)
    notes = [f"scores from feature net {version} with the users' CURRENT weights in Redis "
             f"({len(stored)} of {len(users)} users stored; the rest start from the prior), "
             "not the weights at decision time"]
    return dist, notes
