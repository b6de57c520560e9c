"""eddy bench [ARGS...]: hands over to ``python -m benchmarks ARGS...`` (the same process, replaced).

The benchmarks import the product everywhere; the product never imports
them. So this verb parses nothing: every argument, ``--help`` included,
goes to the harness, which runs as its own program.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    # No prefix character of ours: "--quick" or "-h" is then a plain word, collected for the harness.
    p.prefix_chars = "\0"
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments of python -m benchmarks (see python -m benchmarks --help)")


def command(bench_args: list[str]) -> list[str]:
    """The command line the verb becomes.

    >>> command(["--quick"])[1:]
    ['-m', 'benchmarks', '--quick']
    """
    return [sys.executable, "-m", "benchmarks", *bench_args]


def run(args: argparse.Namespace) -> int:
    argv = command(args.bench_args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # returns only by raising OSError
    return 1
