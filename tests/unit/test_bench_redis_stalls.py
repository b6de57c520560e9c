"""benchmarks.redis_watch: a step's Redis-stall cell in the report, with the AOF rewrites in it; a step's
latency timeline and the plot of the slow steps' tails."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.plots import tail_timeline
from benchmarks.redis_watch import RedisWatch, describe, step_stalls
from benchmarks.stats import timeline

pytestmark = pytest.mark.unit


def test_a_step_shows_its_longest_stall_and_its_kind():
    assert step_stalls({"aof-write": 11, "command": 166, "fork": 40}) == "166 (command)"
    assert step_stalls({}) == "-"  # watched, none of 10 ms or more
    assert step_stalls(None) == ""  # a run from before steps were told apart


def test_stalls_are_told_by_the_seconds_of_a_step():
    watch = RedisWatch(client=None)
    watch._history = {"command": [(100, 66), (104, 166), (110, 12)], "aof-write": [(104, 11), (120, 20)]}
    assert watch.stalls(103.2, 105.9) == {"command": 166, "aof-write": 11}
    assert watch.stalls(100.5, 100.9) == {"command": 66}  # the second it started in counts
    assert watch.stalls(111.0, 119.5) == {}


def test_a_step_shows_the_aof_rewrites_that_overlapped_it():
    assert step_stalls({"fork": 20}, [[0.7, 1.0], [9.2, 0.9]]) == "20 (fork); AOF rewrite 1.0 + 0.9 s"
    assert step_stalls({}, [[-0.4, 1.1]]) == "-; AOF rewrite 1.1 s"  # began before the step, ran into it
    assert step_stalls({}, []) == "-"


def test_rewrites_are_told_by_the_step_they_overlap():
    watch = RedisWatch(client=None)
    watch._rewrites.intervals = [(95.0, 96.0), (99.6, 100.8), (104.0, 105.1), (112.0, 113.0)]
    assert watch.rewrites(100.0, 110.0) == [[-0.4, 1.2], [4.0, 1.1]]
    assert watch.rewrites(106.0, 111.5) == []
    report = watch.report()
    assert report["aof_rewrites"] == {"count": 4, "seconds": 4.3}
    assert "AOF rewrites while it ran: 4 (4.3 s in all)." in describe({**report, "appendfsync": "no"})


def test_a_step_timeline_says_when_the_slow_answers_came():
    lat = np.full(2000, 5.0)
    lat[1500:1600] = 120.0  # 0.1 s of slow answers, 1.5 s into a 2 s step at 1,000/s
    lat[1900] = np.inf
    tl = timeline(lat, rate=1000.0, bin_s=0.1)
    assert tl["bin_s"] == 0.1 and len(tl["p50"]) == 20
    assert tl["p50"][15] == tl["max"][15] == 120.0
    assert max(tl["max"][:15] + tl["max"][16:]) == 5.0
    assert tl["unanswered"][19] == 1 and sum(tl["unanswered"]) == 1


def test_the_tail_plot_draws_only_the_steps_past_the_objective(tmp_path):
    def step(rate, p99, saturated=False):
        return {"rate": rate, "duration_s": 2.0, "saturated": saturated, "latency_ms": {"p99": p99},
                "timeline": timeline(np.full(int(rate * 2), p99), rate), "redis_aof_rewrites": [[0.5, 1.0]]}

    fast = {"steps": [step(100, 4.0), step(1000, 8.0)]}
    assert tail_timeline(fast, tmp_path / "none.png", slo_ms=10.0) is None
    assert not (tmp_path / "none.png").exists()
    slow = {"steps": [step(100, 4.0), step(1000, 30.0), step(2000, 5000.0, saturated=True)]}
    out = tail_timeline(slow, tmp_path / "tail.png", slo_ms=10.0)
    assert out == tmp_path / "tail.png" and out.stat().st_size > 0
