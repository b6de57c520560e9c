"""The open-loop load generator over Kafka (it runs in the benchmark's process, never in the system's).

Query ``i`` of a step is *scheduled* at ``t0 + i / rate`` and sent then,
whatever happened to earlier queries; its latency is measured from that
scheduled time to the moment its prediction is consumed, so queueing in the
system (or in the generator, if it falls behind) is counted, never hidden
(no coordinated omission). A request never answered counts as infinitely
slow. The producer runs on its own thread; the calling thread consumes
predictions and sends feedback for ``feedback_ratio`` of them, as an
application would after acting on a prediction.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

import numpy as np
from confluent_kafka import Producer

from benchmarks.stats import summarize, timeline
from stream import events
from stream.client import reader
from stream.config import Settings, redacted
from stream.kafka_io import produce, quiet_logging
from stream.simulator import SimulatedWorld

_RID = b'"request_id":"'


def request_id(value: bytes) -> bytes | None:
    """The request id of a query or prediction without parsing the JSON."""
    i = value.find(_RID)
    if i < 0:
        return None
    i += len(_RID)
    return value[i : value.index(b'"', i)]


class QueryPool:
    """Pre-encoded query bodies (context and candidates from the simulator); id, user and ts filled at send."""

    def __init__(self, world: SimulatedWorld, size: int):
        self.tails: list[bytes] = []
        self.users: list[bytes] = []
        self.first_item: list[str] = []
        for k in range(size):
            d = world.query(k, ts=0.0).to_dict()
            tail = json.dumps({"context": d["context"], "candidates": d["candidates"], "k": d.get("k", 1)},
                              separators=(",", ":"))
            self.tails.append(tail[1:].encode())
            self.users.append(d["user_id"].encode())
            self.first_item.append(d["candidates"][0]["id"])

    def __len__(self) -> int:
        return len(self.tails)

    def body(self, i: int, rid: bytes, uid: bytes | None = None) -> tuple[bytes, bytes]:
        """(key, value) of query ``i``: the user id is the key, as :class:`stream.client.EddyClient` sends it."""
        j = i % len(self.tails)
        uid = uid or self.users[j]
        return uid, b'{"schema":"eddy.query/1","request_id":"%s","user_id":"%s","ts":%s,%s' % (
            rid, uid, repr(time.time()).encode(), self.tails[j])


def poll_batch(consumer, timeout: float, most: int = 1000) -> list:
    """What has arrived, returning as soon as one message is there (``consume(n, t)`` would wait all of ``t``)."""
    first = consumer.consume(1, timeout)
    return first + consumer.consume(most - 1, 0) if first else first


def feedback_for(value: bytes, reward: float) -> tuple[bytes, bytes] | None:
    """(key, feedback bytes) for an answer: its chosen item (or, for an echoed query, the first candidate)."""
    p = json.loads(value)
    item = p["chosen"][0] if "chosen" in p else p["candidates"][0]["id"]
    fb = events.Feedback(p["request_id"], p["user_id"], item, reward, time.time())
    return p["user_id"].encode(), events.encode(fb)


class KafkaLoad:
    def __init__(self, settings: Settings, pool: QueryPool, *, feedback_ratio: float, seed: int = 0,
                 saturate_ms: float = 1000.0):
        self.s = settings
        self.saturate_ms = saturate_ms
        self.pool = pool
        self.feedback_ratio = feedback_ratio
        self.rng = np.random.default_rng(seed)
        self.producer = Producer(settings.producer_config(**quiet_logging()))
        self.consumer = reader(settings, [settings.topic("predictions")])
        self.t_queries, self.t_feedback = settings.topic("queries"), settings.topic("feedback")

    @staticmethod
    def config(settings: Settings) -> dict:
        strip = ("bootstrap.servers", "group.id")
        return {"producer": {k: v for k, v in redacted(settings.producer_config()).items() if k not in strip},
                "consumer": {k: v for k, v in redacted(settings.consumer_config()).items() if k not in strip}}

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        produce(self.producer, topic, value, key=key)

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()

    # ------------------------------------------------------------------ steps
    def run_step(self, rate: float, duration_s: float, *, drain_s: float, tag: str,
                 users: list[bytes] | None = None) -> dict:
        """One open-loop step at ``rate`` queries/s; returns its summary (see :func:`step_summary`)."""
        n = max(1, int(rate * duration_s))
        tagb = tag.encode()
        lat = np.full(n, np.inf)
        lag = np.zeros(n)
        pool, producer, topic = self.pool, self.producer, self.t_queries
        user_of = (lambda i: users[i % len(users)]) if users else (lambda i: None)

        failed: list[BaseException] = []

        def send() -> None:
            try:
                _send()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
                failed.append(exc)

        def _send() -> None:
            for i in range(n):
                due = t0 + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                key, body = pool.body(i, tagb + str(i).encode(), user_of(i))
                produce(producer, topic, body, key=key)
                lag[i] = time.perf_counter() - due
                if i % 32 == 0:
                    self.producer.poll(0)
            self.producer.flush(30)

        sender = threading.Thread(target=send, name="bench-producer", daemon=True)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)  # the sender must not wait 5 ms for the GIL
        gc.collect()
        gc.disable()
        answered = fb_sent = dup = 0
        t0 = time.perf_counter() + 0.05  # after the collection: the schedule starts on time
        first = last = None
        end = t0 + duration_s + drain_s
        try:
            sender.start()
            while answered < n and time.perf_counter() < end:
                msgs = poll_batch(self.consumer, 0.005)
                now = time.perf_counter()
                for m in msgs:
                    if m.error():
                        continue
                    v = m.value()
                    rid = request_id(v)
                    if rid is None or not rid.startswith(tagb):
                        continue  # a late answer from an earlier step
                    i = int(rid[len(tagb):])
                    if lat[i] != np.inf:
                        dup += 1
                        continue
                    lat[i] = (now - (t0 + i / rate)) * 1000
                    answered += 1
                    first = first or now
                    last = now
                    if self.feedback_ratio and self.rng.random() < self.feedback_ratio:
                        key, fb = feedback_for(v, float(self.rng.random() < 0.3))
                        self.produce(self.t_feedback, key, fb)
                        fb_sent += 1
                self.producer.poll(0)
            sender.join()
            if failed:
                raise failed[0]
        finally:
            gc.enable()
            sys.setswitchinterval(switch)
        return step_summary(rate, duration_s, lat, lag * 1000, first=first, last=last, feedback_sent=fb_sent,
                            duplicates=dup, saturate_ms=self.saturate_ms)

    def settle(self, idle_s: float = 0.5, max_s: float = 60.0) -> int:
        """Read and drop answers until none arrive for ``idle_s`` (a saturated step leaves a backlog)."""
        end = time.monotonic() + max_s
        quiet_since = time.monotonic()
        dropped = 0
        while time.monotonic() < end and time.monotonic() - quiet_since < idle_s:
            msgs = self.consumer.consume(1000, 0.1)
            if msgs:
                dropped += len(msgs)
                quiet_since = time.monotonic()
        return dropped


def step_summary(rate: float, duration_s: float, lat_ms: np.ndarray, lag_ms: np.ndarray, *, first: float | None,
                 last: float | None, feedback_sent: int, duplicates: int = 0, saturate_ms: float = 1000.0) -> dict:
    """The step's numbers; ``first``/``last``: when its first and last answers arrived (answered/s between them)."""
    s = summarize(lat_ms)
    sent = int(lat_ms.size)
    n = s["answered"]
    throughput = (n - 1) / (last - first) if n > 1 and last > first else float(n)
    reasons = []
    if s["answered"] < sent:
        reasons.append(f"{sent - s['answered']} of {sent} unanswered")
    if s["p99"] is None or s["p99"] > saturate_ms:
        reasons.append(f"p99 > {saturate_ms:g} ms")
    if throughput < 0.9 * min(rate, sent / duration_s):
        reasons.append(f"answered {throughput:.0f}/s < 90% of offered")
    return {
        "rate": rate, "duration_s": duration_s, "sent": sent, "throughput": round(throughput, 1),
        "latency_ms": s, "send_lag_ms": {"p50": round(float(np.percentile(lag_ms, 50)), 4),
                                         "p99": round(float(np.percentile(lag_ms, 99)), 4),
                                         "max": round(float(lag_ms.max()), 4)},
        "feedback_sent": feedback_sent, "duplicates": duplicates, "timeline": timeline(lat_ms, rate),
        "saturated": bool(reasons), "saturation_reason": "; ".join(reasons),
    }
