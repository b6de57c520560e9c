"""Keep Python's full garbage collections off the hot path, and time every pause.

A worker holds a large heap of long-lived objects: the feature net and its libraries
(about 375,000 GC-tracked objects before any user), and about ten per cached user model
(100,000 users by default). CPython collects its oldest generation whenever it has grown
by a quarter, and such a collection walks every tracked object while the batch loop
waits: 111 ms with 1,000 users cached, 254 ms with 100,000 (``python -m
benchmarks.gcpause``), which lands in every answer's tail latency. None of those objects
is cyclic garbage: user models are freed by reference counting when the cache evicts them.

:class:`HeapKeeper` has three modes (``gc_freeze_start``, ``gc_freeze_s``):

* **off**: Python's collector as it is;
* **start-up freeze** (the default): once the model is loaded, collect once and
  :func:`gc.freeze` the heap, so no later collection walks the feature net and its
  libraries (frozen objects are still freed by reference counting when they die); the
  collector keeps its own schedule for everything allocated later, and every
  ``full_every_s`` (an hour) one unfrozen full collection frees any cycle that died
  frozen (a hot-swapped net's, say): one pause an hour, not one whenever gen 2 grows;
* **periodic freeze** (``gc_freeze_s`` > 0, an experiment, off): as above, and
  automatic full collections are turned off; every ``interval_s`` between batches a
  young collection runs and its survivors are frozen too.

:class:`GcPauses` times every collection (:data:`gc.callbacks`), by generation, for the
worker's metrics: what the collector costs the batch loop is measured, not guessed.

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
    """Freezes the start-up heap (and, periodically, what survives), and runs the full collection that
    frees frozen cycles on a schedule of its own.

    ``freeze_start`` False and ``interval_s`` 0 leave Python's collector as it is (every method is then a no-op).
    """

    def __init__(self, *, interval_s: float, full_every_s: float = 3600.0, freeze_start: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self.freeze_start = freeze_start
        self._clock = clock
        self._saved: tuple[int, int, int] | None = None
        self._started = False
        self._next = self._next_full = 0.0
        self.full_runs = 0
        self.young_runs = 0

    @classmethod
    def from_settings(cls, settings) -> "HeapKeeper":
        """The keeper a worker runs: ``gc_freeze_start``, ``gc_freeze_s`` and ``gc_full_s``."""
        return cls(interval_s=settings.gc_freeze_s, full_every_s=settings.gc_full_s,
                   freeze_start=settings.gc_freeze_start)

    @property
    def on(self) -> bool:
        return self.freeze_start or self.periodic

    @property
    def periodic(self) -> bool:
        return self.interval_s > 0

    def start(self) -> None:
        """Collect and freeze the start-up heap (call it once the model is loaded)."""
        if not self.on:
            return
        now = self._clock()
        gc.collect()
        gc.freeze()
        if self.periodic:
            gen0, gen1, gen2 = gc.get_threshold()
            self._saved = (gen0, gen1, 10 if gen2 == _NEVER else gen2)  # another worker in this process set it
            gc.set_threshold(gen0, gen1, _NEVER)
        self._started = True
        self._next = now + self.interval_s
        self._next_full = now + self.full_every_s

    def maybe_run(self) -> str | None:
        """Between batches: ``"young"`` or ``"full"`` when it ran one, else None."""
        if not self._started:
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
        if self.periodic and now >= self._next:
            gc.collect(1)  # the young generations' cycles are freed before the survivors are frozen
            gc.freeze()
            self._next = now + self.interval_s
            self.young_runs += 1
            return "young"
        return None

    def stop(self) -> None:
        """Give the collector its own schedule back (a worker run in a thread of a larger process).

        The start-up freeze stays: unfreezing would only hand the next worker's start a full
        collection of the whole heap to redo.
        """
        if self._saved is not None:
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None
        self._started = False


class GcPauses:
    """Times every garbage collection of this process and hands ``(generation, seconds)`` to ``observe``.

    Collections run in whichever thread allocates, never two at once, so one start time does.
    A callback costs about a microsecond, and gen-0 collections run a few hundred times a second
    under load.

    >>> seen = []
    >>> pauses = GcPauses(lambda gen, s: seen.append(gen))
    >>> pauses.start(); _ = gc.collect(1); pauses.stop()
    >>> seen
    [1]
    >>> pauses.longest_ms >= 0 and pauses.counts[1] == 1
    True
    """

    def __init__(self, observe: Callable[[int, float], None], *, clock: Callable[[], float] = time.perf_counter):
        self._observe = observe
        self._clock = clock
        self._t0 = 0.0
        self.counts = [0, 0, 0]
        self.longest_ms = 0.0

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = self._clock()
            return
        seconds = self._clock() - self._t0
        generation = info["generation"]
        self.counts[generation] += 1
        self.longest_ms = max(self.longest_ms, seconds * 1000)
        self._observe(generation, seconds)
