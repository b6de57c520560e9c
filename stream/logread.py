"""Read a slice of an Eddy topic: by time range or by offsets, in batches, then stop.

Used by ``eddy train --from-log``, ``eddy export`` and ``eddy replay``. The
slice ends at the high watermark seen when reading starts, so a replay of a
live topic terminates and is reproducible from the offsets it reports.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from itertools import compress
from typing import Iterator

from confluent_kafka import Consumer, Message, TopicPartition
from tqdm import tqdm

from stream.config import Settings
from stream.kafka_io import TopicMissing, quiet_logging, wait_for_broker


@dataclass(frozen=True)
class Slice:
    """Which part of a topic to read: times are epoch seconds, offsets per partition."""

    since: float | None = None
    until: float | None = None
    start_offsets: dict[int, int] | None = None
    end_offsets: dict[int, int] | None = None

    @classmethod
    def last_minutes(cls, minutes: float | None) -> "Slice":
        return cls(since=time.time() - 60 * minutes) if minutes else cls()


@dataclass
class Batch:
    """Records of one consume call, as columns (partition, offset, timestamp in seconds, value)."""

    partitions: list[int]
    offsets: list[int]
    timestamps: list[float]
    values: list[bytes | None]


# Bulk reading: large fetches, so a slice streams at the broker's pace rather than in 1 MB round trips
# (librdkafka's default per-partition fetch); the local queue keeps its default bound (64 MB).
BULK_FETCH = {
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
}


def read_slice_batches(settings: Settings, topic: str, sl: Slice = Slice(), *, progress: bool = False,
                       batch: int = 20_000) -> Iterator[Batch]:
    """Every record of the slice, a consume call's worth (up to ``batch``) at a time."""
    wait_for_broker(settings)  # one line, not a 10 s metadata timeout, when the broker is not there
    consumer = Consumer(settings.consumer_config(group=f"eddy-slice-{uuid.uuid4().hex[:8]}",
                                                 **{"enable.partition.eof": False}, **BULK_FETCH,
                                                 **quiet_logging()))
    bar = None
    try:
        md = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error:
            raise TopicMissing(f"topic {topic!r} does not exist (create it with: eddy topics)")
        parts = sorted(md.partitions)
        starts, ends = {}, {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            starts[p], ends[p] = low, high
        if sl.since is not None:
            found = consumer.offsets_for_times([TopicPartition(topic, p, int(sl.since * 1000)) for p in parts], timeout=10)
            for tp in found:
                starts[tp.partition] = tp.offset if tp.offset >= 0 else ends[tp.partition]
        if sl.until is not None:
            found = consumer.offsets_for_times([TopicPartition(topic, p, int(sl.until * 1000)) for p in parts], timeout=10)
            for tp in found:
                if tp.offset >= 0:
                    ends[tp.partition] = tp.offset
        if sl.start_offsets:
            starts.update({p: o for p, o in sl.start_offsets.items() if p in starts})
        if sl.end_offsets:
            ends.update({p: o for p, o in sl.end_offsets.items() if p in ends})
        todo = {p for p in parts if starts[p] < ends[p]}
        total = sum(max(0, ends[p] - starts[p]) for p in parts)
        if not todo:
            return
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in todo])
        bar = tqdm(total=total, desc=f"reading {topic}", unit="rec", file=sys.stderr, disable=not progress,
                   mininterval=1.0, leave=True)
        idle_since = time.monotonic()
        left = total  # offsets still to read: no more records than that (fewer on a transactional topic)
        while todo:
            # Asking for no more than are left returns as soon as they are in, not after the timeout.
            msgs = consumer.consume(max(1, min(batch, left)), 0.5)
            if not msgs and time.monotonic() - idle_since > 30:
                raise TimeoutError(f"reading {topic}: no progress for 30 s with {sorted(todo)} unfinished")
            out, last = _batch(msgs, todo, ends)
            left -= len(out.values)
            if out.values:
                idle_since = time.monotonic()
                bar.update(len(out.values))
                yield out
            for p, o in last.items():
                if o + 1 >= ends[p]:
                    todo.discard(p)
            # A transactional topic has commit markers and aborted records: the
            # position can pass the end without a record at end-1.
            for p in list(todo):
                pos = consumer.position([TopicPartition(topic, p)])[0].offset
                if pos >= ends[p]:
                    todo.discard(p)
    finally:
        if bar is not None:
            bar.close()
        consumer.close()


def _batch(msgs: list[Message], todo: set[int], ends: dict[int, int]) -> tuple[Batch, dict[int, int]]:
    """The records of ``msgs`` inside the slice (an unfinished partition, before its end), and the last offset
    read of each partition. One C-level pass per field (a consume call returns up to tens of thousands)."""
    if any(map(Message.error, msgs)):
        msgs = [m for m in msgs if m.error() is None]
    parts = list(map(Message.partition, msgs))
    offsets = list(map(Message.offset, msgs))
    last = dict(zip(parts, offsets))  # a partition's records come in offset order: its last is its highest
    if not all(p in todo and o < ends[p] for p, o in last.items()):
        inside = [p in todo and o < ends[p] for p, o in zip(parts, offsets)]
        msgs, parts, offsets = (list(compress(c, inside)) for c in (msgs, parts, offsets))
        last = dict(zip(parts, offsets))
    stamps = [ts / 1000.0 for _, ts in map(Message.timestamp, msgs)]
    return Batch(parts, offsets, stamps, list(map(Message.value, msgs))), last


def read_slice(settings: Settings, topic: str, sl: Slice = Slice(), *, progress: bool = False,
               batch: int = 2000) -> Iterator[tuple[int, int, float, bytes | None]]:
    """Yield ``(partition, offset, timestamp_s, value)`` for every record of the slice."""
    for b in read_slice_batches(settings, topic, sl, progress=progress, batch=batch):
        yield from zip(b.partitions, b.offsets, b.timestamps, b.values)
