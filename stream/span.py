"""The batches a worker has published since its last commit.

Batches published within ``commit_interval_ms`` share one Kafka transaction (or, at
least once, one offset commit). The span remembers what that commit needs and what a
failure needs: the outputs and offsets to commit, whether its predictions are
acknowledged, and the first offset of each partition to rewind to. Every batch of a
span is in Redis before it joins the span, so a span that is aborted is re-read and
re-emitted, never learned twice.

>>> from stream.engine import InRecord
>>> span = CommitSpan()
>>> span.add([InRecord("query", "q", 0, 7, None, b"")], {("q", 0): 8}, now=1.0)
>>> span.add([InRecord("query", "q", 0, 8, None, b"")], {("q", 0): 9}, now=1.05)
>>> span.first, span.offsets, span.batches
({('q', 0): 7}, {('q', 0): 9}, 2)
>>> span.due(1.05, 0.1), span.due(1.1, 0.1)
(False, True)
>>> span.predictions_sent = 2
>>> span.prediction_delivered(None, None)
>>> span.predictions_unacknowledged()
1
"""

from __future__ import annotations

import threading

from stream.engine import InRecord


def first_offsets(records: list[InRecord],
                  into: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """The first offset of each partition among ``records`` (and ``into``, which wins)."""
    first = dict(into or {})
    for r in records:
        first.setdefault((r.topic, r.partition), r.offset)
    return first


def rewind_positions(spans: list[CommitSpan]) -> dict[tuple[str, int], int]:
    """Where to rewind after ``spans`` (oldest first) failed: each partition's first offset in the
    earliest span that read it (a later span's first offset would skip the earlier span's records)."""
    first: dict[tuple[str, int], int] = {}
    for span in spans:
        for tp, offset in span.first.items():
            first.setdefault(tp, offset)
    return first


def committed_already(offsets: dict[tuple[str, int], int], committed: dict[tuple[str, int], int | None]) -> bool:
    """Whether the group's committed offsets cover a span's ``offsets`` on every partition: its
    transaction committed after all (a transaction is atomic, and committed offsets only move on).

    >>> committed_already({("q", 0): 9, ("q", 1): 4}, {("q", 0): 9, ("q", 1): 5})
    True
    >>> committed_already({("q", 0): 9, ("q", 1): 4}, {("q", 0): 7, ("q", 1): 5})
    False
    >>> committed_already({("q", 0): 9}, {("q", 0): None}), committed_already({}, {})
    (False, False)
    """
    return bool(offsets) and all((committed.get(tp) or -1) >= o for tp, o in offsets.items())


class CommitSpan:
    """The batches published since the last commit: their first offsets (to rewind to), the offsets
    to commit, the outputs the transaction will carry, and how many of their predictions the
    broker has acknowledged (counted by delivery callbacks, which may run on either thread)."""

    __slots__ = ("first", "offsets", "batches", "opened", "outputs", "outboxes", "predictions_sent",
                 "prediction_error", "commit_sent", "_acknowledged", "_lock")

    def __init__(self) -> None:
        self.first: dict[tuple[str, int], int] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.batches = 0
        self.opened = 0.0
        self.outputs: list[tuple[str, bytes | None, bytes, list | None]] = []
        self.outboxes: list[tuple[int, str]] = []  # the outboxes of its batches' markers: deleted once it commits
        self.predictions_sent = 0
        self.prediction_error = None
        # Set once commit_transaction was called: from then on a failure may hide a commit that took effect.
        self.commit_sent = False
        self._acknowledged = 0
        self._lock = threading.Lock()

    @property
    def empty(self) -> bool:
        return self.batches == 0

    def add(self, records: list[InRecord], offsets: dict[tuple[str, int], int], now: float) -> None:
        if self.batches == 0:
            self.opened = now
        self.batches += 1
        self.first = first_offsets(records, self.first)
        self.offsets.update(offsets)

    def due(self, now: float, interval_s: float) -> bool:
        return not self.empty and now - self.opened >= interval_s

    def prediction_delivered(self, err, _msg) -> None:
        """librdkafka's delivery report for one of this span's predictions."""
        with self._lock:
            self._acknowledged += 1
            if err is not None and self.prediction_error is None:
                self.prediction_error = err

    def predictions_unacknowledged(self) -> int:
        with self._lock:
            return self.predictions_sent - self._acknowledged
