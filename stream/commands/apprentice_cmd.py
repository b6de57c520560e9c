"""eddy apprentice status|evaluate|revert: apprentice mode's switch (docs/design.md, "Apprentice mode")."""

from __future__ import annotations

import argparse
import json
import sys
import time

from stream import config
from stream.argtypes import finite_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    from stream.replay.slicing import add_slice_arguments

    only = ("bootstrap", "redis_url", "topic_prefix", "partitions", "policy", "join_window_s", "apprentice")
    common = config.settings_parent(only)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("status", parents=[common], help="the policy served now and the last switches")
    ev = sub.add_parser("evaluate", parents=[common],
                        help="estimate the learned policy on the logged apprentice decisions; switch to it if the "
                             "lower bound of its interval beats the default's value")
    ev.add_argument("--target", default=None, metavar="SPEC",
                    help="the learned policy, as a replay --policy spec (default: the deployment's --policy on "
                         "the logged scores)")
    ev.add_argument("--estimator", default="dr", choices=("dr", "dm", "sndr", "ips", "snips"),
                    help="the estimator whose interval the rule uses (default dr: IPS sees only the rounds where "
                         "the learned policy agrees with the default)")
    ev.add_argument("--alpha", type=finite_float, default=0.05, help="1 - interval coverage (default 0.05)")
    ev.add_argument("--samples", dest="n_bootstrap", type=int, default=1000, metavar="N",
                    help="bootstrap samples of the interval (default 1000; --bootstrap is Kafka's servers)")
    ev.add_argument("--min-rounds", type=int, default=200, help="never switch on fewer decisions (default 200)")
    ev.add_argument("--dry-run", action="store_true", help="report only; never switch")
    ev.add_argument("--json", action="store_true", help="print the verdict as JSON")
    ev.add_argument("--watch", type=finite_float, default=None, metavar="SECONDS",
                    help="evaluate every SECONDS until the switch is made (a periodic promote rule)")
    add_slice_arguments(ev)
    rv = sub.add_parser("revert", parents=[common], help="serve the default action again (undo a switch)")
    rv.add_argument("--reason", default="", help="why, kept with the switch")
    config.add_arguments(p, only=only)


def _status(s, store) -> int:
    from stream.apprentice import history, read_switch, serves_default

    switch = read_switch(store)
    serving = "the default action" if serves_default(s, switch) else f"the learned policy ({s.policy})"
    mode = "on" if s.apprentice else "off (EDDY_APPRENTICE / --apprentice not set: the switch is ignored)"
    print(f"apprentice mode: {mode}; serving {serving}")
    for h in history(store, 10):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.ts))
        print(f"  {when}  {h.mode:8s} by {h.by}: {h.reason}")
    return 0


def _evaluate_once(args, s, store, req) -> bool:
    from stream.apprentice import flip, now_switch, read_switch
    from stream.replay.apprentice import estimate_learned
    from stream.store import open_registry

    verdict = estimate_learned(s, req, target=args.target, estimator=args.estimator, n_bootstrap=args.n_bootstrap,
                               alpha=args.alpha, seed=s.seed, min_rounds=args.min_rounds)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        print(f"default action: {verdict.default_value:.4f} observed on {verdict.n_rounds} rounds "
              f"({verdict.distinct_default_items} distinct items)")
        for name, e in verdict.estimates.items():
            lo, hi = e.get("lower"), e.get("upper")
            interval = f"[{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else "(no interval)"
            value = e.get("value")
            print(f"  {verdict.target} {name:6s} {value if value is None else format(value, '.4f')} {interval}")
        print(f"  learned policy's favourite is the default on {100 * verdict.agreement:.1f}% of the rounds")
        print(("switch: " if verdict.promote else "stay: ") + verdict.reason)
    current = read_switch(store)
    if not verdict.promote or args.dry_run or (current is not None and current.mode == "learned"):
        return verdict.promote
    fn = open_registry(s).live() or ""
    flip(s, store, now_switch("learned", "evaluate", verdict.reason, verdict.to_summary()), feature_net_version=fn)
    print("switched: workers serve the learned policy within ~1 s (eddy apprentice revert undoes it)")
    return True


def run(args: argparse.Namespace) -> int:
    from stream.replay.errors import ReplayError
    from stream.replay.slicing import slice_request
    from stream.store import RedisStore

    s = config.from_args(args)
    store = RedisStore.from_settings(s)
    if args.action == "status":
        return _status(s, store)
    if args.action == "revert":
        from stream.apprentice import flip, now_switch
        from stream.store import open_registry

        flip(s, store, now_switch("default", "revert", args.reason or "eddy apprentice revert"),
             feature_net_version=open_registry(s).live() or "")
        print("reverted: workers in apprentice mode serve the default action within ~1 s")
        return 0
    if args.n_bootstrap < 1 or args.min_rounds < 1 or not 0 < args.alpha < 1:
        raise config.ConfigError(f"--samples ({args.n_bootstrap}) and --min-rounds ({args.min_rounds}) must be "
                                 f">= 1 and --alpha ({args.alpha}) in (0, 1)")
    while True:
        try:
            if _evaluate_once(args, s, store, slice_request(args)) or args.watch is None:
                return 0
        except ReplayError as exc:
            if args.watch is None:
                raise
            print(f"not yet: {exc}", file=sys.stderr)
        time.sleep(args.watch)
