"""``eddy``: the command line. One verb per job.

The verb table names each verb's module; a module is imported only when its
verb runs or its ``--help`` is asked, so ``eddy --help`` lists every verb
without importing any (it answers at once). Bad input ends in one line on
stderr, never a traceback: argparse errors and :class:`EddyError` from a verb
exit 2; an unreachable Kafka or Redis exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stream.argtypes import OneLineParser

VERBS = {
    # verb: (module, one-line help)
    "worker": ("stream.commands.worker_cmd", "run a worker: queries -> predictions, feedback -> learning"),
    "learner": ("stream.commands.learner_cmd",
                "train the learning policy (vw) for every worker from the outcomes topic (policy_learner=role)"),
    "produce": ("stream.commands.produce_cmd", "produce queries and feedback from a JSONL file or the simulator"),
    "tail": ("stream.commands.tail_cmd", "follow predictions, model updates (or any Eddy topic) and pretty-print them"),
    "stats": ("stream.commands.stats_cmd", "show each worker's counters (consumed = processed + dead-lettered)"),
    "migrate-keys": ("stream.commands.migrate_keys_cmd",
                     "rename Redis keys from the layout before hash tags (upgrade; workers stopped)"),
    "topics": ("stream.commands.topics_cmd", "create Eddy's topics (idempotent) and list them"),
    "train": ("stream.commands.train_cmd", "train a feature net offline and register it"),
    "models": ("stream.commands.models_cmd", "list / show / promote / rollback feature-net versions; shadow: served versions' online error"),
    "monitor": ("stream.commands.monitor_cmd", "windowed reward, error, join and dead-letter figures (faust), for Prometheus"),
    "retrain": ("stream.commands.retrain_cmd", "watch the online loss and retrain the feature net when it degrades"),
    "export": ("stream.commands.export_cmd", "export the decision log as VW DSJSON or Open Bandit Pipeline arrays"),
    "apprentice": ("stream.commands.apprentice_cmd",
                   "apprentice mode: status, evaluate (switch to the learned policy if it is better), revert"),
    "replay": ("stream.commands.replay_cmd", "off-policy evaluation (and --learn) over the decision log"),
    "demo": ("stream.commands.demo_cmd", "the whole loop live on MovieLens-100K, with a comparison report"),
    "bench": ("stream.commands.bench_cmd", "benchmarks through real Kafka, side by side with baselines"),
}


class _LazyVerbs(argparse._SubParsersAction):
    """Adds a verb's arguments (importing its module) only when that verb is parsed."""

    def __call__(self, parser, namespace, values, option_string=None):
        sub = self._name_parser_map.get(values[0])
        if sub is not None and not getattr(sub, "_eddy_loaded", True):
            _load_arguments(sub)
        super().__call__(parser, namespace, values, option_string)


def _load_arguments(sub: argparse.ArgumentParser) -> None:
    sub._eddy_loaded = True
    module = sub.get_default("_module")
    try:
        importlib.import_module(module).add_arguments(sub)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        sub.set_defaults(_missing=True)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="eddy",
        description="Eddy: streaming online learning over Apache Kafka. "
        "Settings come from flags, then EDDY_* environment variables, then defaults for the local stack.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, librdkafka's log included")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", action=_LazyVerbs)
    for verb, (module, help_) in VERBS.items():
        p = sub.add_parser(verb, help=help_, description=help_)
        p.set_defaults(_module=module)
        p._eddy_loaded = False
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    if not args.verb:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # librdkafka's own log (connection retries, ~200 lines for a wrong address) only with -v:
    # what went wrong reaches the user as one line from the error below.
    logging.getLogger("eddy.librdkafka").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    if getattr(args, "_missing", False):
        print(f"eddy {args.verb}: not available in this build", file=sys.stderr)
        return 2
    from confluent_kafka import KafkaException
    from redis.exceptions import AuthenticationError as RedisAuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from features.errors import EddyError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except EddyError as exc:  # a bad input (2), or Kafka / Redis unreachable (1: an outage, not a mistake)
        print(f"eddy {args.verb}: {_one_line(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, ConnectionError) else 2
    except RedisAuthenticationError as exc:  # a ConnectionError to redis-py; a setting to fix here
        print(f"eddy {args.verb}: Redis refused the credentials: {_one_line(exc)} (check EDDY_REDIS_USERNAME and "
              "EDDY_REDIS_PASSWORD[_FILE])", file=sys.stderr)
        return 2
    except (RedisConnectionError, RedisTimeoutError) as exc:
        print(f"eddy {args.verb}: Redis did not answer (start it with: deploy/stack up): {_one_line(exc)}",
              file=sys.stderr)
        return 1
    except RedisError as exc:  # e.g. "DB index is out of range" for a --redis-url this server has no db of
        print(f"eddy {args.verb}: Redis: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        print(f"eddy {args.verb}: Kafka: {_one_line(err.str() if hasattr(err, 'str') else err)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the verb reads or writes (an output directory that cannot be made, ...)
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"eddy {args.verb}: cannot use{where}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
