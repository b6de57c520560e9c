"""The batches a worker has published since its last commit.

Batches published within ``commit_interval_ms`` share one Kafka transaction (or, at
least once, one offset commit). The span remembers what that commit needs and what a
failure needs: the offsets to commit, and the first offset of each partition to rewind
to. Every batch of a span is in Redis before it joins the span, so a span that is
aborted is re-read and re-emitted, never learned twice.

>>> from stream.engine import InRecord
>>> span = CommitSpan()
>>> span.add([InRecord("query", "q", 0, 7, None, b"")], {("q", 0): 8}, now=1.0)
>>> span.add([InRecord("query", "q", 0, 8, None, b"")], {("q", 0): 9}, now=1.05)
>>> span.first, span.offsets, span.batches
({('q', 0): 7}, {('q', 0): 9}, 2)
>>> span.due(1.05, 0.1), span.due(1.1, 0.1)
(False, True)
"""

from __future__ import annotations

from stream.engine import InRecord


def first_offsets(records: list[InRecord],
                  into: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """The first offset of each partition among ``records`` (and ``into``, which wins)."""
    first = dict(into or {})
    for r in records:
        first.setdefault((r.topic, r.partition), r.offset)
    return first


class CommitSpan:
    """The batches published since the last commit: their first offsets (to rewind to), the offsets
    to commit, and whether a Kafka transaction is open for them."""

    __slots__ = ("first", "offsets", "batches", "opened", "in_transaction")

    def __init__(self) -> None:
        self.first: dict[tuple[str, int], int] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.batches = 0
        self.opened = 0.0
        self.in_transaction = False

    @property
    def empty(self) -> bool:
        return self.batches == 0 and not self.in_transaction

    def add(self, records: list[InRecord], offsets: dict[tuple[str, int], int], now: float) -> None:
        if self.batches == 0:
            self.opened = now
        self.batches += 1
        self.first = first_offsets(records, self.first)
        self.offsets.update(offsets)

    def due(self, now: float, interval_s: float) -> bool:
        return not self.empty and now - self.opened >= interval_s
