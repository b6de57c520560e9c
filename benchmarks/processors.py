"""The Kafka baselines, each run as its own process by :mod:`benchmarks.sut`.

* :class:`EchoWorker`: the transport floor. It *is* the worker
  (:class:`stream.worker.Worker`): the same consumer and producer settings,
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

from confluent_kafka import Consumer, Message, Producer

from stream import events
from stream.config import Settings
from stream.events import EventError
from stream.worker import Outputs, Worker


class EchoWorker(Worker):
    """The worker with ``_handle_batch`` reduced to echoing queries through the worker's own ``_publish``."""

    def _handle_batch(self, msgs: list[Message], consumer: Consumer, producer: Producer, eos: bool) -> None:
        out = Outputs()
        offsets: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error():
                continue
            offsets[(m.topic(), m.partition())] = m.offset() + 1
            if m.topic() == self.t["queries"]:
                out.records.append((self.t["predictions"], m.key(), m.value()))
                self.stats["echoed"] += 1
        self._publish(out, consumer, producer, eos, offsets)

    def _maybe_swap(self, now: float) -> None:  # no model is served: no registry polling
        pass

    def _refresh_prior(self, now: float) -> None:
        pass


class _Stop:
    def __init__(self) -> None:
        self.flag = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.set)

    def set(self, *_: object) -> None:
        self.flag = True


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key)
            return
        except BufferError:
            producer.poll(0.05)


def run_naive(settings: Settings) -> int:
    import torch

    from benchmarks.scoring import PerEventScorer, load_live_model

    torch.set_num_threads(settings.torch_threads)
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
                    _produce(producer, t["predictions"], key, events.encode(prediction))
                    _produce(producer, t["decisions"], key, events.encode(decision))
                    counts["predictions"] += 1
                else:
                    update = scorer.learn(events.decode_feedback(m.value()))
                    if update is not None:
                        _produce(producer, t["model-updates"], key, events.encode(update))
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
