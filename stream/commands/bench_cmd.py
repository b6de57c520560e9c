"""eddy bench: the benchmarks (same as ``python -m benchmarks``)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from benchmarks.cli import add_arguments as bench_arguments

    bench_arguments(p)


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import run as bench_run

    return bench_run(args)
