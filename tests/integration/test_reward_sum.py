"""Reward aggregation ``sum`` through the real worker: three rewards for one request, the worker SIGKILLed
between the second and the third, are summed and applied once when the wait ends; a reward after the
window is late."""

from __future__ import annotations

import signal

import pytest

from stream.client import EddyClient
from stream.events import Feedback
from stream.store import RedisStore, redis_client

from .helpers import read_dead_letters, read_json, wait_for
from .test_default_rewards import _ask, _settled
from .test_fault_windows import _n_obs, _start

pytestmark = pytest.mark.integration

SUM = {"reward_wait_s": 8.0, "default_reward": -0.5, "reward_aggregation": "sum"}


def test_three_rewards_are_summed_once_across_a_sigkill_and_a_reward_after_the_window_is_late(
        settings, live_model, tmp_path):
    log = tmp_path / "worker.log"
    store = RedisStore.from_settings(settings)
    summed = lambda: sum(len(v) for v in store.load_reward_sums([(p, "r") for p in range(settings.partitions)]).values())  # noqa: E731
    worker = _start(settings, log, **SUM)
    try:
        pred, asked = _ask(settings, log, "r")
        item = pred["chosen"][0]
        client = EddyClient(settings)
        for i, reward in enumerate((1.0, 0.25)):
            client.send(Feedback("r", "u1", item, reward, asked + 0.1 * (i + 1)))
        client.flush()
        wait_for(lambda: summed() == 2, timeout_s=60)
        worker.send_signal(signal.SIGKILL)  # within the wait: the two rewards are in Redis only
        worker.wait(timeout=30)
        client.send(Feedback("r", "u1", item, 2.0, asked + 0.3))
        client.flush()
        worker = _start(settings, log, **SUM)
        (outcome,) = read_json(settings, "outcomes", n=1, timeout_s=120)
        client.send(Feedback("r", "u1", item, 5.0, asked + SUM["reward_wait_s"] + 1))  # after the window
        client.flush()
        (dead,) = read_dead_letters(settings, n=1, timeout_s=60)
        outcomes = _settled(settings, "outcomes")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert len(outcomes) == 1
    assert (outcome["item_id"], outcome["reward"], outcome.get("default")) == (item, 3.25, None)
    assert dict(dead.headers())["eddy.reason"] == b"late_feedback"
    assert _n_obs(settings, live_model.version, "u1") == 1
    assert summed() == 0
    # the batch counters, durable with each batch (a process's own figures start again after the SIGKILL)
    stats = {k.decode(): int(v) for k, v in redis_client(settings).hgetall(store.keys.stats(settings.group, "w0")).items()}
    assert stats["feedback_summed"] == 3 and stats["reward_sums_applied"] == 1 and "default_rewards" not in stats
