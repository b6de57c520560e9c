"""``eddy``: the command line. One verb per job; each verb's module is imported lazily
so ``eddy --help`` answers at once."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stream import config

VERBS = {
    # verb: (module, one-line help)
    "worker": ("stream.commands.worker_cmd", "run a worker: queries -> predictions, feedback -> learning"),
    "produce": ("stream.commands.produce_cmd", "produce queries and feedback from a JSONL file or the simulator"),
    "tail": ("stream.commands.tail_cmd", "follow predictions, model updates (or any Eddy topic) and pretty-print them"),
    "stats": ("stream.commands.stats_cmd", "show each worker's counters (consumed = processed + dead-lettered)"),
    "topics": ("stream.commands.topics_cmd", "create Eddy's topics (idempotent) and list them"),
    "train": ("stream.commands.train_cmd", "train a feature net offline and register it"),
    "models": ("stream.commands.models_cmd", "list / show / promote / rollback feature-net versions"),
    "retrain": ("stream.commands.retrain_cmd", "watch the online loss and retrain the feature net when it degrades"),
    "export": ("stream.commands.export_cmd", "export the decision log as VW DSJSON or Open Bandit Pipeline arrays"),
    "replay": ("stream.commands.replay_cmd", "off-policy evaluation (and --learn) over the decision log"),
    "demo": ("stream.commands.demo_cmd", "the whole loop live on MovieLens-100K, with a comparison report"),
    "bench": ("stream.commands.bench_cmd", "benchmarks through real Kafka, side by side with baselines"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eddy",
        description="Eddy: streaming online learning over Apache Kafka. "
        "Settings come from flags, then EDDY_* environment variables, then defaults for the local stack.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module, help_) in VERBS.items():
        p = sub.add_parser(verb, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "_missing", False):
        print(f"eddy {args.verb}: not available in this build", file=sys.stderr)
        return 2
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from features.errors import EddyError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except EddyError as exc:
        print(f"eddy {args.verb}: {exc}", file=sys.stderr)
        return 2
    except (RedisConnectionError, RedisTimeoutError) as exc:
        print(f"eddy {args.verb}: Redis did not answer (start it with: deploy/stack up): {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def settings_from(args: argparse.Namespace) -> config.Settings:
    return config.from_args(args)


if __name__ == "__main__":
    sys.exit(main())
