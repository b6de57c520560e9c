"""eddy worker"""

from __future__ import annotations

import argparse

from stream import config
from stream.argtypes import positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-seconds", type=positive_float, default=None, help="stop after this long (default: run until SIGTERM)")
    p.add_argument("--processes", type=positive_int, default=1, metavar="N",
                   help="run N worker processes (group members with instance ids <instance-id>-p0...); "
                        "at most the partition count do work (default 1)")
    config.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    settings = config.from_args(args)
    if args.processes > 1:
        from stream.processes import run_processes

        return run_processes(settings, args.processes, max_seconds=args.max_seconds)
    from stream.worker import Worker

    stats = Worker(settings).run(max_seconds=args.max_seconds)
    print(" ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    return 0
