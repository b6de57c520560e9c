"""The foundation: topics, a consumer group that resumes from committed offsets,
a faust-streaming agent, and Redis — all against the real broker and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from stream.kafka_io import partition_count

from .helpers import terminate

pytestmark = pytest.mark.integration


def test_topics_are_created_with_several_partitions(settings):
    for name in ("queries", "feedback", "predictions", "dead-letter"):
        assert partition_count(settings, settings.topic(name)) == 4


def _consume(group: str, settings, topic: str, n: int, timeout_s: float = 20) -> list[bytes]:
    c = Consumer(settings.consumer_config(group=group))
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(100, 0.2):
            if not m.error():
                got.append(m.value())
    c.commit(asynchronous=False) if got else None
    c.close()
    return got


def test_consumer_group_resumes_from_committed_offsets(settings):
    topic = settings.topic("queries")
    p = Producer(settings.producer_config())
    for i in range(10):
        p.produce(topic, key=f"k{i}".encode(), value=f"first-{i}".encode())
    p.flush(10)
    group = f"{settings.topic_prefix}g"
    assert sorted(_consume(group, settings, topic, 10)) == sorted(f"first-{i}".encode() for i in range(10))
    for i in range(5):
        p.produce(topic, key=f"k{i}".encode(), value=f"second-{i}".encode())
    p.flush(10)
    # A new consumer in the same group starts where the first committed: only the new records.
    again = _consume(group, settings, topic, 5)
    assert sorted(again) == sorted(f"second-{i}".encode() for i in range(5))


def test_faust_agent_consumes_one_topic_and_produces_to_another(settings, tmp_path):
    source, sink = settings.topic("queries"), settings.topic("predictions")
    env = {**os.environ, "ECHO_APP_ID": f"{settings.topic_prefix}echo", "ECHO_SOURCE": source, "ECHO_SINK": sink,
           "EDDY_BOOTSTRAP": settings.bootstrap}
    app_dir = Path(__file__).parent
    log_path = tmp_path / "faust.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "faust_echo_app", "--datadir", str(tmp_path / "faust-data"),
         "worker", "-l", "info", "--without-web"],
        cwd=app_dir, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
    )
    try:
        from stream.client import drain, reader

        out = reader(settings, [sink])
        p = Producer(settings.producer_config())
        words = [uuid.uuid4().hex[:6] for _ in range(5)]
        deadline = time.monotonic() + 60
        got: set[bytes] = set()
        while time.monotonic() < deadline and got != {w.upper().encode() for w in words}:
            for w in words:  # re-send until the agent is up: the set of outputs is what counts
                p.produce(source, value=w.encode())
            p.flush(10)
            got |= {m.value() for m in drain(out, timeout_s=3)}
        assert {w.upper().encode() for w in words} <= got, log_path.read_text()[-3000:]
    finally:
        terminate(proc)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]


def test_redis_round_trip(settings):
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    key = f"{settings.topic_prefix}probe"
    r.set(key, b"\x00eddy\xff", ex=60)
    assert r.get(key) == b"\x00eddy\xff"
    assert r.config_get("appendonly")["appendonly"] == "yes"
    # deploy/stack.env: a small dataset's AOF is not rewritten every few seconds under load
    assert r.config_get("auto-aof-rewrite-min-size")["auto-aof-rewrite-min-size"] == str(512 * 2**20)


def test_a_bad_aof_rewrite_size_is_one_line_naming_it():
    stack = Path(__file__).resolve().parents[2] / "deploy" / "stack"
    out = subprocess.run(["bash", str(stack), "status"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "EDDY_REDIS_AOF_REWRITE_MIN_SIZE": "lots"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "stack: error: invalid EDDY_REDIS_AOF_REWRITE_MIN_SIZE 'lots' (bytes, or a number with kb, mb or gb)"]
