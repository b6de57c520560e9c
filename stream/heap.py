"""Keep Python's full garbage collections off the hot path.

A worker holds a large heap of long-lived objects: the feature net, and about
ten GC-tracked objects per cached user model (100,000 users by default). CPython
collects its oldest generation whenever it has grown by a quarter, and such a
collection walks every tracked object while the batch loop waits: here it took
0.2-0.9 s with 4,096 users and the feature net (``python -m benchmarks.gcpause``
measures it), which is every answer's tail latency. None of those objects is
cyclic garbage (user models are freed by reference counting when the cache
evicts them).

With ``gc_freeze_s`` > 0 (off by default: measured side by side it made the tail worse,
docs/design.md says by how much) the worker, as latency-sensitive CPython services do:

* freezes the start-up heap (:func:`gc.freeze`: frozen objects are never scanned,
  and are still freed by reference counting when they die);
* turns automatic full collections off and runs a young collection then a freeze
  between batches every ``interval_s``, so objects that lived that long join the
  frozen heap instead of growing the one a full collection would walk;
* unfreezes and runs one full collection every ``full_every_s`` (default an hour),
  which frees any reference cycle that was frozen: the one pause left, rare and
  bounded, instead of one every time the cache grows by a quarter.

>>> clock = iter([0.0, 10.0, 40.0, 5000.0]).__next__
>>> heap = HeapKeeper(interval_s=30.0, full_every_s=3600.0, clock=clock)
>>> heap.start(); heap.maybe_run(), heap.maybe_run(), heap.maybe_run()
(None, 'young', 'full')
>>> heap.stop()
"""

from __future__ import annotations

import gc
import time
from typing import Callable

#: Full collections are left to :class:`HeapKeeper`: the automatic ones would need this many gen-1 runs.
_NEVER = 1 << 30


class HeapKeeper:
    """Freezes what survives, and collects the oldest generation on a schedule of its own.

    ``interval_s`` 0 leaves Python's collector as it is (every method is then a no-op).
    """

    def __init__(self, *, interval_s: float, full_every_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self._clock = clock
        self._saved: tuple[int, int, int] | None = None
        self._next = self._next_full = 0.0
        self.full_runs = 0
        self.young_runs = 0

    @property
    def on(self) -> bool:
        return self.interval_s > 0

    def start(self) -> None:
        """Collect and freeze the start-up heap (call it once the model is loaded)."""
        if not self.on:
            return
        now = self._clock()
        gen0, gen1, gen2 = gc.get_threshold()
        self._saved = (gen0, gen1, 10 if gen2 == _NEVER else gen2)  # another worker in this process set it
        gc.collect()
        gc.freeze()
        gc.set_threshold(gen0, gen1, _NEVER)
        self._next = now + self.interval_s
        self._next_full = now + self.full_every_s

    def maybe_run(self) -> str | None:
        """Between batches: ``"young"`` or ``"full"`` when it ran one, else None."""
        if not self.on or self._saved is None:
            return None
        now = self._clock()
        if now >= self._next_full:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._next_full = now + self.full_every_s
            self._next = now + self.interval_s
            self.full_runs += 1
            return "full"
        if now >= self._next:
            gc.collect(1)  # the young generations' cycles are freed before the survivors are frozen
            gc.freeze()
            self._next = now + self.interval_s
            self.young_runs += 1
            return "young"
        return None

    def stop(self) -> None:
        """Give the collector its own schedule back (a worker run in a thread of a larger process)."""
        if self._saved is not None:
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None
