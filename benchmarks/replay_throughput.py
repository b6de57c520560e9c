"""``eddy replay`` throughput from a DSJSON file, stage by stage, with the bootstrap's cost apart.

``python -m benchmarks.replay_throughput [--rounds N]`` writes N synthetic
joined decisions (:func:`stream.replay.synthetic.synthetic_rounds`: 30 users,
20 items) to a temporary DSJSON file,
then times what ``eddy replay --source FILE`` does with them: decode the
file, build the (n, K) arrays, resolve three targets (logging, greedy,
uniform), hash the context, fit the reward model (``--reward-model``, default
ridge, 2-fold cross-fitted), and compute five estimators (ips, snips, dm, dr,
sndr) for every target without a bootstrap; then the shared 1000-sample
bootstrap on its own. Each stage is the best of ``--repeat`` runs. Writes
``benchmarks/results/replay-throughput-<timestamp>.json`` and prints a table
of seconds and decisions/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr")
TARGETS = ("logging", "greedy", "uniform")


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reward-model", default="ridge", choices=("constant", "per-action", "ridge", "logistic"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    from bandits.ope import make_estimator
    from bandits.ope.bootstrap import shared_intervals
    from bandits.ope.reward_model import RewardModelSpec, estimated_rewards
    from stream.replay.dataset import BanditLog, context_matrix
    from stream.replay.dsjson import read_dsjson, write_dsjson
    from stream.replay.evaluate import resolve_target
    from stream.replay.synthetic import synthetic_rounds
    from stream.replay.targets import parse_target

    rounds, _ = synthetic_rounds(args.rounds, seed=0)
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.dsjson"
        write_dsjson(rounds, path)
        size = path.stat().st_size
        stages["decode DSJSON"], read = best_of(args.repeat, lambda: read_dsjson(path))
    stages["arrays"], log = best_of(args.repeat, lambda: BanditLog.from_rounds(read))
    stages["3 targets"], targets = best_of(
        args.repeat, lambda: [resolve_target(parse_target(t), log) for t in TARGETS])
    stages["hashed context"], x = best_of(args.repeat, lambda: context_matrix(log.rounds))
    spec = RewardModelSpec(kind=args.reward_model)
    stages[f"reward model ({args.reward_model}, cross-fitted)"], q = best_of(
        args.repeat, lambda: estimated_rewards(log, x, spec))
    estimators = [make_estimator(e) for e in ESTIMATORS]

    def estimate() -> list:
        terms = []
        for t in targets:
            for e in estimators:
                er = q if e.requires_estimated_rewards else None
                e.estimate_policy_value(reward=log.reward, action=log.action, pscore=log.pscore,
                                        action_dist=t.action_dist, estimated_rewards=er)
                terms.append(e._prepare(log.reward, log.action, log.pscore, t.action_dist, er))
        return terms

    stages["5 estimators x 3 targets"], terms = best_of(args.repeat, estimate)
    end_to_end = sum(stages.values())
    bootstrap_s, _ = best_of(1, lambda: shared_intervals(terms, n_bootstrap=1000, alpha=0.05, seed=0))
    n = log.n_rounds
    print(f"{'stage':<40} {'seconds':>8} {'decisions/s':>12}")
    for name, s in stages.items():
        print(f"{name:<40} {s:>8.3f} {n / s:>12,.0f}")
    print(f"{'end to end, no bootstrap':<40} {end_to_end:>8.3f} {n / end_to_end:>12,.0f}")
    print(f"{'bootstrap, 1000 samples, 15 estimates':<40} {bootstrap_s:>8.3f} {n / bootstrap_s:>12,.0f}")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out = Path(args.output) if args.output else RESULTS / f"replay-throughput-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python -m benchmarks.replay_throughput " + " ".join(argv or []),
        "rounds": n, "n_actions": log.n_actions, "dsjson_bytes": size, "repeat": args.repeat,
        "stages_s": stages, "end_to_end_s": end_to_end, "end_to_end_decisions_per_s": n / end_to_end,
        "bootstrap_1000_s": bootstrap_s, "python": platform.python_version(),
        "load_average": list(__import__("os").getloadavg()),
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
