"""Never stop, never lie: a Redis restart under load is waited out, poison records become
dead letters while the partition goes on, and the counters reconcile.

The Redis test runs its own ``redis-server`` (Debian's, as deploy/stack runs it) on a free
port, so stopping it cannot disturb anything else using the stack's Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Producer

from features.model import FeatureModel
from stream import config
from stream.engine import PROCESSED
from stream.store import RedisStore

from .helpers import (OwnStack, free_port, make_live, read_dead_letters, read_json, start_worker, terminate,
                      wait_for)
from .test_recovery import Counting, _check_exactly_once, _loop_in_background, _wait_all_feedback_applied

pytestmark = pytest.mark.integration

class OwnRedis:
    """A redis-server of the test's own, with the stack's durability: AOF, ``appendfsync no`` (docs/design.md)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = RedisStore(self.url, "probe:")
        wait_for(lambda: _answers(store), timeout_s=20, interval_s=0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final flush; what survives is what Redis wrote before replying."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


def _answers(store: RedisStore) -> bool:
    try:
        return store.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_a_redis_crash_under_load_is_waited_out_and_nothing_is_lost_or_doubled(settings, trained_model_dir,
                                                                                  tmp_path):
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    own = OwnRedis(redis_dir)
    own.start()
    s = config.replace(settings, redis_url=own.url).validated()
    model = make_live(s, FeatureModel.load(trained_model_dir))
    log = tmp_path / "worker.log"
    worker = start_worker(s, log, max_batch=16)
    try:
        wait_for(lambda: "assigned partitions" in log.read_text(errors="replace"), timeout_s=180)
        updates = Counting(s, "model-updates")
        t, result = _loop_in_background(s, count=900, rate=150, users=25, items=15, wait_s=90)
        wait_for(lambda: updates.poll() >= 100, timeout_s=30, interval_s=0)
        own.kill()  # Redis dies mid-stream: everything it acknowledged must come back from its AOF
        time.sleep(3)
        assert worker.poll() is None, "the worker exited when Redis went away"
        own.start()
        t.join(timeout=150)
        assert not t.is_alive()
        _wait_all_feedback_applied(s, updates)
        updates.close()
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        own_log = log.read_text(errors="replace")
    try:
        assert "Redis is unavailable" in own_log and "Redis is back after" in own_log, own_log[-3000:]
        assert "fenced" not in own_log, "a lost connection was reported as a fence"
        _check_exactly_once(s, model.version, result, logs=[log])
        stats = RedisStore.from_settings(s).read_stats(s.group)["w0"]
        done = sum(stats.get(k, 0) for k in PROCESSED)
        assert stats["consumed"] == done + stats.get("dead_lettered", 0), stats
        assert stats["outages.redis"] >= 1
    finally:
        own.stop()


def _poison_corpus(limit: int) -> dict[str, bytes]:
    """One record of every kind that has broken a worker, named by what it is."""
    ok = {"schema": "eddy.query/1", "request_id": "r", "user_id": "u", "ts": time.time(),
          "context": {"hour": 3.0}, "candidates": ["a", "b", "c"]}

    def q(**fields) -> bytes:
        return json.dumps({**ok, "request_id": uuid.uuid4().hex, **fields}).encode()

    return {
        "not json": b"{nope",
        "empty object": b"{}",
        "a JSON list": b"[1, 2]",
        "wrong schema": json.dumps({**ok, "schema": "eddy.feedback/1"}).encode(),
        "future schema version": json.dumps({**ok, "schema": "eddy.query/99"}).encode(),
        "missing user": q(user_id=None),
        "deep nesting": b'{"schema":"eddy.query/1","context":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "a 4,000-digit request id": q(request_id=int("9" * 4000)),
        "a 4,000-digit timestamp": q(ts=int("9" * 4000)),
        "a 4,000-digit feature": q(context={"hour": int("9" * 4000)}),
        "a lone surrogate in an id": b'{"schema":"eddy.query/1","request_id":"\\ud800","user_id":"u","ts":1,'
                                     b'"candidates":["a"]}',
        "an extreme float feature": q(context={"hour": 1e308}),
        "NaN": q(ts=float("nan")),
        "a duplicate candidate": q(candidates=["a", "a"]),
        "k out of range": q(k=7),
        "invalid UTF-8": b'{"schema":"eddy.query/1","request_id":"\xff\xfe"}',
        "just under the size limit": q(context={"pad": "x" * (limit - 2000)}),
        "no value at all": None,
        "a number as an id": q(user_id=42),
    }


def test_poison_records_become_dead_letters_and_the_partition_goes_on(settings, live_model, tmp_path):
    limit = 1_000_000  # under the broker's default max.message.bytes (1 MiB) and the producer's
    corpus = _poison_corpus(limit)
    producer = Producer({"bootstrap.servers": settings.bootstrap, "message.max.bytes": limit + 100_000})
    topic = settings.topic("queries")
    good = []
    for i, (name, value) in enumerate(corpus.items()):  # all on one partition: one key
        producer.produce(topic, key=b"poison", value=value)
        rid = f"good-{i}"
        good.append(rid)
        producer.produce(topic, key=b"poison", value=json.dumps({
            "schema": "eddy.query/1", "request_id": rid, "user_id": "poison", "ts": time.time(),
            "candidates": ["a", "b", "c"]}).encode())
    assert producer.flush(30) == 0
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log, held_feedback_max=0)  # 0: unknown requests are refused, not held
    try:
        preds = read_json(settings, "predictions", n=len(good), timeout_s=120)
        # Then one feedback of every kind the join refuses, and one it applies.
        first = {p["request_id"]: p for p in preds}["good-0"]
        fb = {"schema": "eddy.feedback/1", "request_id": "good-0", "user_id": "poison",
              "item_id": first["chosen"][0], "reward": 1.0, "ts": time.time()}
        join_refused = {
            "unknown_request": {**fb, "request_id": "never-asked"},
            "user_mismatch": {**fb, "user_id": "someone-else"},
            "unknown_item": {**fb, "item_id": "not-a-candidate"},
            "late_feedback": {**fb, "ts": time.time() + 10 * settings.join_window_s},
        }
        for value in join_refused.values():
            producer.produce(settings.topic("feedback"), key=b"poison", value=json.dumps(value).encode())
        producer.produce(settings.topic("feedback"), key=b"poison", value=json.dumps(fb).encode())  # applied
        producer.produce(settings.topic("feedback"), key=b"poison", value=json.dumps(fb).encode())  # duplicate
        assert producer.flush(30) == 0
        n_dead = len(corpus) + len(join_refused) + 1
        dead = read_dead_letters(settings, n=n_dead, timeout_s=60)
        read_json(settings, "model-updates", n=1, timeout_s=60)
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert sorted(p["request_id"] for p in preds) == sorted(good)  # every good record after a poison one answered
    assert len(dead) == n_dead
    by_value = {m.value(): dict(m.headers()) for m in dead}
    for name, value in corpus.items():
        if value is None or len(value) <= 512 * 1024:
            assert value in by_value, f"{name}: original bytes not in the dead-letter topic"
            assert by_value[value]["eddy.reason"], name
    reasons = {dict(m.headers())["eddy.reason"].decode() for m in dead}
    assert reasons >= {"empty", "oversized", "not_json", "not_object", "wrong_schema", "unknown_schema_version",
                       "missing_field", "bad_type", "bad_value", "non_finite_number", "duplicate_feedback",
                       *join_refused}, reasons
    truncated = [h for h in by_value.values() if h.get("eddy.truncated") == b"true"]
    assert len(truncated) == 1  # the near-limit record, kept with its length and digest
    stats = RedisStore.from_settings(settings).read_stats(settings.group)["w0"]
    consumed = len(corpus) + len(good) + len(join_refused) + 2
    assert stats["consumed"] == sum(stats.get(k, 0) for k in PROCESSED) + stats["dead_lettered"] == consumed
    assert stats["feedback_applied"] == 1


@pytest.fixture
def own_stack(stack, tmp_path, trained_model_dir):
    """Settings on a broker and Redis of this test's own, with the session's model live."""
    from stream.kafka_io import ensure_topics

    own = OwnStack(tmp_path / "stack")
    own.up()
    try:
        prefix = f"t{uuid.uuid4().hex[:10]}."
        s = config.from_env({}, bootstrap=own.bootstrap, redis_url=own.redis_url, topic_prefix=prefix,
                            partitions=4, group=f"{prefix}workers", instance_id="w0",
                            model_dir=str(tmp_path / "models"), join_window_s=600.0)
        ensure_topics(s)
        model = make_live(s, FeatureModel.load(trained_model_dir))
        yield own, s, model
    finally:
        own.down()


def _stacks_on_hang(worker, log) -> str:
    """Where a worker that stopped making progress waits: its threads' stacks (SIGUSR1) and its log."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGUSR1)
        time.sleep(1)
    return log.read_text(errors="replace")[-12000:]


@pytest.mark.timeout(600)
def test_a_broker_kill_and_restart_under_load_is_waited_out_and_nothing_is_lost_or_doubled(own_stack, tmp_path):
    """SIGKILL of the broker mid-stream, then deploy/stack up: the worker rides it out."""
    own, settings, model = own_stack
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log, max_batch=16, kafka_debug=os.environ.get("EDDY_TEST_KAFKA_DEBUG", ""))
    try:
        wait_for(lambda: "assigned partitions" in log.read_text(errors="replace"), timeout_s=180)
        updates = Counting(settings, "model-updates")
        t, result = _loop_in_background(settings, count=900, rate=150, users=25, items=15, wait_s=150)
        wait_for(lambda: updates.poll() >= 100, timeout_s=30, interval_s=0)
        os.kill(own.broker_pid(), signal.SIGKILL)
        time.sleep(3)
        assert worker.poll() is None, "the worker exited when the broker went away"
        own.up()
        t.join(timeout=240)
        assert not t.is_alive()
        try:
            _wait_all_feedback_applied(settings, updates, timeout_s=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the worker's stacks and log:\n{_stacks_on_hang(worker, log)}") from None
        updates.close()
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
    finally:
        terminate(worker)
    _check_exactly_once(settings, model.version, result, logs=[log])
    stats = RedisStore.from_settings(settings).read_stats(settings.group)["w0"]
    done = sum(stats.get(k, 0) for k in PROCESSED)
    assert stats["consumed"] == done + stats.get("dead_lettered", 0), stats
