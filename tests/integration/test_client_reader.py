"""``stream.client.reader``: what every subscriber to predictions (the loop, the demo, ``eddy tail``,
the benchmark's load generator) reads with, against the real broker."""

from __future__ import annotations

import dataclasses
import time

import pytest
from confluent_kafka import Producer

from stream.client import drain, reader

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("round_", range(25))
def test_a_reader_from_the_end_sees_every_record_produced_after_it_returns(settings, round_):
    """The reader used to assign OFFSET_END, then the resolved end offsets. On a fresh topic with a
    100 ms fetch wait it missed the first records produced after it returned in 5 of 25 rounds (all
    60 answers of a closed loop, in 2 of 25 runs). Each round: fresh topics (the fixture), a record
    every 10 ms from the moment the reader is back, with the fetch wait that exposed it."""
    s = dataclasses.replace(settings, fetch_wait_ms=100)
    topic = s.topic("predictions")
    producer = Producer(s.producer_config())
    consumer = reader(s, [topic])
    try:
        sent = []
        for i in range(40):
            sent.append(f"{round_}-{i}".encode())
            producer.produce(topic, key=str(i % 5).encode(), value=sent[-1])
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)
        got = {m.value() for m in drain(consumer, until=lambda ms: len(ms) >= len(sent), timeout_s=10)}
    finally:
        consumer.close()
    assert [v for v in sent if v not in got] == []


def test_a_reader_from_the_beginning_sees_what_was_there_before_it(settings):
    topic = settings.topic("predictions")
    producer = Producer(settings.producer_config())
    for i in range(20):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    producer.flush(10)
    consumer = reader(settings, [topic], from_beginning=True)
    try:
        got = [m.value() for m in drain(consumer, until=lambda ms: len(ms) >= 20, timeout_s=10, idle_s=3)]
    finally:
        consumer.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))
