"""Model selection: several feature-net versions served at once, no I/O.

The live version and its challengers score every query (one forward pass per
version per batch, each version with its own per-user weights). Then, per mode:

* ``shadow``: the live version answers; the challengers' scores are logged and
  their online error is tracked, for a promote gate (``eddy models shadow``).
* ``exp3``: :class:`bandits.Exp3` picks the version that answers, with a draw
  seeded by the request's seed; the policy then explores over that version's
  scores. The logged ``pmf`` is the candidates' probability over both draws,
  ``pmf[a] = sum_v q_v * pi_v(a)``, and ``version_probability = q_v``.
* ``exp4``: :class:`bandits.Exp4` weights the versions; the policy explores over
  the weighted mean of their scores (an ensemble, no version draw).

Learning (for each joined feedback): every version's squared error on the item
the feedback names, ``(reward - score_v(item))**2``, goes into the partition's
shadow statistics; its loss ``min(1, error / loss_scale)`` teaches the selector
(Exp3: the answering version's loss over ``q_v``; Exp4: every version's, each
observed); and every version's user weights learn from the feedback on their
own embeddings (the join record keeps them). The selector and the statistics
are per partition, copied per batch and written in the batch's
:class:`~stream.engine.state.BatchWrite`, so they are exactly once like the
user models (docs/design.md, "Model selection").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from bandits import Exp3, Exp4
from bandits.base import Decision as PolicyDecision
from features.model import FeatureModel
from stream.engine import serving

if TYPE_CHECKING:
    # Engine, Batch and _Scored (stream.engine.batch) are named, not imported: batch.py imports this module.
    from stream.engine.state import StateReader
    from stream.events import Decision, Feedback

log = logging.getLogger("eddy.engine")

MODES = ("shadow", "exp3", "exp4")


class PartitionState(msgspec.Struct):
    """What one partition keeps (``{pN}:select``): the selector's cumulative estimated loss per version,
    rounds learned, and per version the shadow statistics ``[feedbacks, sum of squared errors]``."""

    losses: dict[str, float] = {}
    n: int = 0
    errors: dict[str, list[float]] = {}
    weights: dict[str, float] = {}  # the selector's distribution after its last update (for eddy models shadow)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(PartitionState)


def decode_state(blob: bytes) -> PartitionState:
    return _decoder.decode(blob)


def mean_weights(blobs: list[bytes]) -> dict[str, float]:
    """The selectors' weight of each version, averaged over the partitions that have one."""
    states = [w for w in (decode_state(b).weights for b in blobs) if w]
    versions = {v for w in states for v in w}
    return {v: sum(w.get(v, 0.0) for w in states) / len(states) for v in sorted(versions)}


def merged_errors(blobs: list[bytes]) -> dict[str, tuple[int, float]]:
    """``{version: (feedbacks, sum of squared errors)}`` over every partition's statistics."""
    out: dict[str, tuple[int, float]] = {}
    for blob in blobs:
        for v, (n, sse) in decode_state(blob).errors.items():
            n0, s0 = out.get(v, (0, 0.0))
            out[v] = (n0 + int(n), s0 + float(sse))
    return out


@dataclass
class _Plan:
    """One request's view of every served version, before the policy draws."""

    scores: dict[str, np.ndarray]
    embeddings: dict[str, np.ndarray]
    users: dict
    weights: dict[str, float]
    answering: str
    coarsened: dict[str, tuple[int, ...]]  # per challenger: candidates served from a coarsened cache entry


class Selection:
    """Serves ``challengers`` beside the engine's live feature net.

    Parameters
    ----------
    challengers
        Feature nets served beside the live one (a challenger that becomes live is served once).
    mode
        ``shadow``, ``exp3`` or ``exp4``.
    eta, gamma
        The selector's learning rate and uniform mixing.
    loss_scale
        A squared error of this much or more is a loss of 1.
    """

    def __init__(self, challengers: list[FeatureModel], *, mode: str = "shadow", eta: float = 0.05,
                 gamma: float = 0.05, loss_scale: float = 4.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not loss_scale > 0:
            raise ValueError(f"loss_scale must be > 0; got {loss_scale!r}")
        self.challengers = {m.version: m for m in challengers}
        self.mode = mode
        self.eta, self.gamma, self.loss_scale = eta, gamma, loss_scale
        self._states: dict[int, PartitionState] = {}  # committed, per partition
        self._shared: dict[int, PartitionState] = {}  # every partition's, as last read (share)
        self.feature_caches: dict = {}  # version -> the challenger's own feature cache (features.cache)
        self._batch: dict[int, PartitionState] = {}  # this batch's copies

    # ------------------------------------------------------------------ state
    def versions(self, live: str) -> list[str]:
        return [live] + [v for v in self.challengers if v != live]

    def _state(self, partition: int, state: StateReader) -> PartitionState:
        s = self._batch.get(partition)
        if s is None:
            current = self._states.get(partition)
            if current is None:
                blob = state.load_selection(partition)
                current = decode_state(blob) if blob else PartitionState()
            s = self._batch[partition] = msgspec.convert(msgspec.to_builtins(current), PartitionState)
        return s

    def selector(self, s: PartitionState, versions: list[str]) -> Exp3 | Exp4 | None:
        """The partition's own selector over ``versions``: what it learns on (and writes back)."""
        if self.mode == "shadow":
            return None
        cls = Exp3 if self.mode == "exp3" else Exp4
        losses = _filled(s.losses, versions)
        return cls.from_state({"arms": versions, "losses": [losses[v] for v in versions], "n": s.n},
                              eta=self.eta, gamma=self.gamma)

    def share(self, blobs: dict[int, bytes]) -> None:
        """Every partition's committed state, read from Redis now and then (the worker's prior refresh).

        The estimated losses are sums over rounds, so adding every partition's gives the
        selector all of the deployment's feedback, not one partition's share of it."""
        self._shared = {p: decode_state(b) for p, b in blobs.items()}

    def predictor(self, partition: int, s: PartitionState, versions: list[str]) -> Exp3 | Exp4 | None:
        """The selector that decides for ``partition``: its own losses (``s``) plus every other
        partition's, from memory (committed) or the last :meth:`share`."""
        sel = self.selector(s, versions)
        if sel is None:
            return None
        total = _filled(s.losses, versions)
        for p, other in {**self._shared, **self._states}.items():
            if p != partition:
                for v, x in _filled(other.losses, versions).items():
                    total[v] += x
        return type(sel).from_state({"arms": versions, "losses": [total[v] for v in versions], "n": s.n},
                                    eta=self.eta, gamma=self.gamma)

    def selector_name(self) -> str:
        if self.mode == "shadow":
            return "shadow"
        return (Exp3 if self.mode == "exp3" else Exp4)(["x"], eta=self.eta, gamma=self.gamma).version

    def begin(self) -> None:
        self._batch = {}

    def commit(self) -> None:
        """The batch is durable: memory takes its copies."""
        self._states.update(self._batch)
        self._batch = {}

    def forget(self) -> None:
        self._states.clear()
        self._batch = {}

    def write(self, batch: Batch) -> None:
        """The partitions this batch's feedback changed, into its write."""
        for p, s in self._batch.items():
            if s.n or s.errors:
                batch.write.selection[p] = _encoder.encode(s)

    # ---------------------------------------------------------------- queries
    def plan(self, engine: Engine, scored: list[_Scored], state: StateReader, batch: Batch) -> list[_Plan] | None:
        """Every version's scores of ``scored``; each request's answering version replaces its scores,
        embeddings and user (so the policy explores over it). None if a challenger failed: the live
        version then answers alone (``selection_failed``). State reads (Redis) raise: an outage."""
        live = engine.model.version
        versions = self.versions(live)
        partition_of = {s.query.user_id: s.record.partition for s in scored}
        users_of = {}
        for v in versions[1:]:
            cache = engine.version_cache(self.challengers[v])
            users_of[v] = cache.get_many(list(partition_of),
                                         lambda ids, v=v: state.load_users(v, {u: partition_of[u] for u in ids}))
        selectors = {}
        for p in sorted({s.record.partition for s in scored}):
            sel = self.predictor(p, self._state(p, state), versions)
            selectors[p] = (sel, sel.predict_proba_one() if sel is not None else None)
        try:
            plans = self._plans(engine, scored, live, users_of, selectors)
        except Exception as exc:
            batch.counts["selection_failed"] += 1
            log.warning("model selection failed for a batch; the live version answers alone: %s", exc)
            return None
        for s, plan in zip(scored, plans):  # only now: a failure above leaves every request as it was
            if self.mode == "exp4":  # the ensemble's scores read every version's features
                s.scores = np.asarray(sum(plan.weights[v] * plan.scores[v] for v in plan.scores), dtype=np.float64)
                s.coarsened = tuple(sorted(set(s.coarsened).union(*plan.coarsened.values())))
            elif plan.answering != live:
                v = plan.answering
                s.scores, s.embeddings, s.user = plan.scores[v], plan.embeddings[v], plan.users[v]
                s.coarsened = plan.coarsened[v]
        return plans

    def _embed(self, engine: Engine, version: str, inputs: list) -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
        """A challenger's forward pass, through a feature cache of its own when the worker caches features:
        each query's rows and its candidates served from a coarsened cache entry."""
        model = self.challengers[version]
        caches = engine.feature_caches
        if caches is None or not caches.enabled or model.kind not in caches.kinds:
            return model.embed_many(inputs), [()] * len(inputs)
        if version not in self.feature_caches:
            self.feature_caches[version] = caches.new(version)
        coarsened: list[tuple[int, ...]] = []
        return model.embed_many(inputs, cache=self.feature_caches[version], coarsened=coarsened), coarsened

    def _plans(self, engine: Engine, scored: list[_Scored], live: str, users_of: dict,
               selectors: dict) -> list[_Plan]:
        inputs = [(s.query.context, [c.to_dict() for c in s.query.candidates]) for s in scored]
        embedded = {v: self._embed(engine, v, inputs) for v in users_of}
        plans = []
        for i, s in enumerate(scored):
            sel, q = selectors[s.record.partition]
            scores, embs, users = {live: s.scores}, {live: s.embeddings}, {live: s.user}
            for v, (emb_list, _) in embedded.items():
                user = users_of[v][s.query.user_id]
                embs[v] = emb_list[i]
                scores[v] = user.predict_many(emb_list[i].astype(np.float64))
                if not np.all(np.isfinite(scores[v])):
                    raise FloatingPointError(f"version {v} scored a candidate NaN or infinite")
                users[v] = user
            if self.mode == "shadow":
                weights, answering = {live: 1.0, **dict.fromkeys(embedded, 0.0)}, live
            elif self.mode == "exp3":
                weights = q
                answering = sel.pick(float(np.random.default_rng((s.seed, 1)).random()))
            else:
                weights, answering = q, live
            plans.append(_Plan(scores, embs, users, weights, answering,
                               {v: marks[i] for v, (_, marks) in embedded.items()}))
        return plans

    def finish(self, engine: Engine, s: _Scored, plan: _Plan, d: PolicyDecision) -> tuple[PolicyDecision, dict]:
        """The decision over both draws (Exp3), and the decision's selection fields."""
        if self.mode == "exp3" and len(plan.scores) > 1:
            ids = tuple(c.id for c in s.query.candidates)
            pmf = np.zeros(len(ids))
            for v, q in plan.weights.items():
                if v == plan.answering:
                    pi = d.pmf
                else:
                    cands = serving.policy_candidates(plan.scores[v], plan.embeddings[v], ids, plan.users[v])
                    pi = serving.decide(engine.policy, cands, s.seed).pmf
                pmf += q * np.asarray(pi, dtype=np.float64)
            pmf /= pmf.sum()
            pmf.flags.writeable = False
            d = PolicyDecision(pmf=pmf, chosen=d.chosen, propensity=float(pmf[d.chosen]), policy=d.policy,
                               policy_version=d.policy_version)
        fields = {
            "selector": self.selector_name(),
            "version_probability": float(plan.weights[plan.answering]) if self.mode == "exp3" else 1.0,
            "version_weights": {v: float(w) for v, w in plan.weights.items()},
            "version_scores": {v: tuple(float(x) for x in sc) for v, sc in plan.scores.items()},
        }
        return d, fields

    @staticmethod
    def others(plan: _Plan, answering: str) -> dict[str, np.ndarray]:
        """The embeddings the join record keeps beside the answering version's."""
        return {v: e for v, e in plan.embeddings.items() if v != answering}

    # --------------------------------------------------------------- feedback
    def learn(self, engine: Engine, fb: Feedback, decision: Decision, others: dict[str, np.ndarray],
              item_index: int, partition: int, state: StateReader, batch: Batch) -> None:
        """A joined feedback of a decision made with selection (``decision.version_scores``)."""
        if not decision.version_scores:
            return
        s = self._state(partition, state)
        losses = {}
        for v, scores in decision.version_scores.items():
            err = (fb.reward - scores[item_index]) ** 2
            n, sse = s.errors.get(v, (0, 0.0))
            s.errors[v] = [n + 1, sse + err]
            losses[v] = min(1.0, err / self.loss_scale)
        sel = self.selector(s, list(decision.version_scores)) if decision.selector != "shadow" else None
        if isinstance(sel, Exp3):
            answering = decision.feature_net_version
            sel.learn_one(answering, losses[answering], probability=decision.version_probability)
        elif isinstance(sel, Exp4):
            sel.learn_one(losses)
        if sel is not None:
            s.losses.update(dict(zip(sel.arms, sel.state()["losses"])))
            s.n = sel.n_learned
            s.weights = self.predictor(partition, s, list(sel.arms)).predict_proba_one()
        for v, emb in others.items():  # the other versions' user weights learn too, on their own embeddings
            _learn_user(engine, v, fb, emb, item_index, partition, state, batch)


def _filled(losses: dict[str, float], versions: list[str]) -> dict[str, float]:
    """``losses`` of ``versions``; one not learned yet starts at the best known one's (0 if none)."""
    start = min((losses[v] for v in versions if v in losses), default=0.0)
    return {v: losses.get(v, start) for v in versions}


def plan_or_none(engine: Engine, scored: list[_Scored], state: StateReader, batch: Batch) -> list[_Plan] | None:
    """The engine's hook before its policy draws: None without selection (or when it failed)."""
    if engine.selection is None or not scored:
        return None
    if engine.serve_default or any(s.feature_net_version != engine.model.version for s in scored):
        # apprentice mode serves each query's default action (no policy draw over any version's scores), or
        # an IDK cascade's cheap model answered some of them: selection is over the live version's peers only
        batch.counts["selection_skipped"] += 1
        return None
    return engine.selection.plan(engine, scored, state, batch)


def learn_or_count(engine: Engine, fb: Feedback, joined, item_index: int, partition: int, state: StateReader,
                   batch: Batch) -> None:
    """The engine's hook after a feedback was applied to the answering version. The feedback stands if
    this fails (the selector or another version skips it: ``selection_learn_failed``); state reads raise."""
    engine.selection._state(partition, state)  # the reads first, outside the try: an outage is not a bad record
    for v, emb in joined.others.items():
        if (v, fb.user_id) not in batch.learned:
            engine._cache(v, emb.shape[1]).get_many(
                [fb.user_id], lambda ids, v=v: state.load_users(v, dict.fromkeys(ids, partition)))
    try:
        engine.selection.learn(engine, fb, joined.decision, joined.others, item_index, partition, state, batch)
        batch.counts["selection_learned"] += 1
    except Exception as exc:
        batch.counts["selection_learn_failed"] += 1
        log.warning("model selection could not learn from request %s: %s", fb.request_id, exc)


def _learn_user(engine: Engine, version: str, fb: Feedback, emb: np.ndarray, item_index: int, partition: int,
                state: StateReader, batch: Batch) -> None:
    """One feedback into ``version``'s model of the user (``learn_one_checked``: as it was if it fails)."""
    key = (version, fb.user_id)
    cache = engine._cache(version, emb.shape[1])
    model = batch.learned.get(key)
    if model is None:
        model = cache.get_many([fb.user_id],
                               lambda ids: state.load_users(version, dict.fromkeys(ids, partition)))[fb.user_id]
    x = emb[item_index].astype(np.float64)
    if not np.isfinite(x).all():
        raise FloatingPointError(f"version {version}'s embedding of this item is not finite")
    model.learn_one_checked(x, fb.reward)
    batch.learned[key] = model
    batch.partition_of[key] = partition
