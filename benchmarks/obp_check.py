"""Eddy's off-policy estimators against Open Bandit Pipeline 0.5.7, on OBP's own SyntheticBanditDataset.

``python -m benchmarks.obp_check`` makes a virtualenv of its own
(``.cache/obp-venv``, git-ignored; never a dependency of Eddy) with
``pip install --no-deps --ignore-requires-python obp==0.5.7`` plus the
packages obp imports (numpy, pandas, scikit-learn, scipy, tqdm, matplotlib,
seaborn, pyyaml). In that venv, a child process draws a logged dataset from
``obp.dataset.SyntheticBanditDataset``, fits OBP's ``RegressionModel``
(logistic regression, 3-fold cross-fitting), and computes every OBP estimator
Eddy also has on three target policies. Back here, Eddy's estimators get the
*same* arrays, OBP's estimated rewards included (the reward model is then the
same), and every pair must agree to ``--tolerance`` (default 1e-9). Results go
to ``benchmarks/results/obp-check-<timestamp>.json`` and a table on stdout.

obp 0.5.7 pins Python < 3.11 and torch 1.12, but imports torch only for its
neural policy learners, which the check does not use: the child installs an
empty stand-in ``torch`` module when the real one is missing, so the
estimators run as published, unmodified. When obp cannot be installed (no
network, no PyPI) the check prints ``SKIPPED: <why>`` and exits 0;
``--require`` makes that exit 1.

Exit status: 0 when every pair agrees (or skipped), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VENV = ROOT / ".cache" / "obp-venv"
OBP = "obp==0.5.7"
OBP_IMPORTS = ("numpy", "pandas", "scikit-learn", "scipy", "tqdm", "matplotlib", "seaborn", "pyyaml")

# Eddy spec -> (OBP class name, OBP constructor arguments); lambda values are the hyperparameters compared.
PAIRS = {
    "ips": ("InverseProbabilityWeighting", {}),
    "ips:max_weight=2": ("InverseProbabilityWeighting", {"lambda_": 2.0}),
    "snips": ("SelfNormalizedInverseProbabilityWeighting", {}),
    "dm": ("DirectMethod", {}),
    "dr": ("DoublyRobust", {}),
    "sndr": ("SelfNormalizedDoublyRobust", {}),
    "switch-dr:lambda=5": ("SwitchDoublyRobust", {"lambda_": 5.0}),
    "switch-dr:lambda=inf": ("SwitchDoublyRobust", {"lambda_": float("inf")}),
    "dros:lambda=10": ("DoublyRobustWithShrinkage", {"lambda_": 10.0}),
    "dros:lambda=1000": ("DoublyRobustWithShrinkage", {"lambda_": 1000.0}),
    "sg-ips:lambda=0.1": ("SubGaussianInverseProbabilityWeighting", {"lambda_": 0.1}),
    "sg-dr:lambda=0.1": ("SubGaussianDoublyRobust", {"lambda_": 0.1}),
}

TORCH_STAND_IN = r'''
import sys, types, importlib.util
if importlib.util.find_spec("torch") is None:  # obp imports torch for its neural learners only
    class _Anything(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            if name[0].islower():  # a submodule or function: torch.utils.data, torch.float32, nn.functional
                return _Anything(self.__name__ + "." + name)
            return type(name, (), {"__init__": lambda self, *a, **k: None})  # nn.Module, torch.Tensor
    for name in ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils", "torch.utils.data"):
        sys.modules[name] = _Anything(name)
    sys.modules["torch"].nn = sys.modules["torch.nn"]
    sys.modules["torch.nn"].functional = sys.modules["torch.nn.functional"]
'''

CHILD = TORCH_STAND_IN + r'''
import json
import numpy as np
import obp
from obp import ope
from obp.dataset import SyntheticBanditDataset, logistic_reward_function, linear_behavior_policy
from sklearn.linear_model import LogisticRegression

args = json.loads(sys.argv[1])
ds = SyntheticBanditDataset(n_actions=args["n_actions"], dim_context=5, reward_type="binary",
                            reward_function=logistic_reward_function, behavior_policy_function=linear_behavior_policy,
                            random_state=args["seed"])
fb = ds.obtain_batch_bandit_feedback(n_rounds=args["n_rounds"])
n, k = fb["n_rounds"], fb["n_actions"]
q_true = fb["expected_reward"]
targets = {}
for temperature in (0.05, 0.2):  # softmax over the true expected reward: good targets, far from the logger
    z = q_true / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    targets[f"softmax(q, t={temperature})"] = p / p.sum(axis=1, keepdims=True)
rng = np.random.default_rng(args["seed"])
targets["dirichlet(0.5)"] = rng.dirichlet(np.full(k, 0.5), size=n)
model = ope.RegressionModel(n_actions=k, len_list=1, base_model=LogisticRegression(C=100, max_iter=1000,
                                                                                      random_state=args["seed"]))
q_hat = model.fit_predict(context=fb["context"], action=fb["action"], reward=fb["reward"], n_folds=3,
                          random_state=args["seed"])
out = {"obp_version": obp.__version__, "n_rounds": int(n), "n_actions": int(k), "values": {}, "truth": {}}
for label, dist in targets.items():
    ad = dist[:, :, None]
    out["truth"][label] = float(ds.calc_ground_truth_policy_value(expected_reward=q_true, action_dist=ad))
    out["values"][label] = {}
    for spec, (cls, kw) in args["pairs"].items():
        est = getattr(ope, cls)(**kw)
        out["values"][label][spec] = float(est.estimate_policy_value(
            reward=fb["reward"], action=fb["action"], position=np.zeros(n, dtype=int), pscore=fb["pscore"],
            action_dist=ad, estimated_rewards_by_reg_model=q_hat))
np.savez(args["arrays"], reward=fb["reward"], action=fb["action"], pscore=fb["pscore"], q_hat=q_hat[:, :, 0],
         **{f"target{i}": d for i, d in enumerate(targets.values())})
print(json.dumps(out))
'''


def ensure_venv() -> tuple[Path | None, str]:
    """The venv's python, or None and why it could not be made."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", TORCH_STAND_IN + "import obp, sklearn, pandas, scipy"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, "reused"
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for extra in (["--no-deps", "--ignore-requires-python", OBP], list(OBP_IMPORTS)):
            done = subprocess.run(pip + extra, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                return None, f"pip install {' '.join(extra)} failed: {done.stderr.strip().splitlines()[-1:]}"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not build {VENV}: {exc}"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None, "obp installed but does not import"
    return python, "created"


def add_check_args(parser: argparse.ArgumentParser, results_name: str) -> None:
    """The options both OBP checks take (seed, tolerance, --require, --output)."""
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--tolerance", type=float, default=1e-9)
    parser.add_argument("--require", action="store_true", help="exit 1 instead of skipping when obp is unavailable")
    parser.add_argument("--output", default=None, help=f"default: benchmarks/results/{results_name}-<timestamp>.json")


def run_obp_side(python: Path, child: str, child_args: dict[str, Any],
                 timeout: int) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Run ``child`` in the OBP venv with ``child_args`` plus ``arrays``, the .npz path it writes: its last
    stdout line (JSON) and those arrays; None, with its stderr printed, when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays_path = Path(tmp) / "arrays.npz"
        done = subprocess.run([str(python), "-c", child, json.dumps({**child_args, "arrays": str(arrays_path)})],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            print("FAILED: the obp side did not run")
            return None
        obp_side = json.loads(done.stdout.strip().splitlines()[-1])
        with np.load(arrays_path) as data:
            return obp_side, {k: data[k] for k in data.files}


def verdict(rows: list[dict[str, Any]], worst: float, tolerance: float, obp_version: str, how: str) -> bool:
    """Print whether every estimate agrees within ``tolerance``; True if so."""
    ok = worst <= tolerance
    print(f"{'PASS' if ok else 'FAIL'}: largest |Eddy - OBP| {worst:.2e} over {len(rows)} estimates "
          f"(tolerance {tolerance:g}); obp {obp_version}, venv {how}")
    return ok


def write_result(results_name: str, argv: list[str] | None, output: str | None, record: dict[str, Any]) -> None:
    """``record`` as ``benchmarks/results/<results_name>-<timestamp>.json`` (or ``output``), with the command line."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = Path(output) if output else RESULTS / f"{results_name}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    module = "benchmarks." + results_name.replace("-", "_")
    path.write_text(json.dumps({
        "command": f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:]),
        **record, "python": platform.python_version(),
    }, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def eddy_values(arrays: dict[str, np.ndarray], dist: np.ndarray) -> dict[str, float]:
    from bandits.ope import make_estimator

    out = {}
    for spec in PAIRS:
        est = make_estimator(spec)
        out[spec] = est.estimate_policy_value(
            reward=arrays["reward"], action=arrays["action"], pscore=arrays["pscore"], action_dist=dist,
            estimated_rewards=arrays["q_hat"] if est.requires_estimated_rewards else None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.obp_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--actions", type=int, default=10)
    add_check_args(parser, "obp-check")
    args = parser.parse_args(argv)
    python, how = ensure_venv()
    if python is None:
        print(f"SKIPPED: the OBP check needs {OBP} in {VENV}: {how}")
        return 1 if args.require else 0
    ran = run_obp_side(python, CHILD, {"n_rounds": args.rounds, "n_actions": args.actions, "seed": args.seed,
                                       "pairs": PAIRS}, timeout=900)
    if ran is None:
        return 1
    obp_side, arrays = ran
    rows, worst = [], 0.0
    for i, (label, values) in enumerate(obp_side["values"].items()):
        ours = eddy_values(arrays, arrays[f"target{i}"])
        for spec, theirs in values.items():
            diff = abs(ours[spec] - theirs)
            worst = max(worst, diff)
            rows.append({"target": label, "estimator": spec, "obp": theirs, "eddy": ours[spec], "abs_diff": diff,
                         "truth": obp_side["truth"][label]})
    width = max(len(r["target"]) for r in rows)
    print(f"{'target':<{width}}  {'estimator':<22}  {'OBP':>12}  {'Eddy':>12}  {'|diff|':>9}  {'truth':>8}")
    for r in rows:
        print(f"{r['target']:<{width}}  {r['estimator']:<22}  {r['obp']:>12.8f}  {r['eddy']:>12.8f}  "
              f"{r['abs_diff']:>9.1e}  {r['truth']:>8.5f}")
    ok = verdict(rows, worst, args.tolerance, obp_side["obp_version"], how)
    write_result("obp-check", argv, args.output, {
        "obp_version": obp_side["obp_version"], "dataset": "obp.dataset.SyntheticBanditDataset(reward_type=binary, "
        "logistic_reward_function, linear_behavior_policy, dim_context=5)", "n_rounds": obp_side["n_rounds"],
        "n_actions": obp_side["n_actions"], "seed": args.seed,
        "reward_model": "OBP RegressionModel(LogisticRegression(C=100)), 3-fold cross-fitted, fed to both",
        "tolerance": args.tolerance, "max_abs_diff": worst, "pass": ok, "rows": rows,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
