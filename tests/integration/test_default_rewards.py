"""Reward wait time and default reward through the real worker: a decision without a reward gets the
default reward once, across a crash in the window between its Redis EXEC and its Kafka commit and across
a SIGKILL; a real reward after it is late."""

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

WAIT = {"reward_wait_s": 2.0, "default_reward": -0.5}


def _ask(settings, log: Path, rid: str) -> tuple[dict, float]:
    """The prediction of a query sent now, and the query's timestamp (its decision's)."""
    wait_for(lambda: "claimed epochs" in log.read_text(errors="replace"), timeout_s=120)
    client = EddyClient(settings)
    ts = time.time()
    client.send(Query(request_id=rid, user_id="u1", ts=ts, context={"hour": 3.0},
                      candidates=(Item("a"), Item("b"), Item("c"))))
    client.flush()
    (pred,) = read_json(settings, "predictions", n=1, timeout_s=120)
    return pred, ts


def _settled(settings, name: str) -> list[dict]:
    time.sleep(2)
    return read_json(settings, name, timeout_s=10, idle_s=2)


def test_the_default_reward_is_applied_once_across_a_crash_after_its_redis_commit(settings, live_model, tmp_path):
    log = tmp_path / "worker.log"
    worker = _start(settings, log, fault="crash_after_redis_commit", **WAIT)
    try:
        pred, _ = _ask(settings, log, "no-reward")
        # The default reward's batch commits Redis and dies before its Kafka transaction.
        assert worker.wait(timeout=60) == 86, log.read_text(errors="replace")[-2000:]
        worker = _start(settings, log, **WAIT)
        read_json(settings, "outcomes", n=1, timeout_s=120)
        outcomes, updates = _settled(settings, "outcomes"), _settled(settings, "model-updates")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert [(o["decision"]["request_id"], o["item_id"], o["reward"], o.get("default")) for o in outcomes] == [
        ("no-reward", pred["chosen"][0], -0.5, True)]
    assert [u["request_id"] for u in updates] == ["no-reward"]
    assert _n_obs(settings, live_model.version, "u1") == 1
    stats = RedisStore.from_settings(settings).read_stats(settings.group)["w0"]
    assert stats["default_rewards"] == 1 and stats["feedback_redelivered"] == 1


def test_a_default_reward_after_a_sigkill_and_a_real_reward_after_it_is_late(settings, live_model, tmp_path):
    log = tmp_path / "worker.log"
    worker = _start(settings, log, **WAIT)
    try:
        pred, asked = _ask(settings, log, "killed")
        worker.send_signal(signal.SIGKILL)  # before the wait ends: the next worker owes the default reward
        worker.wait(timeout=30)
        worker = _start(settings, log, **WAIT)
        (outcome,) = read_json(settings, "outcomes", n=1, timeout_s=120)
        client = EddyClient(settings)
        # In time by its own timestamp, but the default reward was applied already: late.
        client.send(Feedback("killed", "u1", pred["chosen"][0], 1.0, asked + 1.0))
        client.flush()
        (dead,) = read_dead_letters(settings, n=1, timeout_s=60)
        outcomes = _settled(settings, "outcomes")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert outcome["default"] is True and outcome["reward"] == -0.5 and len(outcomes) == 1
    headers = dict(dead.headers())
    assert headers["eddy.reason"] == b"late_feedback" and b"default reward" in headers["eddy.error"]
    assert _n_obs(settings, live_model.version, "u1") == 1
