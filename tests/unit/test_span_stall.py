"""The worker's pure bookkeeping: the commit span (what a commit carries, where a failure rewinds
to) and the stall watch (when an idle consumer is declared stuck), without a broker.

Each test's docstring names the bug it was checked to catch (planted by hand, seen failing).
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.engine import InRecord
from stream.span import CommitSpan, first_offsets, rewind_positions
from stream.stall import STUCK, StallWatch, records_behind, records_waiting

pytestmark = pytest.mark.unit


def recs(*where: tuple[str, int, int]) -> list[InRecord]:
    return [InRecord("query", t, p, o, None, b"") for t, p, o in where]


# ------------------------------------------------------------------------ span
def test_first_offsets_keep_each_partitions_earliest_record_and_what_was_known_before():
    """Overwriting with a later record (``first[tp] = offset``) would rewind past records never committed."""
    records = recs(("q", 0, 7), ("q", 1, 3), ("q", 0, 8), ("f", 0, 5), ("q", 1, 4))
    assert first_offsets(records) == {("q", 0): 7, ("q", 1): 3, ("f", 0): 5}
    assert first_offsets(recs(("q", 0, 9), ("q", 2, 1)), into={("q", 0): 7}) == {("q", 0): 7, ("q", 2): 1}
    assert first_offsets([]) == {}


def test_a_span_rewinds_to_its_first_batch_and_commits_its_last_offsets():
    """A span of three batches: rewinding goes to the first batch's offsets (a span that forgot them
    would lose the first batches on abort); the commit carries the newest offsets."""
    span = CommitSpan()
    assert span.empty and not span.due(100.0, 0.0)
    span.add(recs(("q", 0, 10), ("q", 1, 20)), {("q", 0): 11, ("q", 1): 21}, now=1.0)
    span.add(recs(("q", 0, 11), ("f", 3, 5)), {("q", 0): 12, ("f", 3): 6}, now=2.0)
    span.add(recs(("q", 1, 21)), {("q", 1): 22}, now=3.0)
    assert span.batches == 3 and not span.empty
    assert span.first == {("q", 0): 10, ("q", 1): 20, ("f", 3): 5}
    assert span.offsets == {("q", 0): 12, ("q", 1): 22, ("f", 3): 6}


def test_a_span_is_due_an_interval_after_its_first_batch_not_its_last():
    """``opened`` reset by every batch would keep a span under steady traffic from ever committing."""
    span = CommitSpan()
    span.add(recs(("q", 0, 0)), {("q", 0): 1}, now=10.0)
    span.add(recs(("q", 0, 1)), {("q", 0): 2}, now=10.25)
    assert not span.due(10.49, 0.5)
    assert span.due(10.5, 0.5)  # the boundary is due (>=)
    assert span.opened == 10.0


def test_rewind_positions_after_two_failed_spans_are_the_earlier_spans():
    """The span in flight and the open one fail together: a partition both read rewinds to the earlier
    span's first offset (the later one's would skip the earlier span's records)."""
    inflight, open_ = CommitSpan(), CommitSpan()
    inflight.add(recs(("q", 0, 100), ("q", 1, 50)), {("q", 0): 101, ("q", 1): 51}, now=0.0)
    open_.add(recs(("q", 0, 101), ("q", 2, 7)), {("q", 0): 102, ("q", 2): 8}, now=0.1)
    assert rewind_positions([inflight, open_]) == {("q", 0): 100, ("q", 1): 50, ("q", 2): 7}
    assert rewind_positions([open_]) == {("q", 0): 101, ("q", 2): 7}
    assert rewind_positions([]) == {}


def test_delivery_reports_count_acknowledgements_and_keep_the_first_error():
    """The span may commit only when every prediction is acknowledged; the first error is what aborts it
    (a later error overwriting it, or a failed delivery not counted, would be wrong)."""
    span = CommitSpan()
    span.predictions_sent = 4
    span.prediction_delivered(None, None)
    first, second = KafkaError(KafkaError._MSG_TIMED_OUT), KafkaError(KafkaError._TRANSPORT)
    span.prediction_delivered(first, None)
    span.prediction_delivered(second, None)
    assert span.predictions_unacknowledged() == 1 and span.prediction_error is first


# ----------------------------------------------------------------------- stall
class Lag:
    """The broker's answer to "records waiting?", counting how often it is asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = 0

    def __call__(self):
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_stalled_only_after_two_checks_an_idle_interval_apart_both_with_records_waiting():
    """One check with records waiting is only suspicion (a consumer between fetches looks the same);
    declaring a stall at the first would replace healthy consumers."""
    w, lag = StallWatch(idle_s=10), Lag(5)
    assert not w.check(now=0.0, lag=lag)  # the idle clock starts
    assert not w.check(now=9.99, lag=lag) and lag.asked == 0  # not idle long enough: the broker is not asked
    assert not w.check(now=10.0, lag=lag) and lag.asked == 1  # suspect
    assert not w.check(now=19.99, lag=lag) and lag.asked == 1  # the second check waits another interval
    assert w.check(now=20.0, lag=lag) and lag.asked == 2


def test_after_a_stall_is_reported_the_watch_starts_over():
    """The replaced consumer gets a full idle interval (no instant second replacement)."""
    w, lag = StallWatch(idle_s=10), Lag(5)
    w.check(now=0.0, lag=lag)
    w.check(now=10.0, lag=lag)
    assert w.check(now=20.0, lag=lag)
    assert not w.check(now=20.5, lag=lag) and not w.check(now=30.5, lag=lag)
    assert w.check(now=40.5, lag=lag)


@pytest.mark.parametrize("answer", [0, None])
def test_nothing_waiting_or_no_answer_is_idle_not_stalled_and_restarts_the_clock(answer):
    """A worker with nothing to read (0) or a broker that cannot say (None) is not stalled; the next
    question comes a full interval later (an idle worker costs one ListOffsets per interval)."""
    w, lag = StallWatch(idle_s=10), Lag(answer)
    w.check(now=0.0, lag=lag)
    assert not w.check(now=10.0, lag=lag) and lag.asked == 1
    assert not w.check(now=19.0, lag=lag) and lag.asked == 1
    assert not w.check(now=20.0, lag=lag) and lag.asked == 2


def test_a_record_consumed_clears_the_suspicion():
    """Records flowing again between the two checks: the consumer is healthy."""
    w, lag = StallWatch(idle_s=10), Lag(5)
    w.check(now=0.0, lag=lag)
    w.check(now=10.0, lag=lag)  # suspect
    w.consumed()
    assert not w.check(now=20.0, lag=lag)  # a new idle period starts here
    assert not w.check(now=30.0, lag=lag)  # suspect again
    assert w.check(now=40.0, lag=lag)


def test_suspicion_that_clears_needs_two_new_checks():
    """Records waiting, then none (the consumer caught up), then waiting again: suspicion starts over."""
    w, lag = StallWatch(idle_s=10), Lag(5, 0, 5, 5)
    w.check(now=0.0, lag=lag)
    assert not w.check(now=10.0, lag=lag)  # 5: suspect
    assert not w.check(now=20.0, lag=lag)  # 0: idle, clock restarts at 20
    assert not w.check(now=30.0, lag=lag)  # 5: suspect again, not stalled
    assert w.check(now=40.0, lag=lag)


class FakeConsumer:
    """What records_waiting asks a confluent-kafka consumer: assignment, positions, watermarks, committed."""

    def __init__(self, positions: dict[int, int], high: dict[int, int], low: int = 0,
                 committed: dict[int, int] | None = None, fail: bool = False):
        self.positions, self.high, self.low, self.committed_at, self.fail = positions, high, low, committed or {}, fail

    def assignment(self):
        return [TopicPartition("q", p) for p in self.positions]

    def position(self, tps):
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in tps]

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        self.cached = cached
        return self.low, self.high[tp.partition]

    def committed(self, tps, timeout):
        return [TopicPartition(tp.topic, tp.partition, self.committed_at.get(tp.partition, -1001)) for tp in tps]


def test_records_waiting_counts_past_the_position_or_the_committed_offset():
    """Position known: high - position. Unknown (-1001, before the first fetch): from the committed
    offset; nothing committed: from the low watermark (auto.offset.reset=earliest). Never negative."""
    c = FakeConsumer(positions={0: 10, 1: -1001, 2: -1001, 3: 50}, high={0: 15, 1: 40, 2: 9, 3: 45}, low=2,
                     committed={1: 30})
    assert records_waiting(c) == 5 + 10 + 7 + 0


def test_records_behind_counts_past_known_positions_from_cached_watermarks_only():
    """No request to the broker (the cached end offsets); a partition not read yet (-1001) counts none,
    and a watermark older than the position (cached before the last fetch) never counts negative."""
    c = FakeConsumer(positions={0: 10, 1: -1001, 2: 9, 3: 50}, high={0: 15, 1: 40, 2: 9, 3: 45})
    assert records_behind(c) == 5
    assert c.cached
    assert records_behind(FakeConsumer(positions={}, high={})) == 0
    assert records_behind(FakeConsumer(positions={0: 1}, high={0: 5}, fail=True)) == 0  # cannot say: not behind


def test_records_waiting_is_zero_without_partitions_and_none_when_the_broker_cannot_say():
    assert records_waiting(FakeConsumer(positions={}, high={})) == 0
    assert records_waiting(FakeConsumer(positions={0: 1}, high={0: 5}, fail=True)) is None


def test_a_consumer_whose_questions_fail_while_the_broker_answers_others_is_stuck():
    """The CI hang of 2026-12-06: after a broker restart the consumer fetched nothing and its own offset
    requests timed out, so every check read None (idle) and it was never replaced. Asked through another
    client, the broker answers: the consumer is stuck. A broker that answers nobody is still None."""
    failing = FakeConsumer(positions={0: -1001}, high={0: 5}, fail=True)
    asked = []
    assert records_waiting(failing, cluster_answers=lambda: asked.append(1) or True) == STUCK
    assert records_waiting(failing, cluster_answers=lambda: False) is None
    assert asked == [1]
    healthy = FakeConsumer(positions={0: 3}, high={0: 5})
    assert records_waiting(healthy, cluster_answers=lambda: asked.append(2) or True) == 2
    assert asked == [1]  # the other client is asked only when the consumer's questions fail


def test_stuck_twice_an_interval_apart_is_a_stall():
    w, lag = StallWatch(idle_s=10), Lag(STUCK)
    w.check(now=0.0, lag=lag)
    assert not w.check(now=10.0, lag=lag)  # suspect
    assert w.check(now=20.0, lag=lag)


class _Client:
    def __init__(self, up: bool):
        self.up, self.asked = up, 0

    def list_topics(self, timeout):
        self.asked += 1
        if not self.up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return object()


@pytest.mark.parametrize("up", [True, False])
def test_the_worker_asks_the_predictions_producer_not_the_busy_transactional_one(up):
    from stream.worker import Worker

    worker = object.__new__(Worker)  # only the two producers are read
    worker._answers, worker._producer = _Client(up), _Client(True)
    assert worker._cluster_answers() is up
    assert (worker._answers.asked, worker._producer.asked) == (1, 0)
    worker._answers = None  # at least once: one producer, not transactional
    assert worker._cluster_answers() is True and worker._producer.asked == 1
