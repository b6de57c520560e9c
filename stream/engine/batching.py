"""Adaptive batching under a latency objective (Clipper's AIMD).

The worker takes whatever records have arrived, up to :attr:`AdaptiveBatchSize.limit`.
After each batch it reports how long the batch took; while batches stay under the
objective the limit grows additively, and a batch over it cuts the limit by a fraction. Only a
batch the limit bound (as large as the limit) moves it: a smaller batch that ran slow was slowed
by something other than its size (a collection, a busy core), and cutting the limit for it would
leave later full batches smaller than they need be, each paying the per-batch costs again.
Under light load batches are small anyway (each query is its own batch); under heavy
load the limit settles where one batch just fits the objective, so the oldest record of
a batch waits no longer than about one batch time.

Past the rate the worker can keep up with at that limit, records queue, and a record's wait
is the backlog ahead of it, not its batch's time: cutting the limit then only makes every
batch pay its fixed costs (two Redis round trips, a poll, a produce) for fewer records, and
the backlog drains slower. So a full batch that leaves at least another full batch waiting
(``waiting()``, asked only then) grows the limit whatever it took; once the worker has caught up, batches are as
small as what arrives, and the first full batch over the objective cuts the limit again.

>>> b = AdaptiveBatchSize(slo_ms=20.0, start=8, step=4, backoff=0.9, lowest=1, highest=64)
>>> b.observe(n=8, elapsed_ms=5.0); b.limit
12
>>> b.observe(n=12, elapsed_ms=30.0); b.limit
10
>>> b.observe(n=3, elapsed_ms=1.0); b.limit  # a batch smaller than the limit says nothing about it
10
>>> b.observe(n=3, elapsed_ms=50.0); b.limit  # slow, but not for its size
10
>>> b.observe(n=10, elapsed_ms=50.0, waiting=lambda: 500); b.limit  # a backlog: larger batches drain it sooner
14
"""

from __future__ import annotations

import math
from typing import Callable

from features.errors import EddyError


class AdaptiveBatchSize:
    """Additive increase, multiplicative decrease of the batch-size limit.

    Parameters
    ----------
    slo_ms
        The batch-latency objective.
    start, lowest, highest
        The first limit and the bounds it stays within.
    step
        Records added after a full batch under the objective.
    backoff
        Factor applied after a batch over the objective (Clipper uses 0.9).
    """

    def __init__(self, *, slo_ms: float, start: int = 32, step: int = 8, backoff: float = 0.9,
                 lowest: int = 1, highest: int = 1024):
        if not (math.isfinite(slo_ms) and slo_ms > 0):
            raise EddyError(f"slo_ms must be a finite number > 0, got {slo_ms!r}")
        if not 1 <= lowest <= highest:
            raise EddyError(f"need 1 <= lowest <= highest, got {lowest}, {highest}")
        if step < 1 or not 0 < backoff < 1:
            raise EddyError(f"need step >= 1 and 0 < backoff < 1, got {step}, {backoff}")
        self.slo_ms = slo_ms
        self.step = step
        self.backoff = backoff
        self.lowest = lowest
        self.highest = highest
        self.limit = min(highest, max(lowest, start))

    def observe(self, *, n: int, elapsed_ms: float, waiting: Callable[[], int] = lambda: 0) -> None:
        """Account for one batch of ``n`` records that took ``elapsed_ms``; ``waiting()``: the records
        waiting after it, asked only of a full batch over the objective."""
        if n < self.limit:
            return  # the limit did not bind this batch: its time says nothing about the limit
        if elapsed_ms > self.slo_ms and waiting() < self.limit:
            self.limit = max(self.lowest, min(self.limit - 1, int(self.limit * self.backoff)))
        else:
            self.limit = min(self.highest, self.limit + self.step)
