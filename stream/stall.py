"""A consumer that owns partitions with records waiting but fetches nothing: noticed and replaced.

After a broker is killed and restarted, librdkafka's consumer can come back with its
partitions assigned and never fetch from them again (no error, no callback; the same
symptom as confluentinc/librdkafka#5153). The worker sees only empty polls. So, when
polls have been empty for ``idle_s``, the worker asks the broker how far each owned
partition reaches; if some partition has records past the consumer's position (or past
its committed offset, when the position is unknown) in two checks ``idle_s`` apart,
with no record consumed in between, the consumer is stalled and the worker replaces
it. A consumer stuck that way may not get its own questions answered either (its
offsets time out) while the broker answers every other client: that counts as records
waiting (:data:`STUCK`); a broker that answers nobody is an outage, not a stall.
Replacing is safe: it is a rebalance like any other (the open span is committed on
revoke, the new assignment re-reads from committed offsets).

An idle worker with nothing to read costs one ListOffsets request per owned partition
every ``idle_s``; a busy one costs nothing.

>>> w = StallWatch(idle_s=10)
>>> w.check(now=0.0, lag=lambda: 5)         # first empty poll: the clock starts
False
>>> w.check(now=11.0, lag=lambda: 5)        # records waiting after 10 s of empty polls: suspect
False
>>> w.check(now=22.0, lag=lambda: 5)        # still waiting 10 s later: stalled
True
>>> w.consumed()                            # a record arrived: all clear
>>> w.check(now=23.0, lag=lambda: 5)
False
"""

from __future__ import annotations

from typing import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

STUCK = -1
""":func:`records_waiting`'s answer when the consumer's own questions fail while the cluster answers
another client: what does not work is the consumer, not the broker (counts as records waiting)."""


class StallWatch:
    def __init__(self, *, idle_s: float):
        self.idle_s = idle_s
        self._idle_since: float | None = None
        self._suspect_at: float | None = None

    def consumed(self) -> None:
        self._idle_since = self._suspect_at = None

    def check(self, *, now: float, lag: Callable[[], int | None]) -> bool:
        """After an empty poll: True when the consumer should be replaced. ``lag`` returns the
        records waiting past the consumer's positions, :data:`STUCK`, or None when the broker cannot say."""
        if self._idle_since is None:
            self._idle_since = now
            return False
        if now - self._idle_since < self.idle_s:
            return False
        if self._suspect_at is not None and now - self._suspect_at < self.idle_s:
            return False
        waiting = lag()
        if not waiting:
            self._idle_since, self._suspect_at = now, None  # nothing to read: idle, not stalled
            return False
        if self._suspect_at is None:
            self._suspect_at = now
            return False
        self.consumed()
        return True


def records_behind(consumer: Consumer) -> int:
    """Records past the consumer's position by the end offsets its last fetches saw (no request:
    librdkafka's cached watermarks), on the partitions it owns; a partition it has not read yet
    counts none, and so does every partition when the consumer cannot say (mid-rebalance): an
    undercount only holds the batch limit to its objective. Cheap enough for every full batch over it
    (:class:`stream.engine.batching.AdaptiveBatchSize`)."""
    behind = 0
    try:
        for tp in consumer.position(consumer.assignment()):
            if tp.offset >= 0:
                high = consumer.get_watermark_offsets(tp, cached=True)[1]
                if high > tp.offset:
                    behind += high - tp.offset
    except KafkaException:
        return 0
    return behind


def records_waiting(consumer: Consumer, *, cluster_answers: Callable[[], bool] | None = None) -> int | None:
    """Records past the consumer's position (its committed offset while the position is unknown)
    on the partitions it owns, by the broker's (last stable) end offsets. When the consumer's questions
    fail: :data:`STUCK` if ``cluster_answers()`` (the broker answers another client), else None (the
    broker cannot say)."""
    assignment = consumer.assignment()
    if not assignment:
        return 0
    try:
        positions = consumer.position(assignment)
        committed = None
        waiting = 0
        for tp in positions:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=2)
            at = tp.offset
            if at < 0:
                if committed is None:
                    committed = {(c.topic, c.partition): c.offset for c in consumer.committed(assignment, timeout=5)}
                at = committed.get((tp.topic, tp.partition), -1)
                at = low if at < 0 else at  # nothing committed: auto.offset.reset=earliest
            waiting += max(0, high - at)
        return waiting
    except KafkaException:
        return STUCK if cluster_answers is not None and cluster_answers() else None
