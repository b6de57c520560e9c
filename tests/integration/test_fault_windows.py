"""The two windows a random kill rarely hits, reached on purpose through test-only fault points
(:mod:`stream.faults`): a crash between the Redis EXEC and the Kafka commit, and a stale worker
whose commit must be fenced after another worker took its partitions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learners import load_user_model
from stream.client import EddyClient
from stream.engine.markers import decode_marker, outbox_ref
from stream.events import Feedback, Item, Query
from stream.store import RedisStore

from .helpers import read_json, worker_env, wait_for

pytestmark = pytest.mark.integration


def _start(settings, log: Path, fault: str = "", **overrides) -> subprocess.Popen:
    env = worker_env(settings, **overrides)
    env.pop("EDDY_FAULT", None)
    if fault:
        env["EDDY_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _query_then_feedback(settings, rid: str) -> Feedback:
    client = EddyClient(settings)
    client.send(Query(request_id=rid, user_id="u1", ts=time.time(), context={"hour": 3.0},
                      candidates=(Item("a"), Item("b"), Item("c"))))
    client.flush()
    (pred,) = read_json(settings, "predictions", n=1, timeout_s=120)
    fb = Feedback(request_id=rid, user_id="u1", item_id=pred["chosen"][0], reward=1.0, ts=time.time())
    client.send(fb)
    client.flush()
    return fb


def _stopped(proc: subprocess.Popen) -> bool:
    return Path(f"/proc/{proc.pid}/stat").read_text().split(")")[-1].split()[0] == "T"


def _n_obs(settings, fn: str, user: str) -> int:
    store = RedisStore.from_settings(settings)
    return load_user_model(store.load_users(fn, store.partitions_of_users(fn, [user], settings.partitions))[user]).n_obs


def test_a_crash_between_the_redis_exec_and_the_kafka_commit_re_emits_and_learns_once(settings, live_model, tmp_path):
    log = tmp_path / "worker.log"
    worker = _start(settings, log, fault="crash_after_redis_commit")
    try:
        fb = _query_then_feedback(settings, "crash-window")
        assert worker.wait(timeout=60) == 86, log.read_text(errors="replace")[-2000:]
        store = RedisStore.from_settings(settings)
        partition = store.partitions_of_users(live_model.version, ["u1"], settings.partitions)["u1"]
        marker = decode_marker(store.load_applied({"crash-window": partition})["crash-window"])  # Redis is ahead
        assert store.load_outboxes([outbox_ref(marker)]), "the outputs stay until their Kafka commit"
        assert read_json(settings, "model-updates", timeout_s=10, idle_s=2) == []
        worker = _start(settings, log)
        updates = read_json(settings, "model-updates", n=1, timeout_s=120)
        time.sleep(2)
        updates = read_json(settings, "model-updates", timeout_s=10, idle_s=2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert [u["request_id"] for u in updates] == [fb.request_id]
    assert _n_obs(settings, live_model.version, "u1") == 1
    stats = RedisStore.from_settings(settings).read_stats(settings.group)["w0"]
    assert stats["feedback_redelivered"] == 1 and stats["feedback_applied"] == 1


def test_a_committed_batchs_outbox_is_deleted_and_its_marker_stays(settings, live_model, tmp_path):
    """The outputs leave Redis once their Kafka transaction commits; the marker stays (``applied_ttl_s``). A
    worker that never deleted its outboxes would keep every outcome in Redis for days; one that deleted
    them before the commit would lose them to a crash in between (the test above)."""
    log = tmp_path / "worker.log"
    worker = _start(settings, log)
    try:
        _query_then_feedback(settings, "outbox-gone")
        read_json(settings, "model-updates", n=1, timeout_s=120)
        store = RedisStore.from_settings(settings)
        partition = store.partitions_of_users(live_model.version, ["u1"], settings.partitions)["u1"]
        marker = decode_marker(store.load_applied({"outbox-gone": partition})["outbox-gone"])
        wait_for(lambda: not store.load_outboxes([outbox_ref(marker)]), timeout_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert marker.count == 2 and store.load_applied({"outbox-gone": partition})


def test_a_stale_worker_is_fenced_after_another_took_its_partitions(settings, live_model, tmp_path):
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(settings, a_log, fault="stop_before_redis_commit", instance_id="wa")
    b = None
    try:
        wait_for(lambda: "claimed epochs" in a_log.read_text(errors="replace"), timeout_s=120)
        fb = _query_then_feedback(settings, "stale")
        wait_for(lambda: _stopped(a), timeout_s=60)  # a holds the feedback's batch, uncommitted
        b = _start(settings, b_log, instance_id="wb")
        wait_for(lambda: "claimed epochs" in b_log.read_text(errors="replace"), timeout_s=120)
        read_json(settings, "model-updates", n=1, timeout_s=120)  # b applied it
        a.send_signal(signal.SIGCONT)
        wait_for(lambda: "batch fenced" in a_log.read_text(errors="replace"), timeout_s=60)
        time.sleep(2)
        updates = read_json(settings, "model-updates", timeout_s=10, idle_s=2)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
    assert [u["request_id"] for u in updates] == [fb.request_id]
    assert _n_obs(settings, live_model.version, "u1") == 1
    stats = RedisStore.from_settings(settings).read_stats(settings.group)
    assert stats["wa"]["fenced_batches"] >= 1 and stats["wb"]["feedback_applied"] == 1
    assert stats["wa"].get("feedback_applied", 0) == 0


def test_a_commit_reported_failed_that_took_effect_is_not_read_again(settings, live_model, tmp_path):
    """A transaction can commit while its producer sees an error (a response lost, a timeout after the
    broker wrote the commit marker). Re-reading such a span would log its decisions again; the worker
    reads the group's committed offsets instead and finds the span there."""
    log = tmp_path / "worker.log"
    worker = _start(settings, log, fault="commit_response_lost")
    try:
        fb = _query_then_feedback(settings, "lost-response")
        read_json(settings, "model-updates", n=1, timeout_s=120)
        wait_for(lambda: "fault: commit response lost" in log.read_text(errors="replace"), timeout_s=30)
        time.sleep(3)
        decisions = read_json(settings, "decisions", timeout_s=10, idle_s=2)
        predictions = read_json(settings, "predictions", timeout_s=10, idle_s=2)
        updates = read_json(settings, "model-updates", timeout_s=10, idle_s=2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert [d["request_id"] for d in decisions] == [fb.request_id]
    assert [p["request_id"] for p in predictions] == [fb.request_id]
    assert "it took effect; not re-reading them" in log.read_text(errors="replace")
    assert [u["request_id"] for u in updates] == [fb.request_id]
    assert _n_obs(settings, live_model.version, "u1") == 1
    stats = RedisStore.from_settings(settings).read_stats(settings.group)["w0"]
    # The span that took effect is not counted aborted; one collected behind it meanwhile may be
    # (dropped with the failed producer and re-read, its outputs never sent): hence no check on that.
    assert stats["commits_confirmed_after_error"] == 1
