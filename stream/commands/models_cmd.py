"""eddy models list|show|promote|rollback|shadow|challengers"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    # The settings flags work before and after the action (eddy models list --topic-prefix x.)
    only = ("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir")
    common = config.settings_parent(only)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[common], help="every registered version, the live one marked")
    show = sub.add_parser("show", parents=[common], help="one version's metadata and metrics")
    show.add_argument("version")
    promote = sub.add_parser("promote", parents=[common], help="make a version live; workers switch without restart")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true",
                         help="promote even if the version's shadow error is worse than the live one's")
    sub.add_parser("shadow", parents=[common],
                   help="each served version's online error (model selection) and its selector weight")
    sub.add_parser("rollback", parents=[common], help="make the previously live version live again")
    chal = sub.add_parser("challengers", parents=[common],
                          help="the versions every worker serves beside the live one, changed at runtime")
    chal.add_argument("what", choices=("show", "set", "clear"), help="show | set SPEC | clear")
    chal.add_argument("spec", nargs="?", default=None, help="set: v2,v3 (registered versions) or last:K")
    chal.add_argument("--selection", choices=("shadow", "exp3", "exp4"), default=None,
                      help="set: how they are served (default: each worker's --selection)")
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
    elif args.action == "shadow":
        print_shadow(s, registry.live())
    elif args.action == "promote":
        refusal = promote_gate(s, registry.live(), args.version, force=args.force)
        if refusal:
            print(refusal, file=sys.stderr)
            return 1
        old = registry.promote(args.version)
        publish_swap(s, old, args.version)
        print(f"live: {args.version} (was {old or 'none'})")
    elif args.action == "challengers":
        return _challengers(registry, args)
    elif args.action == "rollback":
        old, new = registry.rollback()
        publish_swap(s, old, new)
        print(f"live: {new} (rolled back from {old})")
    return 0


def _challengers(registry, args: argparse.Namespace) -> int:
    from stream.challengers import challenger_versions
    from stream.registry import RegistryError

    if args.what == "show":
        record = registry.challengers()
        if record is None:
            print("not set: each worker serves its --challengers setting")
        else:
            how = record["selection"] or "each worker's --selection"
            print(f"challengers: {record['spec'] or 'none'} (selection: {how})")
        return 0
    spec = "" if args.what == "clear" else args.spec
    if spec is None or (args.what == "set" and not spec.strip()):
        raise config.ConfigError("eddy models challengers set needs SPEC: v2,v3 or last:K (clear: none)")
    try:
        versions = challenger_versions(registry, spec, registry.live() or "")
    except (RegistryError, ValueError) as exc:
        raise config.ConfigError(f"challengers {spec!r}: {exc}") from None
    registry.set_challengers(spec.strip(), args.selection)
    print(f"challengers: {', '.join(versions) or 'none'} (workers switch within a second)")
    return 0


def _shadow(s: config.Settings) -> tuple[dict[str, tuple[int, float]], dict[str, float]]:
    from stream.engine.selection import mean_weights, merged_errors
    from stream.store import RedisStore

    store = RedisStore.from_settings(s)
    try:
        blobs = list(store.selections(s.partitions).values())
    finally:
        store.close()
    return merged_errors(blobs), mean_weights(blobs)


def _rmse(n: int, sse: float) -> float:
    return math.sqrt(sse / n) if n else float("nan")


def print_shadow(s: config.Settings, live: str | None) -> None:
    errors, weights = _shadow(s)
    if not errors:
        print("no shadow errors yet (serve challengers: eddy worker --challengers v2 [--selection exp3])")
        return
    print(f"  {'version':10s} {'feedbacks':>10s} {'rmse':>8s} {'weight':>7s}")
    for v, (n, sse) in sorted(errors.items()):
        mark = "*" if v == live else " "
        w = weights.get(v)
        print(f"{mark} {v:10s} {n:10d} {_rmse(n, sse):8.4f} {'' if w is None else f'{w:7.3f}'}")


def promote_gate(s: config.Settings, live: str | None, version: str, *, force: bool) -> str | None:
    """Why promoting ``version`` is refused (its shadow error is worse than the live one's), or None.

    Without shadow errors for both, or with ``force``, it warns (on stderr) and lets the promotion go."""
    if live is None or live == version:
        return None
    errors, _ = _shadow(s)
    if version not in errors or live not in errors:
        print(f"warning: no shadow error for {version if version not in errors else live} "
              f"(serve it as a challenger: eddy worker --challengers {version}); promoting without the gate",
              file=sys.stderr)
        return None
    (n_c, sse_c), (n_l, sse_l) = errors[version], errors[live]
    cand, cur = _rmse(n_c, sse_c), _rmse(n_l, sse_l)
    figures = f"shadow rmse {cand:.4f} over {n_c} feedbacks against the live {live}'s {cur:.4f} over {n_l}"
    if cand <= cur:
        print(f"{version}: {figures}", file=sys.stderr)
        return None
    if force:
        print(f"warning: {version} is worse ({figures}); promoting anyway (--force)", file=sys.stderr)
        return None
    return f"eddy models promote: refused, {version} is worse than the live version ({figures}); --force overrides"
