"""eddy learner"""

from __future__ import annotations

import argparse

from stream import config
from stream.argtypes import positive_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-seconds", type=positive_float, default=None, help="stop after this long (default: run until SIGTERM)")
    config.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    settings = config.from_args(args)
    from stream.learner import PolicyLearner

    counts = PolicyLearner(settings).run(max_seconds=args.max_seconds)
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0
