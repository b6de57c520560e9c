"""benchmarks.redis_watch: a step's Redis-stall cell in the report."""

from __future__ import annotations

import pytest

from benchmarks.redis_watch import RedisWatch, step_stalls

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
