"""eddy models list|show|promote|rollback"""

from __future__ import annotations

import argparse
import json
import time

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    # The settings flags work before and after the action (eddy models list --topic-prefix x.)
    only = ("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir")
    common = argparse.ArgumentParser(add_help=False)
    config.add_arguments(common, only=only)
    for action in common._actions:  # unset after the action must not erase a value given before it
        action.default = argparse.SUPPRESS
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[common], help="every registered version, the live one marked")
    show = sub.add_parser("show", parents=[common], help="one version's metadata and metrics")
    show.add_argument("version")
    promote = sub.add_parser("promote", parents=[common], help="make a version live; workers switch without restart")
    promote.add_argument("version")
    sub.add_parser("rollback", parents=[common], help="make the previously live version live again")
    config.add_arguments(p, only=only)


def run(args: argparse.Namespace) -> int:
    from stream.store import open_registry
    from stream.training import publish_swap

    s = config.from_args(args)
    registry = open_registry(s)
    if args.action == "list":
        live = registry.live()
        rows = registry.versions()
        if not rows:
            print("no versions registered (eddy train ...)")
        for e in rows:
            m = e.get("metrics", {})
            mark = "*" if e["version"] == live else " "
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("created_at", 0)))
            print(f"{mark} {e['version']:8s} {created}  val_rmse={m.get('val_rmse', float('nan')):.4f}  {e.get('source', '')}")
    elif args.action == "show":
        print(json.dumps(registry.show(args.version), indent=2))
    elif args.action == "promote":
        old = registry.promote(args.version)
        publish_swap(s, old, args.version)
        print(f"live: {args.version} (was {old or 'none'})")
    elif args.action == "rollback":
        old, new = registry.rollback()
        publish_swap(s, old, new)
        print(f"live: {new} (rolled back from {old})")
    return 0
