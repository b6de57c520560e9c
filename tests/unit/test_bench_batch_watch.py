"""The benchmark's batch watch (benchmarks/batch_watch.py) around its store reads: an outage is a gap,
anything else ends the timeline and says why (a silent stop read as a timeline cut short)."""

from __future__ import annotations

import time

import pytest

from benchmarks.batch_watch import BatchWatch
from stream.errors import StoreUnavailable

pytestmark = pytest.mark.unit


class Figures:
    """What process_figures answers, one reading at a time: a dict, or an exception to raise."""

    def __init__(self, *answers):
        self.answers = list(answers)

    def process_figures(self, group, instances):
        answer = self.answers.pop(0) if self.answers else {}
        if isinstance(answer, Exception):
            raise answer
        return answer


def figures(batches: int, records: int, limit: int = 32) -> dict:
    return {"w0": {"batches": batches, "batch_records": records, "batch_limit": limit}}


def run(store) -> BatchWatch:
    w = BatchWatch(store, "g", ["w0"], interval_s=0.01)
    w.start()
    time.sleep(0.3)
    w.stop()
    return w


def test_an_outage_is_a_gap_and_the_readings_around_it_make_one_interval():
    w = run(Figures(figures(1, 1), StoreUnavailable("down"), figures(5, 13)))
    assert w.misses == 1 and w.error is None
    assert [(p["batches"], p["mean_batch"]) for p in w.timeline()] == [(4, 3.0)]


def test_any_other_error_ends_the_watch_and_is_kept():
    w = run(Figures(figures(1, 1), figures(3, 5), ValueError("invalid literal for int()"), figures(9, 99)))
    assert w.error == "ValueError: invalid literal for int()"
    assert [p["batches"] for p in w.timeline()] == [2]
