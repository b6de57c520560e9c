"""eddy stats"""

from __future__ import annotations

import argparse
from collections import Counter

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    config.add_arguments(p, only=("redis_url", "topic_prefix", "group"))


def reconcile(stats: dict[str, int]) -> tuple[int, int]:
    """(consumed, processed + dead-lettered): equal when nothing was lost."""
    from stream.engine import PROCESSED

    processed = sum(stats.get(k, 0) for k in PROCESSED)
    return stats.get("consumed", 0), processed + stats.get("dead_lettered", 0)


def run(args: argparse.Namespace) -> int:
    from stream.store import RedisStore

    s = config.from_args(args)
    store = RedisStore.from_settings(s)
    workers = store.read_stats(s.group)
    if not workers:
        print(f"no stats from group {s.group!r} under prefix {s.topic_prefix!r}")
        return 1
    for inst, st in sorted(workers.items()):
        consumed, accounted = reconcile(st)
        ok = "reconciles" if consumed == accounted else f"MISMATCH ({consumed} != {accounted})"
        print(f"{inst}: {ok}")
        for k, v in sorted(st.items()):
            print(f"  {k:32s} {v}")
    total: Counter[str] = Counter()
    for st in workers.values():
        total.update(st)
    consumed, accounted = reconcile(total)
    ok = "reconciles" if consumed == accounted else f"MISMATCH ({consumed} != {accounted})"
    print(f"all {len(workers)} workers: {ok} (consumed {consumed} = processed + dead-lettered {accounted})")
    for name, figures in sorted(store.learners(s.group).items()):  # policy_learner=role
        print(f"learner of policy {name}: " + " ".join(f"{k}={v}" for k, v in sorted(figures.items())))
    return 0 if consumed == accounted else 1
