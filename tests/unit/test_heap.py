"""stream.heap: the worker's garbage-collection schedule (freeze survivors, full collections rarely)."""

from __future__ import annotations

import gc
import weakref

import pytest

from stream.config import from_env
from stream.heap import GcPauses, HeapKeeper

pytestmark = pytest.mark.unit


class Node:
    me: object = None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def all_frozen(objs) -> bool:
    """True when every one of objs sits in the permanent generation (gc.get_objects skips it).

    Counting gc.get_freeze_count() instead is not a test: a full run also frees the
    garbage the start-up freeze held, so the count can fall while every survivor is frozen.
    """
    tracked = {id(o) for o in gc.get_objects()}
    return all(gc.is_tracked(o) and id(o) not in tracked for o in objs)


@pytest.fixture
def restore_gc():
    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


def test_start_freezes_the_heap_and_turns_automatic_full_collections_off(restore_gc):
    keeper = HeapKeeper(interval_s=30.0, clock=Clock())
    gen0, gen1, _ = gc.get_threshold()
    keeper.start()
    assert gc.get_freeze_count() > 1000  # this test process's modules, at least
    assert gc.get_threshold()[:2] == (gen0, gen1) and gc.get_threshold()[2] > 10**6
    keeper.stop()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == (gen0, gen1, 10)


def test_survivors_are_frozen_every_interval_and_a_full_collection_frees_frozen_cycles(restore_gc):
    clock = Clock()
    keeper = HeapKeeper(interval_s=30.0, full_every_s=3600.0, clock=clock)
    keeper.start()
    frozen = gc.get_freeze_count()
    survivors = [[i] for i in range(5000)]  # tracked objects that live on
    clock.t = 29.0
    # No run, no freeze: the count can only fall (a frozen object that dies leaves it; CI saw 2 do so).
    assert keeper.maybe_run() is None and gc.get_freeze_count() <= frozen
    assert not any(all_frozen([o]) for o in survivors[:10])
    clock.t = 30.0
    assert keeper.maybe_run() == "young"
    assert gc.get_freeze_count() >= frozen + 5000 and all_frozen(survivors)
    cycle = Node()
    cycle.me = cycle  # garbage only a collection can free, once frozen with the next young run
    gone = weakref.ref(cycle)
    clock.t = 60.0
    keeper.maybe_run()
    del cycle
    gc.collect()
    assert gone() is not None  # frozen: out of the collector's sight (the price of freezing)
    clock.t = 3600.0
    assert keeper.maybe_run() == "full"
    assert gone() is None  # the hourly full collection frees it
    assert (keeper.young_runs, keeper.full_runs) == (2, 1)
    assert all_frozen(survivors)  # the survivors are frozen again
    keeper.stop()
    gen0, gen1, _ = gc.get_threshold()
    keeper.stop()  # twice: nothing left to give back
    assert gc.get_threshold() == (gen0, gen1, 10) and gc.get_freeze_count() == 0
    clock.t = 10_000.0
    assert keeper.maybe_run() is None  # stopped: no more runs
    assert (keeper.young_runs, keeper.full_runs) == (2, 1)
    del survivors


def test_off_leaves_python_s_collector_alone(restore_gc):
    before = gc.get_threshold()
    clock = Clock()
    keeper = HeapKeeper(interval_s=0.0, freeze_start=False, clock=clock)
    keeper.start()
    clock.t = 10_000.0
    assert keeper.maybe_run() is None
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_start_up_freeze_keeps_python_s_schedule_and_frees_frozen_cycles_every_full_interval(restore_gc):
    before = gc.get_threshold()
    clock = Clock()
    keeper = HeapKeeper(interval_s=0.0, full_every_s=3600.0, clock=clock)  # the default mode
    cycle = Node()
    cycle.me = cycle
    gone = weakref.ref(cycle)
    keeper.start()
    frozen = gc.get_freeze_count()
    assert frozen > 1000 and gc.get_threshold() == before
    del cycle
    gc.collect()
    assert gone() is not None  # died frozen: out of the collector's sight
    later = [[i] for i in range(3000)]
    clock.t = 3599.0
    assert keeper.maybe_run() is None  # no young runs: what came later is not frozen
    assert gc.get_freeze_count() <= frozen and not any(all_frozen([o]) for o in later[:10])
    clock.t = 3600.0
    assert keeper.maybe_run() == "full"
    assert gone() is None and (keeper.young_runs, keeper.full_runs) == (0, 1)
    assert all_frozen(later)  # the hourly run freezes the survivors again
    del later
    keeper.stop()
    assert gc.get_freeze_count() > 1000 and gc.get_threshold() == before  # the start-up freeze stays


def test_start_up_freeze_leaves_later_objects_to_the_collector(restore_gc):
    keeper = HeapKeeper(interval_s=0.0, clock=Clock())
    keeper.start()
    frozen = gc.get_freeze_count()
    cycle = Node()
    cycle.me = cycle  # made after the start: the collector's, as without a freeze
    gone = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert gone() is None and gc.get_freeze_count() <= frozen
    keeper.stop()


def test_gc_pauses_times_each_collection_by_generation():
    ticks = iter([1.0, 1.25, 2.0, 2.01])
    seen: list[tuple[int, float]] = []
    pauses = GcPauses(lambda gen, s: seen.append((gen, s)), clock=lambda: next(ticks))
    pauses.start()
    pauses.start()  # once only
    try:
        pauses._callback("start", {"generation": 2})
        pauses._callback("stop", {"generation": 2})
        pauses._callback("start", {"generation": 0})
        pauses._callback("stop", {"generation": 0})
        assert gc.callbacks.count(pauses._callback) == 1
    finally:
        pauses.stop()
    assert pauses._callback not in gc.callbacks
    assert seen == [(2, 0.25), (0, pytest.approx(0.01))]
    assert pauses.counts == [1, 0, 1] and pauses.longest_ms == 250.0


def test_gc_pauses_counts_every_collection_and_keeps_the_longest_even_below_a_millisecond():
    ticks = iter([5.0, 5.0002, 6.0, 6.0005, 7.0, 7.0001])
    pauses = GcPauses(lambda gen, s: None, clock=lambda: next(ticks))
    for _ in range(3):
        pauses._callback("start", {"generation": 0})
        pauses._callback("stop", {"generation": 0})
    assert pauses.counts == [3, 0, 0]
    assert pauses.longest_ms == pytest.approx(0.5)


def test_gc_pauses_sees_real_collections():
    seen: list[int] = []
    pauses = GcPauses(lambda gen, s: seen.append(gen))
    pauses.start()
    try:
        gc.collect()
    finally:
        pauses.stop()
    assert 2 in seen and pauses.counts[2] >= 1


@pytest.mark.parametrize(("env", "mode"), [
    ({}, (True, False, 3600.0)),  # the default: start-up freeze, hourly full collection
    ({"EDDY_GC_FREEZE_START": "0"}, (False, False, 3600.0)),  # off: Python's collector as it is
    ({"EDDY_GC_FREEZE_S": "30", "EDDY_GC_FULL_S": "600"}, (True, True, 600.0)),
])
def test_the_worker_s_keeper_follows_the_environment(env, mode):
    keeper = HeapKeeper.from_settings(from_env(env))
    assert (keeper.freeze_start, keeper.periodic, keeper.full_every_s) == mode
    assert keeper.on == (mode[0] or mode[1])
