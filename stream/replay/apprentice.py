"""Apprentice mode's promote rule: estimate the learned policy on the logged apprentice decisions.

The rounds are the joined decisions a deployment served in apprentice mode
(``policy == "apprentice"``: the default action, propensity 1). The default's
value is their observed average reward (on-policy, no estimate needed). The
learned policy's value is estimated off-policy with :func:`stream.replay.evaluate.evaluate`
(bootstrap intervals), by default with DR, and the rule is:

    switch to the learned policy  iff  lower bound of its interval > the default's value
                                       and at least ``min_rounds`` rounds were logged.

Why DR (or DM) and not IPS: a propensity-1 log of a deterministic default
holds no exploration, so IPS and SNIPS only see the rounds where the learned
policy happens to pick the default (weight ``pi(a_default | x) / 1``) and say
nothing about the other actions. The reward model (ridge per item on the
hashed context, cross-fitted) carries what the log knows about the other
items, which it can learn only because the default action differs between
rounds (another item, context or user); DR adds IPS's correction on the
rounds where the two agree. Its interval is only as good as that reward
model: with a default that is always the same item, nothing about the others
is observed and no estimate is trustworthy (the report says how many distinct
items the default covered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.config import Settings
from stream.engine.apprentice import POLICY
from stream.replay.dataset import BanditLog
from stream.replay.errors import ReplayError
from stream.replay.evaluate import evaluate, resolve_target
from stream.replay.slicing import SliceRequest
from stream.replay.source import load_rounds
from stream.replay.targets import parse_target

__all__ = ["Verdict", "estimate_learned", "decide"]


@dataclass(frozen=True)
class Verdict:
    """The rule's inputs and answer; ``to_summary`` is what the switch's record carries."""

    target: str
    estimator: str
    n_rounds: int
    distinct_default_items: int
    default_value: float
    value: float
    lower: float
    upper: float
    alpha: float
    min_rounds: int
    agreement: float  # share of rounds where the learned policy's favourite is the default action
    estimates: dict[str, dict[str, float | None]]

    @property
    def promote(self) -> bool:
        return self.n_rounds >= self.min_rounds and math.isfinite(self.lower) and self.lower > self.default_value

    @property
    def reason(self) -> str:
        if self.n_rounds < self.min_rounds:
            return f"only {self.n_rounds} apprentice decisions joined; the rule needs {self.min_rounds}"
        verb = "beats" if self.promote else "does not beat"
        return (f"{self.estimator} lower bound {self.lower:.4f} of {self.target} {verb} the default's "
                f"{self.default_value:.4f} ({self.n_rounds} rounds, {100 * (1 - self.alpha):g}% interval)")

    def to_summary(self) -> dict[str, float]:
        return {"n_rounds": float(self.n_rounds), "default_value": self.default_value, "value": self.value,
                "lower": self.lower, "upper": self.upper, "alpha": self.alpha, "agreement": self.agreement}

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "estimator": self.estimator, "n_rounds": self.n_rounds,
                "distinct_default_items": self.distinct_default_items, "default_value": self.default_value,
                "value": self.value, "lower": self.lower, "upper": self.upper, "alpha": self.alpha,
                "min_rounds": self.min_rounds, "agreement": self.agreement, "promote": self.promote,
                "reason": self.reason, "estimates": self.estimates}


def decide(log: BanditLog, action_dist: np.ndarray, *, target: str, estimator: str = "dr",
           also: tuple[str, ...] = ("dm", "ips", "snips"), n_bootstrap: int = 1000, alpha: float = 0.05,
           seed: int = 0, min_rounds: int = 200) -> Verdict:
    """The promote rule on an apprentice log and the learned policy's (n, K) action distribution."""
    from stream.replay.evaluate import Target

    names = tuple(dict.fromkeys((estimator, *also)))
    (result,) = evaluate(log, [Target(target, action_dist)], estimators=names, n_bootstrap=n_bootstrap, alpha=alpha,
                         seed=seed)
    main = result.estimates[estimator]
    if main.error:
        raise ReplayError(f"{estimator} could not estimate {target!r}: {main.error}")
    rows = np.arange(log.n_rounds)
    chosen_items = log.item_ids[rows, log.action]
    return Verdict(
        target=target, estimator=estimator, n_rounds=log.n_rounds,
        distinct_default_items=int(np.unique(chosen_items).size), default_value=log.on_policy_value(),
        value=main.value, lower=main.lower, upper=main.upper, alpha=alpha, min_rounds=min_rounds,
        agreement=float(np.mean(np.argmax(action_dist, axis=1) == log.action)),
        estimates={k: e.to_dict() for k, e in result.estimates.items()},
    )


def estimate_learned(settings: Settings, req: SliceRequest, *, target: str | None = None, estimator: str = "dr",
                     n_bootstrap: int = 1000, alpha: float = 0.05, seed: int = 0, min_rounds: int = 200,
                     progress: bool = False) -> Verdict:
    """Read the slice, keep the apprentice decisions, and apply :func:`decide` to ``target``
    (a replay ``--policy`` spec; default: the deployment's own policy on the logged scores)."""
    spec = parse_target(target or settings.policy)
    loaded = load_rounds(settings, req, progress=progress)
    rounds = [r for r in loaded.rounds if r.decision.policy == POLICY]
    if not rounds:
        raise ReplayError(f"no joined apprentice decisions in {settings.topic('decisions')} "
                          f"({len(loaded.rounds)} joined decisions of other policies)")
    log = BanditLog.from_rounds(rounds)
    dist = resolve_target(spec, log, settings).action_dist
    return decide(log, dist, target=spec.label, estimator=estimator, n_bootstrap=n_bootstrap, alpha=alpha,
                  seed=seed, min_rounds=min_rounds)
