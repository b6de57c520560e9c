"""The sweep of early feedback whose decision never came: a dead letter once its join window has passed.

The engine holds feedback that comes before its decision (``{pN}:held``,
:meth:`stream.engine.Engine.process`) and applies it in the batch that decides
the request. The engine never applies an entry past its deadline; this sweep,
about once a second between batches and only for the partitions this worker
holds epochs of, dead-letters those entries (reason ``unknown_request``):

1. read the expired entries of each owned partition;
2. publish their dead letters in a Kafka transaction of their own (never
   inside a commit span: the sweep runs only while no commit is in flight);
3. then remove them from Redis and count them, in one MULTI/EXEC fenced by
   the partitions' epochs.

A failure in 2 leaves them held, and the next sweep publishes them again;
a crash between 2 and 3 makes the next owner publish them a second time.
So the dead letters are at least once, and their count (``held_expired``) is
exactly once: it is written with the removal.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Producer

from stream.engine import BatchWrite, DeadLetter
from stream.engine.batch import decode_held
from stream.kafka_io import publish_alone
from stream.periodic import PartitionJob

log = logging.getLogger("eddy.held")

SWEEP_EVERY_S = 1.0
SWEEP_LIMIT = 1000  # entries per partition per sweep: a backlog drains over a few sweeps


class HeldSweep(PartitionJob):
    every_s = SWEEP_EVERY_S
    log = log  # this module's logger, for PartitionJob's warning
    kafka_failed = "could not publish expired held feedback (%s); retrying at the next sweep"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts: dict[int, int] | None = None  # the last sweep's held entries per partition, until taken

    def take_counts(self) -> dict[int, int] | None:
        """Held entries per owned partition as the last sweep left them (None if no sweep ran since the last take)."""
        counts, self.counts = self.counts, None
        return counts

    def _run(self, producer: Producer, eos: bool, epochs: dict[int, int]) -> None:
        wall = time.time()
        dead: list[DeadLetter] = []
        write = BatchWrite()
        counts = {}
        for p in sorted(epochs):
            counts[p] = self.store.held_count(p)
            for rid, blob in self.store.expired_held(p, wall, SWEEP_LIMIT).items():
                held = decode_held(blob)
                dead.append(DeadLetter(held.record(), "unknown_request",
                                       f"no decision for request {rid!r} within the join window "
                                       f"({self.s.join_window_s:g}s) while its feedback was held"))
                write.released.add((p, rid))
        self.stats["feedback_held_now"] = sum(counts.values()) - len(dead)
        if not dead:
            self.counts = counts
            return
        publish_alone(producer, eos, [(self.s.topic("dead-letter"), None, d.record.key, d.value, d.headers)
                                      for d in dead])
        n = len(dead)
        write.counts = {"held_expired": n, "held_dead_lettered": n, "held_dead_lettered.unknown_request": n}
        if self.store.commit(write, group=self.s.group, epochs=epochs, instance=self.s.instance_id):
            log.info("dead-lettered %d held feedback(s) whose decision never came", n)
