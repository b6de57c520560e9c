"""Eddy's slate estimators against Open Bandit Pipeline 0.5.7, on OBP's own SyntheticSlateBanditDataset.

``python -m benchmarks.obp_slate_check`` uses the virtualenv of :mod:`benchmarks.obp_check`
(``.cache/obp-venv``, made on first use; never a dependency of Eddy). In it, a child process
draws slates from ``obp.dataset.SyntheticSlateBanditDataset`` (Plackett-Luce over a linear
behaviour policy's logits: what the worker's slates are, :mod:`stream.engine.slates`), takes two
evaluation policies (softmax over other logits), and computes OBP's ``SlateStandardIPS``
(``pscore`` = the slate's probability) and ``SlateRewardInteractionIPS`` (``pscore_cascade`` = the
prefix's probability), and the ground truth by OBP's enumeration. Back here, Eddy's
``slate-ips`` and ``slate-rips`` (:mod:`bandits.ope.slate`) get each position's probability given
the items above it, as the worker logs them: ``pscore_cascade[j] / pscore_cascade[j-1]``. Every
pair must agree to ``--tolerance`` (default 1e-9). Results go to
``benchmarks/results/obp-slate-check-<timestamp>.json`` and a table on stdout.

When obp cannot be installed the check prints ``SKIPPED: <why>`` and exits 0 (``--require``: 1).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.obp_check import (OBP, TORCH_STAND_IN, VENV, add_check_args, ensure_venv, run_obp_side, verdict,
                                  write_result)

CHILD = TORCH_STAND_IN + r'''
import json
import numpy as np
import obp
from obp.dataset import SyntheticSlateBanditDataset, linear_behavior_policy_logit, logistic_reward_function
from obp.ope import SlateRewardInteractionIPS, SlateStandardIPS

args = json.loads(sys.argv[1])
out = {"obp_version": obp.__version__, "worlds": []}
arrays = {}
for w, structure in enumerate(args["structures"]):
    ds = SyntheticSlateBanditDataset(n_unique_action=args["n_actions"], len_list=args["len_list"], dim_context=2,
                                     reward_type="binary", reward_structure=structure,
                                     base_reward_function=logistic_reward_function,
                                     behavior_policy_function=linear_behavior_policy_logit,
                                     random_state=args["seed"] + w)
    fb = ds.obtain_batch_bandit_feedback(n_rounds=args["n_rounds"], return_pscore_item_position=False)
    rng = np.random.default_rng(args["seed"] + w)
    world = {"reward_structure": structure, "targets": {}}
    arrays[f"w{w}_slate_id"], arrays[f"w{w}_position"] = fb["slate_id"], fb["position"]
    arrays[f"w{w}_reward"], arrays[f"w{w}_pscore_cascade"] = fb["reward"], fb["pscore_cascade"]
    for t, scale in enumerate((0.5, 2.0)):
        logit = rng.normal(scale=scale, size=(fb["n_rounds"], args["n_actions"]))
        pscore, _, cascade = ds.obtain_pscore_given_evaluation_policy_logit(
            action=fb["action"], evaluation_policy_logit_=logit, return_pscore_item_position=False)
        label = f"softmax(normal logits, sd={scale})"
        world["targets"][label] = {
            "slate-ips": float(SlateStandardIPS(len_list=args["len_list"]).estimate_policy_value(
                slate_id=fb["slate_id"], reward=fb["reward"], position=fb["position"], pscore=fb["pscore"],
                evaluation_policy_pscore=pscore)),
            "slate-rips": float(SlateRewardInteractionIPS(len_list=args["len_list"]).estimate_policy_value(
                slate_id=fb["slate_id"], reward=fb["reward"], position=fb["position"],
                pscore_cascade=fb["pscore_cascade"], evaluation_policy_pscore_cascade=cascade)),
            "truth": float(ds.calc_ground_truth_policy_value(context=fb["context"], evaluation_policy_logit_=logit)),
        }
        arrays[f"w{w}_t{t}_cascade"] = cascade
    out["worlds"].append(world)
np.savez(args["arrays"], **arrays)
print(json.dumps(out))
'''


def conditional(cascade: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Each position's probability given the positions above it, from the prefixes' probabilities (rows in
    (slate, position) order, as OBP writes them)."""
    previous = np.concatenate([[1.0], cascade[:-1]])  # the row above: the same slate's previous position
    return np.where(position == 0, cascade, cascade / previous)


def main(argv: list[str] | None = None) -> int:
    from bandits.ope.slate import SLATE_ESTIMATORS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.obp_slate_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2_000, help="slates per world (default 2,000)")
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--len-list", type=int, default=3)
    add_check_args(parser, "obp-slate-check")
    args = parser.parse_args(argv)
    python, how = ensure_venv()
    if python is None:
        print(f"SKIPPED: the OBP slate check needs {OBP} in {VENV}: {how}")
        return 1 if args.require else 0
    structures = ["independent", "cascade_additive", "standard_additive"]
    ran = run_obp_side(python, CHILD, {"n_rounds": args.rounds, "n_actions": args.actions, "len_list": args.len_list,
                                       "seed": args.seed, "structures": structures}, timeout=1800)
    if ran is None:
        return 1
    obp_side, arrays = ran
    rows, worst = [], 0.0
    for w, world in enumerate(obp_side["worlds"]):
        position = arrays[f"w{w}_position"]
        logged = conditional(arrays[f"w{w}_pscore_cascade"], position)
        for t, (label, values) in enumerate(world["targets"].items()):
            target = conditional(arrays[f"w{w}_t{t}_cascade"], position)
            for name, cls in SLATE_ESTIMATORS.items():
                ours = cls().estimate_policy_value(slate_id=arrays[f"w{w}_slate_id"], position=position,
                                                   reward=arrays[f"w{w}_reward"], position_pscore=logged,
                                                   evaluation_position_pscore=target)
                diff = abs(ours - values[name])
                worst = max(worst, diff)
                rows.append({"reward_structure": world["reward_structure"], "target": label, "estimator": name,
                             "obp": values[name], "eddy": ours, "abs_diff": diff, "truth": values["truth"]})
    print(f"{'reward structure':<18} {'target':<30} {'estimator':<10} {'OBP':>11} {'Eddy':>11} {'|diff|':>8} "
          f"{'truth':>8}")
    for r in rows:
        print(f"{r['reward_structure']:<18} {r['target']:<30} {r['estimator']:<10} {r['obp']:>11.7f} "
              f"{r['eddy']:>11.7f} {r['abs_diff']:>8.1e} {r['truth']:>8.5f}")
    ok = verdict(rows, worst, args.tolerance, obp_side["obp_version"], how)
    write_result("obp-slate-check", argv, args.output, {
        "obp_version": obp_side["obp_version"],
        "dataset": f"obp.dataset.SyntheticSlateBanditDataset(n_unique_action={args.actions}, "
                   f"len_list={args.len_list}, dim_context=2, reward_type=binary, linear_behavior_policy_logit)",
        "n_slates": args.rounds, "seed": args.seed, "tolerance": args.tolerance, "max_abs_diff": worst, "pass": ok,
        "rows": rows,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
