"""stream.heap: the worker's garbage-collection schedule (freeze survivors, full collections rarely)."""

from __future__ import annotations

import gc
import weakref

import pytest

from stream.heap import HeapKeeper

pytestmark = pytest.mark.unit


class Node:
    me: object = None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


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
    assert keeper.maybe_run() is None and gc.get_freeze_count() == frozen
    clock.t = 30.0
    assert keeper.maybe_run() == "young"
    assert gc.get_freeze_count() >= frozen + 5000
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
    assert gc.get_freeze_count() >= frozen + 5000  # the survivors are frozen again
    keeper.stop()
    del survivors


def test_interval_zero_leaves_python_s_collector_alone(restore_gc):
    before = gc.get_threshold()
    keeper = HeapKeeper(interval_s=0.0, clock=Clock())
    keeper.start()
    assert keeper.maybe_run() is None
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
