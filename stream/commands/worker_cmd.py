"""eddy worker"""

from __future__ import annotations

import argparse

from stream import config
from stream.argtypes import positive_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-seconds", type=positive_float, default=None, help="stop after this long (default: run until SIGTERM)")
    config.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from stream.worker import Worker

    settings = config.from_args(args)
    stats = Worker(settings).run(max_seconds=args.max_seconds)
    print(" ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    return 0
