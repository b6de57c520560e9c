"""eddy replay [--policy SPEC ...] [--learn] [log slice options]

Off-policy evaluation over the decision log (Kafka, or a DSJSON file from
``eddy export`` or any other producer): IPS, SNIPS, DM, DR, SNDR, Switch-DR,
DRos and sub-Gaussian IPS/DR estimates of each target policy, with a choice of
reward model, bootstrap intervals, effective sample sizes and diagnostics; a
table on stdout, a JSON report and a PNG plot. A target that falls back to
uniform on any decision is an error unless ``--allow-fallback``.
``--learn`` trains a VW policy on the earlier part of the slice and
evaluates it on the later part. See docs/replay.md.
"""

from __future__ import annotations

import argparse
import sys

from stream import config
from stream.argtypes import fraction, non_negative_int, positive_int
from bandits.ope.reward_model import FITS, REWARD_MODELS
from stream.replay.slicing import add_slice_arguments, slice_request

DEFAULT_TARGETS = ("logging", "greedy", "uniform")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", dest="targets", action="append", default=None, metavar="SPEC",
                   help="target policy, repeatable: logging | uniform | a policy spec over the logged scores "
                        "(greedy, epsilon_greedy:epsilon=0.05, softmax:temperature=0.2) | fn=<version>:<spec> "
                        "(feature net + users' CURRENT weights) | logged=<version>:<spec> (that version's scores as logged by "
                        "model selection) | vw=<model file> | table=<file.json> "
                        f"(default: {' '.join(DEFAULT_TARGETS)})")
    p.add_argument("--allow-fallback", type=fraction, nargs="?", const=1.0, default=0.0, metavar="FRACTION",
                   help="a target that cannot score a decision (e.g. a table with no entry for its context "
                        "key) falls back to uniform there; replay refuses that by default (0) and names the "
                        "first such decision (file:line). Allow up to FRACTION of the decisions (alone: all)")
    p.add_argument("--estimators", default="ips,snips,dm,dr,sndr", metavar="SPECS",
                   help="comma-separated (';' when a spec has several parameters), each name[:key=value]: "
                        "ips[:max_weight=W] (weights clipped at W), snips, dm, dr, sndr, "
                        "switch-dr:lambda=L (DR, correction dropped where the weight > L), "
                        "dros:lambda=L (DR with weights shrunk to L w/(w^2+L)), "
                        "sg-ips:lambda=L and sg-dr:lambda=L (sub-Gaussian weights w/(1-L+L w), L in [0,1]); "
                        "as Open Bandit Pipeline's estimators of those names (default: ips,snips,dm,dr,sndr)")
    p.add_argument("--len-list", type=positive_int, default=None, metavar="K",
                   help="slates: evaluate positions 0..K-1 only (default: every position in the log). Each "
                        "position is a round, as in Open Bandit Pipeline's len_list: values are the expected "
                        "reward per position, averaged over positions (docs/replay.md, Positions)")
    p.add_argument("--bootstrap", dest="n_bootstrap", type=non_negative_int, default=1000, metavar="N",
                   help="bootstrap samples per interval (default 1000; 0: point estimates only, no intervals)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level of the intervals (default 0.05)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap and the cross-fitting folds")
    model = p.add_argument_group("reward model (dm, dr, sndr, switch-dr, dros, sg-dr)")
    model.add_argument("--reward-model", choices=REWARD_MODELS, default="ridge",
                       help="constant: the mean reward; per-action: each item's mean, shrunk to the mean; "
                            "ridge: per-item L2 least squares; logistic: per-item L2 logistic regression "
                            "(binary rewards). ridge and logistic read the hashed context through a logistic "
                            "link scaled to the reward range, so predictions stay in range with no clip "
                            "(default ridge)")
    model.add_argument("--fit", dest="reward_fit", choices=FITS, default="cross",
                       help="cross: each fold predicted by a model fitted on the others (default); "
                            "in-sample: one model fitted on every round (as OBP's n_folds=1)")
    model.add_argument("--folds", dest="reward_folds", type=positive_int, default=2, metavar="N",
                       help="folds of --fit cross (>= 2, default 2)")
    model.add_argument("--reward-l2", type=float, default=1.0, metavar="L2",
                       help="L2 penalty of ridge/logistic; pseudo-rounds at the mean of per-action (default 1)")
    model.add_argument("--context-dim", type=positive_int, default=64, metavar="D",
                       help="hashed context columns of ridge/logistic (default 64)")
    p.add_argument("--output-json", default=None, metavar="PATH", help="default: reports/replay-<timestamp>.json")
    p.add_argument("--plot", default=None, metavar="PATH", help="default: reports/replay-<timestamp>.png")
    learn = p.add_argument_group("offline learning (--learn)")
    learn.add_argument("--learn", action="store_true",
                       help="train a VW --cb_explore_adf policy on the earlier slice, evaluate it on the later one")
    learn.add_argument("--train-until", type=float, default=0.7, metavar="X",
                       help="fraction of decisions by time (0..1), or an epoch timestamp (default 0.7)")
    learn.add_argument("--cb-type", choices=("dr", "ips"), default="dr", help="VW cost estimator (default dr)")
    learn.add_argument("--learn-epsilon", type=float, default=0.05, help="exploration of the learned policy (default 0.05)")
    learn.add_argument("--learn-passes", type=positive_int, default=1, help="passes over the training slice (default 1)")
    learn.add_argument("--vw-args", default="", metavar="ARGS", help="extra VW arguments, e.g. \"--l2 1e-6 -l 0.1\"")
    learn.add_argument("--save-model", default=None, metavar="PATH", help="write the learned VW model here")
    add_slice_arguments(p)
    # --bootstrap is the bootstrap sample count here, so Kafka's servers get --bootstrap-servers
    p.add_argument("--bootstrap-servers", dest="bootstrap", default=None, metavar="HOST:PORT",
                   help="Kafka bootstrap servers (default: env EDDY_BOOTSTRAP, else 127.0.0.1:9092)")
    config.add_arguments(p, only=("redis_url", "topic_prefix", "model_dir", "join_window_s", "learner", "partitions"))


def reward_model_spec(args: argparse.Namespace):
    """The --reward-model, --fit, --folds, --reward-l2 flags as a RewardModelSpec; ConfigError names a bad one."""
    from bandits.errors import BanditError
    from bandits.ope.reward_model import RewardModelSpec

    if args.reward_fit == "cross" and args.reward_folds < 2:
        raise config.ConfigError(f"--folds must be >= 2 with --fit cross, got {args.reward_folds}")
    try:
        return RewardModelSpec(kind=args.reward_model, fit=args.reward_fit, n_folds=max(2, args.reward_folds),
                               l2=args.reward_l2, seed=args.seed)
    except BanditError as exc:
        raise config.ConfigError(f"--reward-l2: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import shlex
    import time

    from stream.replay.evaluate import parse_estimators
    from stream.replay.pipeline import LearnOptions, ReplayOptions, learn_and_replay, replay
    from stream.replay.report import default_output, format_table, sig, write_json, write_plot
    from stream.replay.targets import parse_target

    settings = config.from_args(args)
    req = slice_request(args)
    if not 0 < args.alpha < 1:
        raise config.ConfigError(f"--alpha must be in (0, 1), got {args.alpha}")
    reward_model = reward_model_spec(args)
    given = args.targets or (["logging", "greedy"] if args.learn else list(DEFAULT_TARGETS))
    options = ReplayOptions(
        targets=tuple(parse_target(t) for t in given),
        estimators=tuple(parse_estimators(args.estimators)),
        n_bootstrap=args.n_bootstrap,
        alpha=args.alpha,
        seed=args.seed,
        context_dim=args.context_dim,
        reward_model=reward_model,
        allow_fallback=args.allow_fallback,
        len_list=args.len_list,
    )
    if args.learn:
        from stream.replay.pipeline import check_train_until
        from stream.replay.vw_target import check_vw_args, vw_args

        try:
            extra = shlex.split(args.vw_args)
        except ValueError as exc:
            raise config.ConfigError(f"--vw-args {args.vw_args!r}: {exc}") from None
        command = vw_args(cb_type=args.cb_type, epsilon=args.learn_epsilon, seed=args.seed, extra=extra)
        check_vw_args(command)
        check_train_until(args.train_until)
        learn = LearnOptions(train_until=args.train_until, passes=args.learn_passes, save_model=args.save_model,
                             label=f"vw-learned(cb_type={args.cb_type})")
        outcome = learn_and_replay(settings, req, options, learn, command)
    else:
        outcome = replay(settings, req, options)
    report, results, log = outcome.report, outcome.results, outcome.log
    print(f"eddy replay: {outcome.extras['summary']}", file=sys.stderr)
    if args.learn:
        lr = report["learn"]
        print(f"learned on {lr['train_rounds']} decisions, evaluating on the later {lr['eval_rounds']}"
              + (f"; model saved to {lr['saved_model']}" if lr["saved_model"] else ""))
    if "positions" in report:
        pos = report["positions"]
        print(f"positions: {pos['len_list']} ({', '.join(map(str, pos['rounds_per_position']))} rounds); values are "
              "the expected reward per position, averaged over positions")
        slate = pos["slate_estimates"]
        print(f"slate estimates ({slate['value']}; {slate['slates']} complete slates, "
              f"{slate['incomplete_slates_dropped']} incomplete dropped)" + (f": {slate['error']}" if "error" in slate else ""))
        for label, values in slate["policies"].items():
            print(f"  {label}: " + ", ".join(
                f"{name} {sig(v['value'])}" + (f" [{sig(v['lower'])}, {sig(v['upper'])}]" if v.get("lower") is not None else "")
                for name, v in values.items()))
    print(format_table(results, on_policy_value=report["on_policy_value"], n_rounds=log.n_rounds, alpha=args.alpha))
    now = time.time()
    json_path = write_json(args.output_json or default_output("replay", "json", now=now), report)
    title = f"Off-policy estimates, {log.n_rounds} decisions" + (" (later slice)" if args.learn else "")
    plot_path = write_plot(args.plot or default_output("replay", "png", now=now), results,
                           on_policy_value=report["on_policy_value"], title=title)
    rate = report.get("decisions_per_s")
    print(f"wrote {json_path} and {plot_path}" + (f"  ({rate:,.0f} decisions/s of targets + estimation)" if rate else ""))
    return 0
