"""``eddy replay`` as a function: read and join a slice, build the arrays, resolve targets, estimate.

:func:`replay` evaluates target policies on the whole slice;
:func:`learn_and_replay` first trains a VW policy on the earlier part of the
slice (by time) and evaluates it, the logging policy, greedy and any other
targets on the later part. Both return a JSON-ready report dict and the
per-policy results (for the table and the plot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandits.ope.reward_model import RewardModelSpec
from stream.config import Settings
from stream.replay.dataset import DEFAULT_CONTEXT_DIM, BanditLog
from stream.replay.errors import ReplayError
from stream.replay.evaluate import PolicyResult, Target, evaluate, resolve_target
from stream.replay.positions import keep_positions, position_summary, slate_estimates
from stream.replay.slicing import SliceRequest
from stream.replay.source import LoadedLog, load_rounds
from stream.replay.targets import TargetSpec

__all__ = ["ReplayOptions", "LearnOptions", "replay", "learn_and_replay", "split_by_time", "check_train_until"]


@dataclass(frozen=True)
class ReplayOptions:
    """What to estimate and how (defaults: every estimator, 1000 bootstrap samples, 95% intervals)."""

    targets: tuple[TargetSpec, ...]
    estimators: tuple[str, ...] = ("ips", "snips", "dm", "dr", "sndr")
    n_bootstrap: int = 1000
    alpha: float = 0.05
    seed: int = 0
    context_dim: int = DEFAULT_CONTEXT_DIM
    reward_model: RewardModelSpec = RewardModelSpec()
    allow_fallback: float = 0.0
    progress: bool = True
    len_list: int | None = None
    """Slates: evaluate positions ``0..len_list-1`` only (None: all; :mod:`stream.replay.positions`)."""


@dataclass(frozen=True)
class LearnOptions:
    """``--learn``: train on rounds before ``train_until`` (a fraction of the rounds by time, or epoch seconds)."""

    train_until: float = 0.7
    vw_args: tuple[str, ...] = ()
    passes: int = 1
    save_model: str | None = None
    label: str = "vw-learned"


@dataclass
class ReplayOutcome:
    report: dict[str, Any]
    results: list[PolicyResult]
    log: BanditLog
    extras: dict[str, Any] = field(default_factory=dict)


def check_train_until(train_until: float) -> float:
    """``train_until`` if it is a fraction in (0, 1) or a timestamp (> 1); ReplayError otherwise."""
    if isinstance(train_until, bool) or not isinstance(train_until, (int, float)) or not train_until > 0 \
            or train_until == 1 or train_until != train_until:
        raise ReplayError(f"--train-until must be a fraction in (0, 1) or an epoch timestamp, got {train_until!r}")
    return float(train_until)


def split_by_time(log: BanditLog, train_until: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, test) masks: the first ``train_until`` fraction of rounds by time if in (0, 1),
    else the rounds before epoch second ``train_until``.

    Rounds are in time order, so a fraction splits at a time: no test round is older than a training round.
    """
    check_train_until(train_until)
    if train_until < 1:
        cut = int(round(train_until * log.n_rounds))
        train = np.arange(log.n_rounds) < cut
    else:
        train = log.ts < train_until
    if train.all() or not train.any():
        raise ReplayError(f"--train-until {train_until} leaves {int(train.sum())} training and "
                          f"{int((~train).sum())} evaluation decisions: both must be non-empty")
    return train, ~train


def _load(settings: Settings, req: SliceRequest, options: ReplayOptions) -> tuple[LoadedLog, BanditLog, float]:
    t0 = time.perf_counter()
    loaded = load_rounds(settings, req, progress=options.progress)
    return loaded, keep_positions(loaded.log, options.len_list), time.perf_counter() - t0


def _estimate(settings: Settings, log: BanditLog, options: ReplayOptions,
              first: list[Target]) -> tuple[list[PolicyResult], dict, dict]:
    """Per-round estimates of every target, the timing, and the slate estimates (empty without slates)."""
    t0 = time.perf_counter()
    seen = {t.label for t in first}
    targets = list(first)
    for spec in options.targets:
        if spec.label not in seen:
            targets.append(resolve_target(spec, log, settings, allow_fallback=options.allow_fallback))
            seen.add(spec.label)
    t1 = time.perf_counter()
    results = evaluate(log, targets, estimators=options.estimators, n_bootstrap=options.n_bootstrap,
                       alpha=options.alpha, seed=options.seed, context_dim=options.context_dim,
                       reward_model=options.reward_model)
    slate = {}
    if log.positions.any():  # slates: the slate estimators too, over complete slates
        slate = slate_estimates(log, [(t.label, t.action_dist) for t in targets], n_bootstrap=options.n_bootstrap,
                                alpha=options.alpha, seed=options.seed)
    t2 = time.perf_counter()
    return results, {"targets_s": t1 - t0, "estimate_s": t2 - t1}, slate


def _report(req: SliceRequest, loaded: LoadedLog, log: BanditLog, options: ReplayOptions,
            results: list[PolicyResult], timing: dict, slate: dict) -> dict[str, Any]:
    work = timing.get("targets_s", 0.0) + timing.get("estimate_s", 0.0)
    positions = {"positions": {**position_summary(log), "slate_estimates": slate}} if log.positions.any() else {}
    return {
        "command": "replay",
        "created_at": time.time(),
        "slice": req.to_dict(),
        "provenance": loaded.provenance,
        "join": loaded.stats.to_dict(),
        "n_rounds": log.n_rounds,
        "n_actions": log.n_actions,
        "on_policy_value": log.on_policy_value(),
        **positions,
        "estimators": list(options.estimators),
        "alpha": options.alpha,
        "bootstrap_samples": options.n_bootstrap,
        "seed": options.seed,
        "allow_fallback": options.allow_fallback,
        "reward_model": {
            **options.reward_model.to_dict(),
            "features": "hashed context, user id included (ridge, logistic); none (constant, per-action)",
            "context_dim": options.context_dim,
        },
        "policies": [r.to_dict() for r in results],
        "timing_s": timing,
        "decisions_per_s": log.n_rounds / work if work > 0 else None,
    }


def replay(settings: Settings, req: SliceRequest, options: ReplayOptions) -> ReplayOutcome:
    """Evaluate ``options.targets`` on the slice."""
    if not options.targets:
        raise ReplayError("no target policy given (--policy)")
    loaded, log, read_s = _load(settings, req, options)
    results, timing, slate = _estimate(settings, log, options, [])
    timing = {"read_s": read_s, **timing}
    return ReplayOutcome(_report(req, loaded, log, options, results, timing, slate), results, log,
                         {"summary": loaded.stats.summary()})


def learn_and_replay(settings: Settings, req: SliceRequest, options: ReplayOptions, learn: LearnOptions,
                     vw_command: list[str]) -> ReplayOutcome:
    """Train a VW policy on the earlier slice, evaluate it (with the other targets) on the later one."""
    from stream.replay.vw_target import save_vw, train_vw, vw_distribution

    loaded, log, read_s = _load(settings, req, options)
    train, test = split_by_time(log, learn.train_until)
    train_log, test_log = log.subset(train), log.subset(test)
    t0 = time.perf_counter()
    ws = train_vw(train_log, vw_command, passes=learn.passes)
    train_s = time.perf_counter() - t0
    learned = Target(learn.label, vw_distribution(ws, test_log),
                     (f"trained on {train_log.n_rounds} decisions up to ts {train_log.ts.max():.3f} with "
                      f"vw {' '.join(vw_command)}",))
    saved = str(save_vw(ws, learn.save_model)) if learn.save_model else None
    results, timing, slate = _estimate(settings, test_log, options, [learned])
    timing = {"read_s": read_s, "train_s": train_s, **timing}
    report = _report(req, loaded, test_log, options, results, timing, slate)
    report["learn"] = {
        "vw_args": vw_command,
        "passes": learn.passes,
        "train_until": learn.train_until,
        "train_rounds": train_log.n_rounds,
        "eval_rounds": test_log.n_rounds,
        "train_ts": [float(train_log.ts.min()), float(train_log.ts.max())],
        "eval_ts": [float(test_log.ts.min()), float(test_log.ts.max())],
        "saved_model": saved,
    }
    return ReplayOutcome(report, results, test_log, {"summary": loaded.stats.summary(), "saved_model": saved})
