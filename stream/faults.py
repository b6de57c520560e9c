"""Test-only fault injection: off unless the ``EDDY_FAULT`` environment variable names a point.

Tests reach the windows a timing gamble rarely hits:

* ``crash_after_redis_commit``: exit (code 86) right after Redis committed a
  batch that applied feedback, before its Kafka transaction: Redis is ahead of
  Kafka, the batch is read again, and the applied-markers must re-emit its
  outputs without learning twice.
* ``crash_before_learner_commit``: the learner role exits (code 86) just before
  its first snapshot commit, with examples learned: they must be learned again, once.
* ``stop_before_redis_commit``: SIGSTOP this process just before it commits a
  batch that applied feedback, so that another worker can take its partitions;
  after SIGCONT its commit must be fenced.

Each fires once per process.
"""

from __future__ import annotations

import os
import signal

_POINT = os.environ.get("EDDY_FAULT", "")
_fired = False


def at(point: str, *, applies_feedback: bool) -> None:
    global _fired
    if not _POINT or _fired or point != _POINT or not applies_feedback:
        return
    _fired = True
    if point in ("crash_after_redis_commit", "crash_before_learner_commit"):
        os._exit(86)
    if point == "stop_before_redis_commit":
        os.kill(os.getpid(), signal.SIGSTOP)
