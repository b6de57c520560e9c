"""Replay / off-policy evaluation throughput.

* Estimators: every estimator of :mod:`bandits.ope` on a synthetic log of
  ``n`` logged decisions (K actions) with a known ground truth: decisions/s
  of ``estimate_policy_value`` and of a bootstrap ``estimate_interval``.
* Reading the log: decisions/s of reading a benchmarked system's
  ``decisions`` topic from Kafka with :func:`stream.logread.read_slice` (the
  reader replay uses) and decoding each record into a typed
  :class:`stream.events.Decision`.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from bandits.ope import make_estimator

SPECS = ("ips", "snips", "dm", "dr", "sndr", "switch-dr:lambda=100", "dros:lambda=100", "sg-ips:lambda=0.1",
         "sg-dr:lambda=0.1")
from bandits.ope.synthetic import make_synthetic_log, policy_value
from stream import events
from stream.config import Settings
from stream.logread import read_slice


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def estimators(n_rounds: int, n_actions: int = 10, *, n_bootstrap: int = 100, seed: int = 0) -> dict:
    log = make_synthetic_log(n_rounds=n_rounds, n_actions=n_actions, seed=seed)
    rng = np.random.default_rng(seed + 1)
    # The target: epsilon-greedy (0.1) on a noisy reward model.
    q_hat = np.clip(log.expected_reward + rng.normal(0, 0.05, log.expected_reward.shape), 0, 1)
    target = np.full(q_hat.shape, 0.1 / n_actions)
    target[np.arange(n_rounds), q_hat.argmax(axis=1)] += 0.9
    args = dict(reward=log.reward, action=log.action, pscore=log.pscore, action_dist=target, estimated_rewards=q_hat)
    truth = policy_value(target, log.expected_reward)
    out = {"n_rounds": n_rounds, "n_actions": n_actions, "n_bootstrap_samples": n_bootstrap,
           "true_value": round(truth, 5), "estimators": {}}
    for name in SPECS:
        est = make_estimator(name)
        value = est.estimate_policy_value(**args)
        t_point = _best_of(lambda: est.estimate_policy_value(**args), 3)
        t_boot = _best_of(lambda: est.estimate_interval(**args, n_bootstrap_samples=n_bootstrap, random_state=0), 1)
        out["estimators"][name] = {
            "estimate": round(value, 5), "abs_error": round(abs(value - truth), 5),
            "seconds": round(t_point, 5), "decisions_per_s": round(n_rounds / t_point),
            "bootstrap_seconds": round(t_boot, 4), "bootstrap_decisions_per_s": round(n_rounds / t_boot),
        }
    return out


def kafka_log(settings: Settings) -> dict:
    """Read and decode every record of ``settings``' decisions topic."""
    topic = settings.topic("decisions")
    t0 = time.perf_counter()
    n = nbytes = 0
    for _, _, _, value in read_slice(settings, topic):
        events.decode_decision(value)
        n += 1
        nbytes += len(value or b"")
    dt = time.perf_counter() - t0
    return {"topic_system": settings.topic_prefix, "decisions": n, "seconds": round(dt, 3),
            "decisions_per_s": round(n / dt) if dt > 0 and n else None,
            "mean_record_bytes": round(nbytes / n) if n else None,
            "replay_module": "present" if importlib.util.find_spec("stream.replay") else "absent",
            "note": "read_slice + events.decode_decision (the input side of replay); the replay "
                    "module itself is not timed here"}


def kafka_replay(settings: Settings, *, n_bootstrap: int) -> dict:
    """``stream.replay.pipeline.replay`` end to end on the decisions + outcomes topics (greedy and uniform targets).

    The replay package is developed alongside the benchmarks: if its interface
    differs from the one used here, the error is recorded instead of failing the run.
    """
    try:
        from stream.replay.pipeline import ReplayOptions, replay
        from stream.replay.slicing import SliceRequest
        from stream.replay.targets import parse_target

        req = SliceRequest("kafka", None, None, None, None, "outcomes", 0.0)
        options = ReplayOptions(targets=(parse_target("greedy"), parse_target("uniform")),
                                n_bootstrap=n_bootstrap, progress=False)
        t0 = time.perf_counter()
        report = replay(settings, req, options).report
        total = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - recorded in the results, named in BENCHMARKS.md
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:400]}
    n = report["n_rounds"]
    return {"status": "ok", "n_rounds": n, "n_actions": report["n_actions"], "targets": ["greedy", "uniform"],
            "estimators": report["estimators"], "bootstrap_samples": n_bootstrap,
            "timing_s": {k: round(v, 3) for k, v in report["timing_s"].items()}, "total_s": round(total, 3),
            "decisions_per_s_end_to_end": round(n / total) if total > 0 else None,
            "decisions_per_s_estimation": round(report["decisions_per_s"]) if report.get("decisions_per_s") else None}
