"""Epoch fencing at the store, on the real Redis: a commit under epochs another worker has
since bumped writes nothing, and an empty epochs map is the unfenced commit the benchmarks use
(the worker never commits records under one: it claims before each batch)."""

from __future__ import annotations

import pytest

from stream.engine.state import BatchWrite
from stream.store import RedisStore

pytestmark = pytest.mark.integration


def _write(rid: str) -> BatchWrite:
    return BatchWrite(applied={rid: (b"marker", 1)}, counts={"feedback_applied": 1})


def test_a_commit_under_epochs_another_worker_bumped_writes_nothing(settings):
    store = RedisStore.from_settings(settings)
    mine = store.claim(settings.group, [0, 1])
    assert store.commit(_write("owned"), group=settings.group, epochs=mine, instance="wa")
    assert store.load_applied({"owned": 1}) == {"owned": b"marker"}
    store.claim(settings.group, [1])  # another worker takes partition 1 only
    assert not store.commit(_write("stale"), group=settings.group, epochs=mine, instance="wa")
    assert store.load_applied({"stale": 1}) == {}
    assert store.read_stats(settings.group)["wa"] == {"feedback_applied": 1}  # the fenced counts are dropped too


def test_an_empty_epochs_map_commits_unfenced(settings):
    store = RedisStore.from_settings(settings)
    store.claim(settings.group, [0, 1, 2, 3])
    assert store.commit(_write("unfenced"), group=settings.group, epochs={})
    assert store.load_applied({"unfenced": 1}) == {"unfenced": b"marker"}
