"""The Kafka baselines, each run as its own process by :mod:`benchmarks.sut`.

* :func:`echo_worker`: the transport floor. It *is* the worker's shell
  (:class:`stream.worker.Worker`) around :class:`EchoEngine`: the same consumer and producer settings,
  the same poll loop, batching and publish path (one Kafka transaction per
  batch in ``exactly_once`` mode; flush + synchronous commit in
  ``at_least_once``), with the work taken out: each query is published
  unchanged to the predictions topic, feedback is read and dropped, nothing
  touches Redis. Built on the worker rather than written beside it, the floor
  follows every change to the worker's loop and client settings, so what the
  worker adds on top of its floor is its own work.
* :func:`run_naive`: the pipeline people write first. One message at a
  time, one feature-net forward pass per query, a Redis round trip for the
  user's state on every event (no local cache), then produce, flush and a
  synchronous offset commit per message (at-least-once, no transactions).
"""

from __future__ import annotations

import signal

from confluent_kafka import Consumer, Producer

from stream import events
from stream.config import Settings
from stream.engine import Batch, BatchOutputs, BatchWrite, InRecord
from stream.events import EventError
from stream.kafka_io import produce
from stream.worker import Worker


class EchoEngine:
    """An engine with the work taken out: each query's bytes go to the predictions topic as they came."""

    model = None

    def process(self, records: list[InRecord], state: object, *, started: float | None = None,
                optimistic: bool = False) -> Batch:
        """``optimistic`` is the engine's (a batch that decides without reading for stored decisions):
        an echo decides nothing, so there is nothing to check either way."""
        batch = Batch(BatchOutputs(), BatchWrite())
        for r in records:
            if r.kind == "query":
                batch.outputs.predictions.append((r.key, r.value))
                batch.counts["echoed"] += 1
        return batch

    def commit(self, batch: Batch) -> None:
        pass

    def forget(self) -> None:
        pass

    def policy_snapshot(self) -> None:
        return None


def echo_worker(settings: Settings) -> Worker:
    """The worker's own shell (polling, batching, transactions, client settings) around :class:`EchoEngine`."""
    return Worker(settings, engine=EchoEngine())


class _Stop:
    def __init__(self) -> None:
        self.flag = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.set)

    def set(self, *_: object) -> None:
        self.flag = True


def run_naive(settings: Settings) -> int:
    from benchmarks.scoring import PerEventScorer, load_live_model
    from features.model import limit_threads

    limit_threads(settings.torch_threads)
    scorer = PerEventScorer(settings, load_live_model(settings))
    t = settings.topics
    producer = Producer(settings.producer_config())
    consumer = Consumer(settings.consumer_config())
    consumer.subscribe([t["queries"], t["feedback"]])
    stop = _Stop()
    counts = {"predictions": 0, "feedback_applied": 0, "dropped": 0}
    try:
        while not stop.flag:
            m = consumer.poll(settings.poll_timeout_ms / 1000)
            if m is None or m.error():
                continue
            key = m.key()
            try:
                if m.topic() == t["queries"]:
                    prediction, decision = scorer.predict(events.decode_query(m.value()))
                    produce(producer, t["predictions"], events.encode(prediction), key=key)
                    produce(producer, t["decisions"], events.encode(decision), key=key)
                    counts["predictions"] += 1
                else:
                    update = scorer.learn(events.decode_feedback(m.value()))
                    if update is not None:
                        produce(producer, t["model-updates"], events.encode(update), key=key)
                        counts["feedback_applied"] += 1
                    else:
                        counts["dropped"] += 1
            except EventError:
                counts["dropped"] += 1
            producer.flush(30)
            consumer.commit(message=m, asynchronous=False)
    finally:
        consumer.close()
        producer.flush(10)
    print(" ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    return 0
