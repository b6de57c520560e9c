"""The hot-swap watchers over in-memory stand-ins for the registry and the snapshot store: a newer version is
loaded off the loop and handed over once; a failed load or a Redis outage leaves the served version in place."""

from __future__ import annotations

import threading
import time

import pytest

from stream.errors import StoreUnavailable
from stream.hotswap import ModelWatcher
from stream.policy_swap import PolicyWatcher

pytestmark = pytest.mark.unit


class Registry:
    def __init__(self, live: str):
        self.live_version, self.polls, self.broken, self.down = live, 0, set(), False
        self.loaded_on: list[str] = []

    def live(self) -> str:
        self.polls += 1
        if self.down:
            raise StoreUnavailable("redis down")
        return self.live_version

    def load(self, version: str):
        self.loaded_on.append(threading.current_thread().name)
        if version in self.broken:
            raise ValueError(f"artifact {version} is damaged")
        return Model(version)


class Model:
    def __init__(self, version: str):
        self.version = version


def settle(watcher, now: float):
    """What ``ready`` hands over once the loader thread is done (bounded: about 5 s)."""
    for _ in range(500):
        got = watcher.ready(now)
        if got is not None or watcher._pending is None:
            return got
        time.sleep(0.01)
    raise AssertionError("the loader never finished")


def test_a_promoted_model_is_loaded_off_the_loop_and_handed_over_once():
    registry, serving = Registry("v1"), ["v1"]
    w = ModelWatcher(registry, lambda: serving[0], check_every_s=1.0)
    assert w.ready(0.0) is None and registry.polls == 1 and not registry.loaded_on
    registry.live_version = "v2"
    assert w.ready(0.5) is None and registry.polls == 1  # not yet time to look again
    assert w.ready(1.0) is None  # the load starts
    loaded = settle(w, 1.0)
    assert loaded.model.version == "v2" and loaded.feature_cache is None
    assert registry.loaded_on[0].startswith("eddy-model-loader")
    serving[0] = "v2"
    assert w.ready(2.0) is None and settle(w, 2.0) is None and len(registry.loaded_on) == 1
    w.close()


def test_a_broken_artifact_is_counted_and_retried_while_the_served_version_stays():
    registry = Registry("v2")
    registry.broken.add("v2")
    w = ModelWatcher(registry, lambda: "v1", check_every_s=1.0)
    w.ready(0.0)
    assert settle(w, 0.0) is None and w.failed == 1
    registry.broken.clear()
    w.ready(1.0)
    assert settle(w, 1.0).model.version == "v2" and w.failed == 1
    w.close()


def test_a_redis_outage_skips_the_poll():
    registry = Registry("v2")
    registry.down = True
    w = ModelWatcher(registry, lambda: "v1", check_every_s=1.0)
    assert w.ready(0.0) is None and not registry.loaded_on
    registry.down = False
    w.ready(1.0)
    assert settle(w, 1.0).model.version == "v2"
    w.close()


class Snapshots:
    def __init__(self):
        self.version, self.blob = 0, b""

    def learner_snapshot(self, group: str, name: str, *, newer_than: int = 0):
        return (self.version, self.blob) if self.version > newer_than else None


class Policy:
    name = "vw"

    def __init__(self, state: bytes = b""):
        self.state = state

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Policy":
        if blob == b"damaged":
            raise ValueError("not a snapshot")
        return cls(blob)


def test_the_policy_watcher_hands_over_each_newer_snapshot_once():
    store = Snapshots()
    w = PolicyWatcher(store, "g", Policy(), check_every_s=1.0)
    assert w.load_now() is None
    store.version, store.blob = 3, b"three"
    policy, version = w.load_now()
    assert (policy.state, version, w.version) == (b"three", 3, 3)
    assert w.ready(0.0) is None and settle(w, 0.0) is None  # nothing newer than 3
    store.version, store.blob = 4, b"damaged"
    w.ready(1.0)
    assert settle(w, 1.0) is None and w.failed == 1 and w.version == 4  # a damaged snapshot is not retried
    store.version, store.blob = 5, b"five"
    w.ready(2.0)
    policy, version = settle(w, 2.0)
    assert (policy.state, version) == (b"five", 5)
    w.close()
