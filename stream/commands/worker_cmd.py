"""eddy worker"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal

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
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how an operator (or a test)
    # sees where a worker that stopped making progress is waiting, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if settings.kafka_debug:  # asked for: librdkafka's debug log goes to the worker's log
        logging.getLogger("eddy.librdkafka").setLevel(logging.DEBUG)
    if args.processes > 1:
        from stream.processes import run_processes

        return run_processes(settings, args.processes, max_seconds=args.max_seconds)
    from stream.worker import Worker

    stats = Worker(settings).run(max_seconds=args.max_seconds)
    print(" ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    return 0
