"""eddy topics"""

from __future__ import annotations

import argparse

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    config.add_arguments(p, only=("bootstrap", "topic_prefix", "partitions"))


def run(args: argparse.Namespace) -> int:
    from stream.kafka_io import ensure_topics

    for t in ensure_topics(config.from_args(args)):
        print(t)
    return 0
