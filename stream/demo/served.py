"""The demo's serving-layer arms (issue 13): an expensive feature net served by the worker's engine exact,
under a deadline (anytime), behind an IDK cascade, and under model selection (Exp3, Exp4).

Two nets are trained on the training half (:mod:`stream.demo.nets`): a cheap linear one (``d = 4``) and
an expensive MLP (two hidden layers of 1024). Each arm streams the first ``n`` ratings through
:class:`stream.engine.Engine` with online per-user updates (:mod:`stream.demo.engine_arms`), from a clean
state:

* ``wide_exact``: the expensive net answers every query exactly;
* ``wide_anytime``: the same under a deadline (:mod:`stream.engine.anytime`): candidates whose features are
  not ready in time are scored with their running mean ``E[f]``. Unless ``deadline_ms`` is given it is
  calibrated from the exact arm: the reserve the worker keeps for what follows the feature net, as
  measured over the exact arm's batches (RFC 6298: mean plus four deviations, :meth:`Anytime.observe_tail`),
  plus half the exact arm's median feature-net time. The expensive net would have to run twice as fast
  to be on time (a 2x overload), and the anytime arm starts from the same measured tail;
* ``cascade``: the cheap net answers when its top-two margin is at least ``cascade_margin``, else the
  expensive one (:mod:`stream.engine.cascade`);
* ``exp3`` / ``exp4``: both nets served, the cheap one live and the expensive one a challenger; Exp3 picks
  the version that answers each query, Exp4 weights the two (:mod:`stream.engine.selection`).

Every arm's answers are timed from the queries' ``ts`` to their batch committed, against the deadline.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from bandits import make_policy
from stream import events
from stream.config import Settings
from stream.demo import nets
from stream.demo.arms import ArmResult
from stream.demo.engine_arms import EngineRun, stream_through_engine
from stream.engine import Engine
from stream.engine.anytime import Anytime
from stream.engine.cascade import Cascade
from stream.engine.selection import Selection

KEYS = ("wide_exact", "wide_anytime", "cascade", "exp3", "exp4")
CANDIDATES = 20
"""Candidates per query in these arms (the live arm's 5 would leave the feature net a small part of a batch's
time, next to scoring and the Redis commit: a deadline would have little to save)."""
CHUNK_ROWS = 64
"""The anytime arm's chunks (as ``benchmarks/anytime.py``): a budget can end every 64 rows."""


def served_arms(s: Settings, train: list[dict], stream: list[dict], catalog: list[dict], *, n: int,
                batch: int, epochs: int, deadline_ms: float = 0.0, n_candidates: int = CANDIDATES,
                say: Callable[[str], None] = print) -> tuple[list[ArmResult], dict[str, Any]]:
    """The arms above on the first ``n`` ratings of ``stream`` (NaN after), and a summary (the deadline, the
    nets' training, escalation and selection figures)."""
    items = [events.Item(c["id"], c.get("features") or {}) for c in catalog]
    t0, c0 = time.perf_counter(), time.process_time()
    cheap = nets.train_net(train, nets.CHEAP, seed=s.seed)
    wide = nets.train_net(train, nets.EXPENSIVE, epochs=epochs, seed=s.seed)
    summary: dict[str, Any] = {"n": n, "batch": batch, "candidates": n_candidates, "training": {
        "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
        "cheap": {"hidden": list(cheap.config.hidden), "output_dim": cheap.output_dim,
                  "val_rmse": cheap.metrics.get("val_rmse")},
        "wide": {"hidden": list(wide.config.hidden), "output_dim": wide.output_dim,
                 "val_rmse": wide.metrics.get("val_rmse")}}}

    def engine(live, **kw) -> Engine:
        return Engine(live, make_policy(s.policy), learner=s.learner, join_window_s=600.0, seed=s.seed, **kw)

    def run(e: Engine, key: str) -> EngineRun:
        return stream_through_engine(e, s, stream, items, n=n, n_candidates=n_candidates, batch=batch, prefix=key)

    runs: dict[str, EngineRun] = {"wide_exact": run(engine(wide), "wide_exact")}

    def measured(a: Anytime) -> Anytime:  # the tail the worker would have measured over the exact arm's batches
        for total, feat in runs["wide_exact"].batches:
            a.observe_tail((total - feat) / 1000)
        return a

    if not deadline_ms:
        reserve_ms = measured(Anytime(reserve_ms=s.deadline_reserve_ms)).reserve * 1000
        deadline_ms = reserve_ms + float(np.median([feat for _, feat in runs["wide_exact"].batches])) / 2
        summary["deadline_calibrated"] = True
    summary["deadline_ms"] = deadline_ms
    anytime = measured(Anytime(deadline_ms=deadline_ms, reserve_ms=s.deadline_reserve_ms, chunk_rows=CHUNK_ROWS))
    runs["wide_anytime"] = run(engine(wide, anytime=anytime), "wide_anytime")
    runs["cascade"] = run(engine(wide, cascade=Cascade(cheap, s.cascade_margin)), "cascade")
    for mode in ("exp3", "exp4"):
        e = engine(cheap)
        e.serve_selection(Selection([wide], mode=mode, eta=s.selection_eta, gamma=s.selection_gamma,
                                    loss_scale=s.selection_loss_scale))
        runs[mode] = run(e, mode)

    c = runs["cascade"].counts
    escalated = c["cascade_escalated"] / max(1, c["cascade_escalated"] + c["cascade_cheap"])
    a = runs["wide_anytime"].counts
    approximated = a["queries_approximated"] / max(1, a["predictions"])
    candidates_approximated = a["candidates_approximated"] / max(1, a["predictions"] * n_candidates)
    wide_answered = {m: float(np.mean([d.feature_net_version == wide.version for d in runs[m].decisions[:n]]))
                     for m in ("exp3",)}
    final_weight = {m: runs[m].decisions[n - 1].version_weights.get(wide.version) for m in ("exp3", "exp4")} if n else {}
    summary.update(escalated=escalated, approximated_queries=approximated,
                   approximated_candidates=candidates_approximated, wide_answered=wide_answered,
                   wide_weight_final=final_weight, shadow_rmse={m: runs[m].shadow_rmse for m in ("exp3", "exp4")})
    labels = {
        "wide_exact": ("expensive MLP 1024x1024, exact (engine)",
                       "the expensive net answers every query exactly; per-user weights learned online"),
        "wide_anytime": (f"expensive MLP, anytime deadline {deadline_ms:.0f} ms (engine)",
                         f"candidates not ready by the deadline scored with E[f] (a running mean per item): "
                         f"{candidates_approximated:.1%} of candidates, in {approximated:.1%} of queries"),
        "cascade": (f"IDK cascade linear -> MLP, margin {s.cascade_margin:g} (engine)",
                    f"the linear net (d=4) answers when its top-two margin is >= {s.cascade_margin:g}; "
                    f"{escalated:.1%} of queries escalated to the expensive net"),
        "exp3": ("Exp3 over linear and MLP (engine)",
                 f"Exp3 picks the answering version per query; the MLP answered {wide_answered['exp3']:.1%}, "
                 f"its final weight {final_weight.get('exp3') or 0:.2f}"),
        "exp4": ("Exp4 ensemble of linear and MLP (engine)",
                 f"the Exp4-weighted mean of both versions' scores; the MLP's final weight "
                 f"{final_weight.get('exp4') or 0:.2f}"),
    }
    out = []
    for key in KEYS:
        r = runs[key]
        label, note = labels[key]
        out.append(ArmResult(key, label, r.pred, r.cpu_s, r.wall_s,
                             f"{note}; the first {r.n} stream ratings as queries of {n_candidates} candidates, in "
                             f"batches of {batch} through the worker's engine and Redis (no Kafka)",
                             {"scored": r.n, "deadline_ms": deadline_ms}, on_time=r.on_time(deadline_ms)))
        say(f"  {out[-1].label}: on time {out[-1].on_time:.1%}, {r.cpu_s:.1f}s CPU")
    return out, summary
