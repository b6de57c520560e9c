"""The demo's in-process reference arms, each scored prequentially on the same stream.

Every arm returns one prediction per stream rating, made before that rating
was learned from (progressive validation), and the CPU and wall time it
spent on the stream:

* :func:`frozen_offline`: the offline-trained hybrid ``w_u . f(x, item) + b_u``
  with every weight frozen; users absent from training get the mean user.
* :func:`online_hybrid`: the live arm's learning, in process: the same feature
  net, per-user learner and starts as the worker, each rating predicted and
  then learned in stream order (no Kafka); it reproduces the live arm's RMSE
  to a few 1e-5 and is what tuning the learner iterates on;
* :func:`periodic_retrain`: the expensive reference: every ``every`` ratings
  the feature net and user weights are retrained from scratch on everything
  seen so far, then frozen until the next retrain.
* :func:`velox`: the combined design: online per-user updates between those
  periodic retrains (each retrain restarts the users from its own weights).
* outside references: :func:`user_mean` (the user's mean rating so far),
  and river's ``reco.Baseline`` (:func:`river_baseline`), ``reco.BiasedMF``
  (:func:`river_biased_mf`) and ``reco.FunkMF`` (:func:`river_funk_mf`), each
  warmed with one pass over the training part, then ``predict_one`` before
  ``learn_one`` on each stream rating.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ArmResult:
    key: str
    label: str
    pred: np.ndarray
    cpu_s: float
    wall_s: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    on_time: float | None = None  # the share of answers within the demo's deadline (arms that answer queries)


class _Clock:
    def __enter__(self) -> "_Clock":
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self._w, time.process_time() - self._c


def embed_records(model, records: list[dict], chunk: int = 4096, cache=None) -> np.ndarray:
    """``f(context, item)`` of each record's rated item, ``(n, d)`` float32, in batched forward passes."""
    out = [np.zeros((0, model.output_dim), dtype=np.float32)]
    for i in range(0, len(records), chunk):
        part = records[i : i + chunk]
        out.extend(model.embed_many([(r["context"], [r["item"]]) for r in part], cache=cache))
    return np.concatenate(out)


def hybrid_scores(model, records: list[dict], *, chunk: int = 4096, cache=None) -> np.ndarray:
    """Frozen offline scores ``w_u . f + b_u`` (the mean user for users the model was not trained on)."""
    F = embed_records(model, records, chunk, cache)
    mw, mb = model.mean_user_weights()
    W = np.empty_like(F)
    b = np.empty(len(records), dtype=np.float64)
    for i, r in enumerate(records):
        W[i], b[i] = model.user_weights.get(r["user_id"], (mw, mb))
    return (F.astype(np.float64) * W).sum(axis=1) + b


def frozen_offline(model, stream: list[dict]) -> ArmResult:
    with _Clock() as c:
        pred = hybrid_scores(model, stream)
    return ArmResult("frozen", "offline model, frozen user weights", pred, c.cpu, c.wall,
                     "the offline-trained user weights, never updated; unseen users get the mean user")


def online_hybrid(model, stream: list[dict], *, learner: str = "rls", **hyper: float) -> ArmResult:
    """``w_u . f + b_u`` with ``w_u, b_u`` learned online per user exactly as the worker does (users trained
    offline start from their offline weights, others from the population prior), prequentially."""
    from learners import make_user_model
    from stream.engine.serving import base_prior

    with _Clock() as c:
        F = embed_records(model, stream).astype(np.float64)
        prior = base_prior(model)
        if prior is None:
            prior = np.zeros(model.output_dim + 1)
        users: dict[str, Any] = {}
        pred = np.empty(len(stream))
        for i, r in enumerate(stream):
            u = r["user_id"]
            m = users.get(u)
            if m is None:
                w_b = model.user_weights.get(u)
                start = prior if w_b is None else np.append(np.asarray(w_b[0], dtype=np.float64), float(w_b[1]))
                m = users[u] = make_user_model(learner, model.output_dim, prior_mean=start, **hyper)
            pred[i] = m.predict_one(F[i])
            m.learn_one(F[i], r["reward"])
    return ArmResult("online", f"online per-user updates, in process (learner {learner})", pred, c.cpu, c.wall,
                     "the live arm's learner and starts without Kafka", {"learner": learner, **hyper})


def periodic_retrain(model, train: list[dict], stream: list[dict], opts, *, every: int, seed: int = 0,
                     progress: bool = True, keep: list | None = None) -> ArmResult:
    """Retrain from scratch on ``train + stream[:s]`` at s = every, 2 every, ...; frozen in between.
    ``keep`` receives ``(s, model, CPU s, wall s of its training)`` for every segment (the offline model at 0),
    for :func:`velox` to serve the same retrains."""
    from stream import training

    pred = np.empty(len(stream))
    starts = list(range(0, len(stream), every))
    retrains = []
    retrain_opts = dataclasses.replace(opts, val_fraction=0.0, progress=False, min_examples=1)
    with _Clock() as c:
        for k, s in enumerate(starts):
            current, cpu, seconds = model, 0.0, 0.0
            if s > 0:
                t0, c0 = time.perf_counter(), time.process_time()
                current = training.train(train + stream[:s], retrain_opts, version=f"retrain-{k}", seed=seed,
                                         config=model.config)
                cpu, seconds = time.process_time() - c0, time.perf_counter() - t0
                retrains.append({"at": s, "examples": len(train) + s, "seconds": seconds})
                if progress:
                    print(f"  periodic retrain {k}/{len(starts) - 1}: {len(train) + s} ratings, "
                          f"{retrains[-1]['seconds']:.1f}s", file=sys.stderr, flush=True)
            if keep is not None:
                keep.append((s, current, cpu, seconds))
            pred[s : s + every] = hybrid_scores(current, stream[s : s + every])
    return ArmResult("retrain", f"periodic full retrain every {every} ratings", pred, c.cpu, c.wall,
                     f"{len(retrains)} retrains from scratch on all ratings seen so far, frozen in between",
                     {"retrains": retrains, "every": every})


def velox(segments: list, stream: list[dict], *, learner: str = "rls", **hyper: float) -> ArmResult:
    """The combined Velox design: online per-user updates (:func:`online_hybrid`) between periodic full
    retrains of the feature net and user weights. ``segments``: ``(start, model, training CPU s, wall s)`` in stream
    order, as :func:`periodic_retrain` keeps them; at each start the users begin again from that retrain's
    offline weights (which saw every rating before it). CPU s: the retrains' plus the online updates'."""
    pred = np.empty(len(stream))
    cpu = wall = 0.0
    bounds = [s[0] for s in segments[1:]] + [len(stream)]
    for (start, model, train_cpu, train_wall), end in zip(segments, bounds):
        part = online_hybrid(model, stream[start:end], learner=learner, **hyper)
        pred[start:end] = part.pred
        cpu += train_cpu + part.cpu_s
        wall += train_wall + part.wall_s
    return ArmResult("velox", f"Velox: online per-user updates + a feature-net retrain every {bounds[0]} ratings",
                     pred, cpu, wall, f"learner {learner} online between {len(segments) - 1} full retrains (those of "
                     "the periodic-retrain arm; their training CPU is counted here too)",
                     {"retrains": len(segments) - 1, "learner": learner})


def cached_net(key: str, label: str, model, stream: list[dict], *, n: int, cache=None, batch: int = 64) -> ArmResult:
    """A frozen offline model scoring the first ``n`` stream ratings (NaN after) in worker-sized batches,
    with or without a feature cache (:mod:`features.cache`): its compute time, and what the cache saved."""
    pred = np.full(len(stream), np.nan)
    with _Clock() as c:
        pred[:n] = hybrid_scores(model, stream[:n], chunk=batch, cache=cache)
    extra: dict[str, Any] = {"scored": n, "batch": batch, "kind": model.kind}
    note = f"{model.kind} feature net frozen, offline user weights; the first {n} stream ratings in batches of {batch}"
    if cache is not None:
        extra.update(cache.figures())
        extra["hit_rate"] = cache.hits / max(1, cache.hits + cache.misses)
        what = "text encodings" if model.kind == "text" else (
            f"rows, keys coarsened to {cache.lsh_bits} SimHash bits" if cache.lsh_bits else "rows")
        note += f"; feature cache of {what}: hit rate {extra['hit_rate']:.1%}"
    else:
        note += "; no feature cache"
    return ArmResult(key, label, pred, c.cpu, c.wall, note, extra)


def user_mean(train: list[dict], stream: list[dict]) -> ArmResult:
    """The user's mean rating so far (training part included); the overall mean for a user's first rating."""
    from collections import defaultdict

    total, count = defaultdict(float), defaultdict(int)
    g_total, g_count = 0.0, 0
    for r in train:
        total[r["user_id"]] += r["reward"]
        count[r["user_id"]] += 1
        g_total += r["reward"]
        g_count += 1
    pred = np.empty(len(stream))
    with _Clock() as c:
        for i, r in enumerate(stream):
            u, y = r["user_id"], r["reward"]
            pred[i] = total[u] / count[u] if count[u] else (g_total / g_count if g_count else 0.0)
            total[u] += y
            count[u] += 1
            g_total += y
            g_count += 1
    return ArmResult("user_mean", "per-user mean rating", pred, c.cpu, c.wall,
                     "the user's mean rating so far (the overall mean before their first); no item information")


def _river_arm(key: str, label: str, model, train: list[dict], stream: list[dict]) -> ArmResult:
    with _Clock() as warm:
        for r in train:
            model.learn_one(r["user_id"], r["item"]["id"], r["reward"])
    pred = np.empty(len(stream))
    with _Clock() as c:
        for i, r in enumerate(stream):
            user, item = r["user_id"], r["item"]["id"]
            pred[i] = model.predict_one(user, item)
            model.learn_one(user, item, r["reward"])
    return ArmResult(key, label, pred, c.cpu, c.wall,
                     f"warmed with one pass over the {len(train)} training ratings "
                     f"({warm.cpu:.1f}s CPU), then predict_one before learn_one",
                     {"warm_cpu_s": warm.cpu, "warm_wall_s": warm.wall})


# River's reco models with the hyperparameters of river's own MovieLens-100K example
# (river's docs, "Matrix Factorization for Recommender Systems").

def river_baseline(train: list[dict], stream: list[dict]) -> ArmResult:
    """River's ``reco.Baseline``: global mean + user bias + item bias, learned by SGD."""
    from river import optim, reco

    model = reco.Baseline(optimizer=optim.SGD(0.025), l2=0.0, initializer=optim.initializers.Zeros())
    return _river_arm("baseline", "river reco.Baseline (biases)", model, train, stream)


def river_funk_mf(train: list[dict], stream: list[dict], *, seed: int = 0, n_factors: int = 10) -> ArmResult:
    """River's ``reco.FunkMF``: factors only, no biases."""
    from river import optim, reco

    model = reco.FunkMF(n_factors=n_factors, optimizer=optim.SGD(0.05), l2=0.1,
                        initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed))
    return _river_arm("funk_mf", f"river reco.FunkMF ({n_factors} factors)", model, train, stream)


def river_biased_mf(train: list[dict], stream: list[dict], *, seed: int = 0, n_factors: int = 10) -> ArmResult:
    """River's ``reco.BiasedMF``: biases and factors."""
    from river import optim, reco

    mf = reco.BiasedMF(
        n_factors=n_factors,
        bias_optimizer=optim.SGD(0.025),
        latent_optimizer=optim.SGD(0.05),
        weight_initializer=optim.initializers.Zeros(),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
        l2_bias=0.0,
        l2_latent=0.0,
    )
    return _river_arm("biased_mf", f"river reco.BiasedMF ({n_factors} factors)", mf, train, stream)
