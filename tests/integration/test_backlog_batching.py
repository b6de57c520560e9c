"""Behind a backlog the worker's batch limit grows (``stream.engine.batching``), by what
``stream.stall.records_behind`` counts from the consumer's last fetches."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.client import EddyClient
from stream.events import Item, Query
from stream.stall import records_behind

from .helpers import read_json, wait_for

pytestmark = pytest.mark.integration


def test_records_behind_counts_what_waits_past_the_position(settings):
    topic = settings.topics["queries"]
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for i in range(50):
        producer.produce(topic, value=b"%d" % i, partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": f"{settings.group}-behind",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])  # 1 stays empty
        got = []
        while len(got) < 10:
            got += consumer.consume(10 - len(got), 5)
        assert [m.offset() for m in got] == list(range(10))
        wait_for(lambda: records_behind(consumer) == 40, timeout_s=10)
        while len(got) < 50:
            got += consumer.consume(50 - len(got), 5)
        assert records_behind(consumer) == 0
    finally:
        consumer.close()


def test_a_backlog_grows_the_batch_limit_though_every_batch_misses_the_objective(settings, live_model,
                                                                                 worker_thread):
    """An objective no batch can meet: without the backlog rule the limit only shrinks from its start (32)
    and 3,000 waiting queries go through in batches of one; with it, it grows while they wait."""
    s = dataclasses.replace(settings, batch_slo_ms=0.001, max_batch=512)
    client = EddyClient(s)
    n = 3000
    for i in range(n):
        client.send(Query(request_id=f"r{i}", user_id=f"u{i % 50}", ts=time.time(), context={"hour": 3.0},
                          candidates=(Item("a"), Item("b"), Item("c"))))
    client.flush()
    highest, done = [0], threading.Event()
    with worker_thread(s) as w:
        def watch() -> None:
            while not done.is_set():
                highest[0] = max(highest[0], w.worker.batching.limit)
                time.sleep(0.002)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            predictions = read_json(s, "predictions", n=n, timeout_s=120)
        finally:
            done.set()
            watcher.join()
    assert len({p["request_id"] for p in predictions}) == n
    assert highest[0] >= 64, highest[0]
