"""What the worker runs between batches on a schedule, over the partitions it holds epochs of.

:class:`PartitionJob` is the schedule and the error policy the held-feedback sweep
(:mod:`stream.held`) and the reward timer (:mod:`stream.rewards`) share: about every
``every_s``, and only while the worker holds epochs, one run of the job; a Redis outage
skips the run (the batch path reports outages), a Kafka failure is logged. Either way
what the run did not finish is still in Redis, and the next run (or the partition's
next owner) does it again: each job is written so that doing it twice is safe.
"""

from __future__ import annotations

import logging
from collections import Counter

from confluent_kafka import KafkaException, Producer

from stream.config import Settings
from stream.kafka_io import KafkaUnavailable
from stream.store import RedisStore, StoreUnavailable


class PartitionJob:
    every_s = 1.0
    log = logging.getLogger("eddy.worker")
    kafka_failed = "could not publish (%s)"  # the warning when Kafka fails a run; %s is the error

    def __init__(self, store: RedisStore, settings: Settings, stats: Counter[str]):
        self.store = store
        self.s = settings
        self.stats = stats
        self._next = 0.0

    def enabled(self) -> bool:
        return True

    def maybe_run(self, now: float, producer: Producer, eos: bool, epochs: dict[int, int]) -> None:
        """``now`` is monotonic (the schedule); deadlines are wall-clock, like the decisions' timestamps."""
        if not self.enabled() or now < self._next or not epochs:
            return
        self._next = now + self.every_s
        try:
            self._run(producer, eos, dict(epochs))
        except StoreUnavailable:
            pass  # the batch path reports outages
        except (KafkaException, KafkaUnavailable) as exc:
            self.log.warning(self.kafka_failed, exc)

    def _run(self, producer: Producer, eos: bool, epochs: dict[int, int]) -> None:
        raise NotImplementedError
