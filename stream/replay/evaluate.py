"""Off-policy evaluation of target policies on a joined log: estimates, intervals, ESS, diagnostics.

Everything is computed on (n, n_actions) arrays built once
(:class:`~stream.replay.dataset.BanditLog`): each target becomes one
``action_dist`` matrix, the reward model one ``estimated_rewards`` matrix
(only when DM, DR or SNDR is asked for), and the estimators of
:mod:`bandits.ope` give the values. The 95% intervals come from one bootstrap
shared by every (target, estimator) pair (:mod:`bandits.ope.bootstrap`):
the same resampled logs for all of them, one matrix product per chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from bandits import BanditError, make_policy
from bandits.ope import ESTIMATORS, diagnose, effective_sample_size, make_estimator
from stream.config import Settings
from bandits.ope.base import OPEInput, validate_input
from bandits.ope.bootstrap import shared_intervals
from bandits.ope.reward_model import RewardModelSpec
from stream.replay.dataset import DEFAULT_CONTEXT_DIM, BanditLog
from stream.replay.errors import ReplayError
from stream.replay.targets import Fallback, TargetSpec, policy_distribution, table_distribution, uniform_distribution

__all__ = ["Estimate", "PolicyResult", "Target", "resolve_target", "evaluate", "parse_estimators", "DEFAULT_ESTIMATORS"]

DEFAULT_ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr")


@dataclass(frozen=True)
class Target:
    """A target policy ready to evaluate: its label, its (n, K) action distribution and notes."""

    label: str
    action_dist: np.ndarray
    notes: tuple[str, ...] = ()
    fallback: Fallback | None = None


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its bootstrap interval (NaN and ``error`` when undefined)."""

    value: float
    lower: float
    upper: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def f(v: float) -> float | None:
            return None if math.isnan(v) else v

        out: dict[str, Any] = {"value": f(self.value), "lower": f(self.lower), "upper": f(self.upper)}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class PolicyResult:
    """Every estimate of one target policy, its effective sample size and the diagnostics' warnings."""

    label: str
    ess: float
    estimates: dict[str, Estimate]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fallbacks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.label,
            "ess": self.ess,
            "fallbacks": self.fallbacks,
            "estimates": {k: e.to_dict() for k, e in self.estimates.items()},
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def parse_estimators(text: str) -> list[str]:
    """``"ips,snips"`` -> ``["ips", "snips"]``: estimator specs (:func:`bandits.ope.make_estimator`), checked.

    Specs are separated by ``;`` when one has several parameters, else by ``,``.

    >>> parse_estimators("IPS, dr, switch-dr:lambda=100")
    ['ips', 'dr', 'switch-dr:lambda=100']
    >>> parse_estimators("dros:lambda=10;ips:max_weight=50")
    ['dros:lambda=10', 'ips:max_weight=50']
    """
    parts = text.split(";") if ";" in text else text.split(",")
    names = [t.strip().lower() for t in parts if t.strip()]
    if not names:
        raise ReplayError(f"--estimators must name at least one of {list(ESTIMATORS)}, got {text!r}")
    for name in names:
        try:
            make_estimator(name)
        except BanditError as exc:
            raise ReplayError(f"--estimators {name!r}: {exc}") from None
    return list(dict.fromkeys(names))


def resolve_target(spec: TargetSpec, log: BanditLog, settings: Settings | None = None, *,
                   allow_fallback: float = 0.0) -> Target:
    """Turn a parsed ``--policy`` into its (n, K) action distribution on ``log``.

    A target that falls back to uniform on more than ``allow_fallback`` (a
    fraction of the decisions, default 0) is a ReplayError naming how many and
    the first such decision: its estimate would be the uniform policy's value
    under the target's name.
    """
    notes: list[str] = []
    fallback = None
    if spec.kind == "logging":
        dist = log.pmf
    elif spec.kind == "uniform":
        dist = uniform_distribution(log)
    elif spec.kind == "scores":
        dist = policy_distribution(make_policy(spec.policy), log.scores, log.mask, log.seed)
    elif spec.kind == "logged":
        from stream.replay.version_target import logged_version_distribution

        dist, fallback = logged_version_distribution(spec.version, spec.policy, log)
        if fallback is not None:
            notes = [fallback.message()]
    elif spec.kind == "table":
        dist, notes, fallback = table_distribution(spec.path, log)
    elif spec.kind == "vw":
        from stream.replay.vw_target import load_vw, vw_distribution

        dist = vw_distribution(load_vw(spec.path), log)
    elif spec.kind == "fn":
        if settings is None:
            raise ReplayError(f"--policy {spec.label!r} needs Redis and the model registry (settings)")
        from stream.replay.fn_target import fn_distribution

        dist, notes = fn_distribution(settings, spec.version, spec.policy, log)
    else:
        raise ReplayError(f"unknown target kind {spec.kind!r}")
    if log.taken is not None and spec.kind != "logging":  # slates: a position chooses among what is left
        from stream.replay.positions import restrict_to_free

        dist = restrict_to_free(dist, log.taken, log.scores, log.mask)
    if fallback is not None and fallback.count > allow_fallback * fallback.total:
        raise ReplayError(f"--policy {spec.label!r}: {fallback.message()}; fix the target, or accept up to a "
                          f"fraction of fallbacks with --allow-fallback [FRACTION]")
    return Target(spec.label, dist, tuple(notes), fallback)


def evaluate(log: BanditLog, targets: Sequence[Target], *, estimators: Sequence[str] = DEFAULT_ESTIMATORS,
             n_bootstrap: int = 1000, alpha: float = 0.05, seed: int = 0,
             estimated_rewards: np.ndarray | None = None, context_dim: int = DEFAULT_CONTEXT_DIM,
             reward_model: RewardModelSpec | None = None) -> list[PolicyResult]:
    """Every estimator on every target; the reward model (``reward_model``, default ridge cross-fitted with
    ``seed``) is fitted once if any estimator needs it and ``estimated_rewards`` is not given.
    ``n_bootstrap=0``: point estimates only (no intervals: their bounds are NaN)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ReplayError(f"--bootstrap must be an integer >= 0, got {n_bootstrap!r}")
    if not 0 < alpha < 1:
        raise ReplayError(f"alpha must be in (0, 1), got {alpha!r}")
    built = {name: make_estimator(name) for name in estimators}
    if estimated_rewards is None and any(e.requires_estimated_rewards for e in built.values()):
        from bandits.ope.reward_model import estimated_rewards as fit_predict
        from stream.replay.dataset import context_matrix

        spec = reward_model or RewardModelSpec(seed=seed)
        context = context_matrix(log, context_dim) if spec.kind in ("ridge", "logistic") \
            else np.zeros((log.n_rounds, 0))
        try:
            estimated_rewards = fit_predict(log, context, spec)
        except BanditError as exc:
            raise ReplayError(f"--reward-model {spec.kind}: {exc}") from None
    results = []
    pending = []  # (result, estimator name, value, per-round terms)
    rows = np.arange(log.n_rounds)
    for target in targets:
        dist = target.action_dist
        if dist.shape != (log.n_rounds, log.n_actions):
            raise ReplayError(f"target {target.label!r} has action_dist of shape {dist.shape}; "
                              f"expected {(log.n_rounds, log.n_actions)}")
        try:
            warnings = diagnose(log.pscore, log.action, dist)  # validates dist too
            ess = effective_sample_size(dist[rows, log.action] / log.pscore)
        except BanditError as exc:
            raise ReplayError(f"target {target.label!r}: {exc}") from None
        result = PolicyResult(target.label, ess, {}, warnings=warnings, notes=list(target.notes),
                              fallbacks=target.fallback.count if target.fallback else 0)
        shared = _validated(log, dist, estimated_rewards)
        for name in estimators:
            estimator = built[name]
            try:
                if shared is not None:  # every array checked once for this target
                    value, terms = estimator.value_and_terms(
                        shared if estimator.requires_estimated_rewards else shared._replace(estimated_rewards=None))
                else:  # some array is bad: each estimator checks its own and says what is wrong for it
                    arrays = dict(reward=log.reward, action=log.action, pscore=log.pscore, action_dist=dist,
                                  estimated_rewards=estimated_rewards if estimator.requires_estimated_rewards
                                  else None)
                    value = estimator.estimate_policy_value(**arrays)
                    # The estimator's own per-round terms, so the shared bootstrap computes exactly its statistic.
                    terms = estimator._prepare(arrays["reward"], arrays["action"], arrays["pscore"], dist,
                                               arrays["estimated_rewards"])
            except BanditError as exc:
                result.estimates[name] = Estimate(math.nan, math.nan, math.nan, error=str(exc))
                continue
            result.estimates[name] = Estimate(value, math.nan, math.nan)  # keeps the estimator order
            pending.append((result, name, value, terms))
        results.append(result)
    if n_bootstrap == 0:  # point estimates only: the intervals stay NaN
        return results
    intervals = shared_intervals([p[3] for p in pending], n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
    for (result, name, value, _), (lower, upper) in zip(pending, intervals):
        result.estimates[name] = Estimate(value, lower, upper)
    return results


def _validated(log: BanditLog, dist: np.ndarray, estimated_rewards: np.ndarray | None) -> OPEInput | None:
    """The arrays of one target checked once for all its estimators (as each would check them), or None when
    a check fails."""
    try:
        return validate_input(reward=log.reward, action=log.action, pscore=log.pscore, action_dist=dist,
                              estimated_rewards=estimated_rewards)
    except BanditError:
        return None
