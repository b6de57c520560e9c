"""The worker's batch sizes over a run: Clipper's adaptive (AIMD) limit and the mean batch, second by second.

Each worker publishes its figures to Redis every second (``eddy stats``): ``batch_limit``, the
AIMD limit now, and ``batches`` / ``batch_records``, the count and sum of its batch-size
histogram. :class:`BatchWatch` reads them on a thread while a system runs; the mean batch of an
interval is the records over the batches that interval added, over every worker instance.
The report shows each step's mean batch and limit, and plots both against time with the offered
rate (:func:`benchmarks.plots.batch_sizes`): under light load each query is its own batch, and
near saturation the batch grows until one batch's compute nears ``batch_slo_ms``.

>>> samples = [{"t": 0.0, "limit": {"a": 32}, "batches": 10, "records": 10},
...            {"t": 1.0, "limit": {"a": 32}, "batches": 20, "records": 40},
...            {"t": 2.0, "limit": {"a": 24}, "batches": 20, "records": 40}]
>>> [(p["t"], p["mean_batch"], p["limit"]) for p in intervals(samples)]
[(1.0, 3.0, 32), (2.0, None, 24)]
>>> window(intervals(samples), 0.5, 2.0)
{'mean_batch': 3.0, 'batches': 10, 'limit_min': 24, 'limit_max': 32}
"""

from __future__ import annotations

import threading
import time

from stream.errors import StoreUnavailable

INTERVAL_S = 1.0  # the workers publish once a second: reading faster sees the same figures twice


def intervals(samples: list[dict]) -> list[dict]:
    """Consecutive readings as intervals: ``t`` (the later reading's unix time), the batches and
    records the interval added, their mean (None without a batch), and the AIMD limit at its end
    (the largest over instances). A counter that went down (a worker restarted) starts afresh."""
    out = []
    for before, after in zip(samples, samples[1:]):
        batches, records = after["batches"] - before["batches"], after["records"] - before["records"]
        if batches < 0 or records < 0:
            batches, records = after["batches"], after["records"]
        out.append({"t": after["t"], "batches": batches, "records": records,
                    "mean_batch": round(records / batches, 2) if batches else None,
                    "limit": max(after["limit"].values(), default=None)})
    return out


def window(points: list[dict], t0: float, t1: float) -> dict:
    """The mean batch and the limit's range over the intervals that ended between unix times ``t0`` and ``t1``."""
    inside = [p for p in points if t0 <= p["t"] <= t1]
    batches, records = sum(p["batches"] for p in inside), sum(p["records"] for p in inside)
    limits = [p["limit"] for p in inside if p["limit"] is not None]
    return {"mean_batch": round(records / batches, 2) if batches else None, "batches": batches,
            "limit_min": min(limits, default=None), "limit_max": max(limits, default=None)}


class BatchWatch:
    """``w = BatchWatch(store, group, instances); w.start()``, the run, ``w.stop()``; then :meth:`timeline`
    and :meth:`step`. Reads the ``instances``' figures by key, one round trip a second: scanning Redis for
    them (``eddy stats``) walks every key of a run and took CPU from the system measured."""

    def __init__(self, store, group: str, instances: list[str], *, interval_s: float = INTERVAL_S):
        self._store = store
        self._group = group
        self._instances = list(instances)
        self._interval_s = interval_s
        self._samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-watch", daemon=True)
        self.misses = 0  # readings Redis did not answer (the timeline has a gap there)
        self.error: str | None = None  # why the watch stopped early (the report says so beside its table)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                stats = self._store.process_figures(self._group, self._instances)
            except StoreUnavailable:
                self.misses += 1
                continue
            except Exception as exc:  # a refusal, a bug: the timeline ends here, and says why
                self.error = f"{type(exc).__name__}: {exc}"
                return
            figures = {i: st for i, st in stats.items() if "batches" in st}
            if not figures:
                continue  # no worker has published yet
            sample = {"t": time.time(), "limit": {i: st.get("batch_limit", 0) for i, st in figures.items()},
                      "batches": sum(st["batches"] for st in figures.values()),
                      "records": sum(st["batch_records"] for st in figures.values())}
            if self._samples and sample["batches"] == self._samples[-1]["batches"]:
                continue  # not published since (or idle): the next change closes a longer interval
            self._samples.append(sample)

    def timeline(self) -> list[dict]:
        return intervals(self._samples)

    def step(self, t0: float, t1: float) -> dict:
        return window(self.timeline(), t0, t1)
