"""``stream.kafka_io.produce``: the one produce-with-retry helper (a full local queue is waited out, within bounds)."""

from __future__ import annotations

import pytest

from stream.kafka_io import KafkaUnavailable, produce

pytestmark = pytest.mark.unit


class FullQueue:
    """A producer whose local queue is full for the first ``full_for`` calls (``None``: for ever)."""

    def __init__(self, full_for: int | None):
        self.full_for, self.calls, self.polls, self.sent = full_for, 0, 0, []

    def produce(self, topic, value=None, key=None, headers=None):
        self.calls += 1
        if self.full_for is None or self.calls <= self.full_for:
            raise BufferError("Local: Queue full")
        self.sent.append((topic, value, key, headers))

    def poll(self, timeout):
        self.polls += 1
        return 0


def test_a_full_queue_is_polled_then_the_record_sent_once():
    p = FullQueue(full_for=3)
    produce(p, "t", b"v", key=b"k", headers=[("h", b"1")])
    assert p.sent == [("t", b"v", b"k", [("h", b"1")])]
    assert p.polls == 3  # one poll (deliveries drain) per refusal


def test_a_queue_that_stays_full_raises_after_the_bound():
    p = FullQueue(full_for=None)
    with pytest.raises(KafkaUnavailable, match="producer queue for t still full after 0.05s"):
        produce(p, "t", b"v", max_wait_s=0.05)
    assert p.sent == [] and p.polls >= 1
