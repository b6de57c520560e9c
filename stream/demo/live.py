"""Drive the live arm through Kafka: each rating becomes a query, then feedback.

For stream rating ``i`` (user u rated movie m with r):

1. query ``<run>-<i>``: u's context, candidates = m plus ``n_candidates - 1``
   movies drawn from the catalog (seeded by i), shuffled;
2. the worker's prediction: its score for m is the progressive-validation
   prediction (made before r is known);
3. feedback: u gave m the rating r; the worker learns from it and publishes a
   user-weight model-update, which completes rating i.

A user's ratings go strictly one after another (rating i+1 of u is queried
only after u's update for rating i), so each prediction has seen all of that
user's earlier ratings, as in the in-process arms. Different users run
concurrently: ratings are admitted in time order while fewer than ``window``
are admitted but unfinished.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from features.errors import EddyError
from stream import events
from stream.client import EddyClient, reader
from stream.config import Settings
from stream.demo.metrics import percentiles
from stream.retrain_trigger import RollingRMSE

EVENTS_PER_RATING = 6  # in: query, feedback; out: prediction, decision, model-update, outcome


class LiveStalled(EddyError, RuntimeError):
    """No answer from the worker for too long."""


@dataclass
class LiveResult:
    pred: np.ndarray  # (n,) the worker's score for the rated item, before its feedback; NaN if none
    latency_ms: np.ndarray  # (n,) query sent -> prediction read, through Kafka
    worker_latency_ms: np.ndarray  # (n,) the prediction's own latency_ms (inside the worker)
    wall_s: float
    versions: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    probe_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # one query at a time, before the stream

    @property
    def answered(self) -> int:
        return int(np.isfinite(self.pred).sum())


class LiveRun:
    def __init__(self, settings: Settings, stream: list[dict], catalog: list[dict], *, run_id: str,
                 n_candidates: int = 5, window: int = 10_000, seed: int = 0, progress: bool = True,
                 stall_s: float = 60.0, rolling: int = 1000, check_worker=None):
        self.s = settings
        self.stream = stream
        self.catalog = [events.Item(c["id"], c.get("features") or {}) for c in catalog]
        self.run_id = run_id
        self.n_candidates = max(1, min(n_candidates, len(self.catalog)))
        self.window = window
        self.seed = seed
        self.progress = progress
        self._bar: tqdm | None = None
        self.stall_s = stall_s
        self.rolling = RollingRMSE(rolling)
        self.check_worker = check_worker or (lambda: None)

    # ------------------------------------------------------------ messages
    def query(self, i: int, ts: float) -> events.Query:
        r = self.stream[i]
        rated = events.Item(r["item"]["id"], r["item"].get("features") or {})
        rng = np.random.default_rng([self.seed, i])
        others = []
        for j in rng.permutation(len(self.catalog)):
            if len(others) == self.n_candidates - 1:
                break
            if self.catalog[j].id != rated.id:
                others.append(self.catalog[j])
        others.insert(int(rng.integers(len(others) + 1)), rated)
        return events.Query(request_id=f"{self.run_id}-{i}", user_id=r["user_id"], ts=ts, context=r["context"],
                            candidates=tuple(others), k=1)

    def warm_up(self, timeout_s: float = 120.0) -> None:
        """One query answered: the worker is assigned its partitions and serving."""
        client = EddyClient(self.s)
        consumer = reader(self.s, [self.s.topic("predictions")])
        try:
            q = events.Query(request_id=f"{self.run_id}-warmup", user_id="warmup", ts=time.time(),
                             context=self.stream[0]["context"], candidates=(self.catalog[0],), k=1)
            client.send(q)
            client.flush()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                self.check_worker()
                for m in consumer.consume(100, 0.2):
                    if not m.error() and json.loads(m.value()).get("request_id") == q.request_id:
                        return
            raise LiveStalled(f"the worker did not answer a first query within {timeout_s:.0f}s")
        finally:
            consumer.close()

    def probe(self, n: int = 100, timeout_s: float = 30.0) -> np.ndarray:
        """Latency (ms) of ``n`` queries sent one at a time (no load), query sent -> prediction read."""
        client = EddyClient(self.s)
        consumer = reader(self.s, [self.s.topic("predictions")])
        out = []
        try:
            for k in range(min(n, len(self.stream))):
                q = self.query(k, time.time())
                q = events.Query(f"{self.run_id}-probe-{k}", f"probe-{k}", q.ts, q.context, q.candidates, 1)
                t0 = time.monotonic()
                client.send(q)
                client.flush()
                deadline = t0 + timeout_s
                while time.monotonic() < deadline:
                    msgs = consumer.consume(100, 0.002)
                    if any(not m.error() and json.loads(m.value()).get("request_id") == q.request_id for m in msgs):
                        out.append((time.monotonic() - t0) * 1000)
                        break
                else:
                    raise LiveStalled(f"probe query {q.request_id} unanswered after {timeout_s:.0f}s")
        finally:
            consumer.close()
        return np.asarray(out)

    # ----------------------------------------------------------------- run
    def run(self) -> LiveResult:
        n = len(self.stream)
        pred = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        wlat = np.full(n, np.nan)
        versions: dict[str, int] = defaultdict(int)
        client = EddyClient(self.s)
        consumer = reader(self.s, [self.s.topic(t) for t in ("predictions", "model-updates", "dead-letter")])
        prefix = f"{self.run_id}-"
        sent_at: dict[int, float] = {}
        queued: dict[str, deque[int]] = defaultdict(deque)
        busy: set[str] = set()
        admitted = completed = dead = 0
        start = last_msg = last_print = time.monotonic()

        def dispatch(i: int) -> None:
            busy.add(self.stream[i]["user_id"])
            sent_at[i] = time.monotonic()
            client.send(self.query(i, time.time()))

        def complete(i: int) -> None:
            nonlocal completed
            if sent_at.pop(i, None) is None:
                return  # already completed (a re-read record)
            completed += 1
            u = self.stream[i]["user_id"]
            busy.discard(u)
            if queued[u]:
                dispatch(queued[u].popleft())

        try:
            while completed < n:
                while admitted < n and admitted - completed < self.window:
                    u = self.stream[admitted]["user_id"]
                    if u in busy:
                        queued[u].append(admitted)
                    else:
                        dispatch(admitted)
                    admitted += 1
                msgs = consumer.consume(1000, 0.005)
                now = time.monotonic()
                for m in msgs:
                    if m.error():
                        continue
                    last_msg = now
                    if m.topic() == self.s.topic("dead-letter"):
                        i = self._index_of(m.value(), prefix)
                        if i is not None and i in sent_at:
                            dead += 1
                            complete(i)
                        continue
                    obj = json.loads(m.value())
                    rid = obj.get("request_id") or ""
                    if not rid.startswith(prefix) or not rid[len(prefix):].isdigit():
                        continue
                    i = int(rid[len(prefix):])
                    if m.topic() == self.s.topic("predictions"):
                        if i not in sent_at or np.isfinite(pred[i]):
                            continue
                        r = self.stream[i]
                        item = r["item"]["id"]
                        pred[i] = next(x["score"] for x in obj["ranked"] if x["item_id"] == item)
                        lat[i] = (now - sent_at[i]) * 1000
                        wlat[i] = obj.get("latency_ms", np.nan)
                        versions[obj["versions"]["feature_net"]] += 1
                        self.rolling.add(pred[i] - r["reward"])
                        client.send(events.Feedback(rid, r["user_id"], item, r["reward"], time.time()))
                    elif obj.get("kind") == "user_weights":
                        complete(i)
                if self.progress and now - last_print >= 1.0:
                    last_print = now
                    self._print(completed, n, now - start, lat, len(sent_at))
                if now - last_msg > self.stall_s:
                    self.check_worker()
                    raise LiveStalled(f"no answer from the worker for {self.stall_s:.0f}s with {len(sent_at)} "
                                      f"ratings in flight ({completed}/{n} done)")
                if not msgs:
                    self.check_worker()
            client.flush()
        finally:
            consumer.close()
        wall = time.monotonic() - start
        if self.progress:
            self._print(completed, n, wall, lat, 0)
            self._bar.close()
            self._bar = None
        return LiveResult(pred, lat, wlat, wall, dict(versions), dead)

    @staticmethod
    def _index_of(raw: bytes | None, prefix: str) -> int | None:
        try:
            rid = str(json.loads(raw or b"{}").get("request_id", ""))
        except (ValueError, AttributeError):
            return None
        tail = rid[len(prefix):] if rid.startswith(prefix) else ""
        return int(tail) if tail.isdigit() else None

    def _print(self, done: int, n: int, elapsed: float, lat: np.ndarray, inflight: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=n, desc="live", unit="rating", file=sys.stderr, mininterval=1.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        p = percentiles(lat[np.isfinite(lat)][-5000:])
        self._bar.update(done - self._bar.n)
        self._bar.set_postfix_str(f"{rate * EVENTS_PER_RATING:,.0f} events/s, rolling RMSE {self.rolling.value:.4f}, "
                                  f"p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms, in flight {inflight}", refresh=False)
