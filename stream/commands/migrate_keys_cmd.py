"""eddy migrate-keys"""

from __future__ import annotations

import argparse
import sys

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    config.add_arguments(p, only=("redis_url", "topic_prefix"))


def run(args: argparse.Namespace) -> int:
    from stream.store import RedisStore

    s = config.from_args(args)
    try:
        counts = RedisStore.from_settings(s).migrate_untagged_keys()
    except ValueError as exc:
        print(f"eddy migrate-keys: {exc}", file=sys.stderr)
        return 2
    print(f"{s.topic_prefix}: renamed {counts['renamed']}, kept {counts['kept']} (a tagged key was already there), "
          f"left {counts['left']} (no known partition; decisions among them expire with the join window)")
    return 0
