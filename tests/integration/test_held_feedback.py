"""Early feedback through the real worker: held in Redis, applied once by the batch that decides its
request (even when that batch's Kafka commit is lost to a crash), and dead-lettered when its window ends."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from stream.client import EddyClient
from stream.events import Feedback, Item, Query
from stream.store import RedisStore

from .helpers import read_dead_letters, read_json, wait_for
from .test_fault_windows import _n_obs, _start

pytestmark = pytest.mark.integration


def _held(store: RedisStore, partitions: int) -> int:
    return sum(store.held_count(p) for p in range(partitions))


def test_early_feedback_is_held_then_applied_once_across_a_crash(settings, live_model, tmp_path):
    log: Path = tmp_path / "worker.log"
    store = RedisStore.from_settings(settings)
    worker = _start(settings, log, fault="crash_after_redis_commit")
    try:
        wait_for(lambda: "claimed epochs" in log.read_text(errors="replace"), timeout_s=120)
        client = EddyClient(settings)
        client.send(Feedback(request_id="early", user_id="u1", item_id="b", reward=1.0, ts=time.time()))
        client.flush()
        wait_for(lambda: _held(store, settings.partitions) == 1, timeout_s=60)
        client.send(Query(request_id="early", user_id="u1", ts=time.time(), context={"hour": 3.0},
                          candidates=(Item("a"), Item("b"), Item("c"))))
        client.flush()
        # The query's batch applies the held feedback, commits Redis, and crashes before Kafka.
        assert worker.wait(timeout=60) == 86, log.read_text(errors="replace")[-2000:]
        partition = store.partitions_of_users(live_model.version, ["u1"], settings.partitions)["u1"]
        assert store.load_applied({"early": partition}) and _held(store, settings.partitions) == 0
        worker = _start(settings, log)
        read_json(settings, "outcomes", n=1, timeout_s=120)
        time.sleep(2)
        outcomes = read_json(settings, "outcomes", timeout_s=10, idle_s=2)
        updates = read_json(settings, "model-updates", timeout_s=10, idle_s=2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert [(o["decision"]["request_id"], o["item_id"]) for o in outcomes] == [("early", "b")]
    assert [u["request_id"] for u in updates] == ["early"]
    assert _n_obs(settings, live_model.version, "u1") == 1
    stats = store.read_stats(settings.group)["w0"]
    assert stats["feedback_held"] == 1 and stats["held_applied"] == 1 and stats["held_redelivered"] == 1
    assert stats.get("dead_lettered", 0) == 0


def test_held_feedback_whose_decision_never_comes_is_dead_lettered_when_its_window_ends(settings, live_model,
                                                                                         tmp_path):
    store = RedisStore.from_settings(settings)
    worker = _start(settings, tmp_path / "worker.log", join_window_s=2.0)
    try:
        client = EddyClient(settings)
        client.send(Feedback(request_id="never", user_id="u1", item_id="b", reward=1.0, ts=time.time()))
        client.flush()
        (dead,) = read_dead_letters(settings, n=1, timeout_s=120)
        wait_for(lambda: store.read_stats(settings.group).get("w0", {}).get("held_expired") == 1, timeout_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    headers = dict(dead.headers())
    assert headers["eddy.reason"] == b"unknown_request" and b"held" in headers["eddy.error"]
    assert _held(store, settings.partitions) == 0
    stats = store.read_stats(settings.group)["w0"]
    assert stats["feedback_held"] == 1 and stats.get("dead_lettered", 0) == 0
