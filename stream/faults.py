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
* ``commit_response_lost``: report a Kafka transaction with predictions as
  failed after it committed (a response lost, a timeout after the commit
  marker): the worker must find its offsets committed and not re-read the span,
  which would log its decisions twice.

Each fires once per process.
"""

from __future__ import annotations

import os
import signal

_POINT = os.environ.get("EDDY_FAULT", "")
_fired = False


def at(point: str, *, applies_feedback: bool) -> bool:
    """Fire ``point`` if it is the one named and ``applies_feedback`` holds; True when the caller
    must act (points whose fault is the caller's, such as an exception to raise)."""
    global _fired
    if not _POINT or _fired or point != _POINT or not applies_feedback:
        return False
    _fired = True
    if point in ("crash_after_redis_commit", "crash_before_learner_commit"):
        os._exit(86)
    if point == "stop_before_redis_commit":
        os.kill(os.getpid(), signal.SIGSTOP)
    return point == "commit_response_lost"
