"""Demo arms served by the worker's own engine: queries and feedback through :class:`stream.engine.Engine`,
every batch committed to the real Redis by :class:`stream.store.RedisStore` (Kafka is left out, so that
several arms fit in the demo's minutes; the live arm (b) is the one through Kafka).

:func:`stream_through_engine` streams ratings as the worker would see them: each rating is a query (the
rated movie among ``n_candidates - 1`` catalog movies, :func:`rating_query`) and then its feedback;
``batch`` queries arrive together (their ``ts`` is when the batch is handed to the engine), then their
feedback, so each prediction is made before its rating is learned (prequential). The arm's prediction of a
rating is the answering version's score of the rated movie (Exp4: the ensemble's). An answer is on time
when its batch was processed and committed within ``deadline_ms`` of the queries' ``ts``.

Arms built on it (:mod:`stream.demo.pipeline`): the expensive net exact and under a deadline (anytime,
:mod:`stream.engine.anytime`), the IDK cascade (:mod:`stream.engine.cascade`), and model selection
(:mod:`stream.engine.selection`; also :mod:`stream.demo.selection`).
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from stream import events
from stream.config import Settings
from stream.engine import Engine, InRecord
from stream.store import RedisStore

PARTITIONS = 4


def rating_query(i: int, r: dict, catalog: list[events.Item], n_candidates: int, seed: int, ts: float,
                 prefix: str = "arm") -> events.Query:
    """Rating ``i`` as a query: the rated movie at a seeded position among ``n_candidates - 1`` catalog movies."""
    rated = events.Item(r["item"]["id"], r["item"].get("features") or {})
    rng = np.random.default_rng([seed, i])
    others = [catalog[j] for j in rng.choice(len(catalog), n_candidates, replace=False) if catalog[j].id != rated.id]
    others = others[: n_candidates - 1]
    others.insert(int(rng.integers(len(others) + 1)), rated)
    return events.Query(f"{prefix}-{i}", r["user_id"], ts, r["context"], tuple(others), 1)


@dataclass
class EngineRun:
    """One arm's run: per streamed rating (NaN / None / False after the first ``n``)."""

    pred: np.ndarray
    decisions: list[events.Decision | None]
    latency_ms: np.ndarray  # from the queries' ts to their batch committed
    cpu_s: float
    wall_s: float
    n: int
    counts: Counter = field(default_factory=Counter)
    batches: list[tuple[float, float]] = field(default_factory=list)  # per query batch: (ms to commit, feature-net ms)
    shadow_rmse: dict[str, tuple[int, float]] | None = None  # with selection: each version's online RMSE

    def on_time(self, deadline_ms: float) -> float:
        """The share of the ``n`` answers that were within ``deadline_ms`` of their query's ts."""
        lat = self.latency_ms[: self.n]
        return float((lat <= deadline_ms).mean()) if self.n else float("nan")


def stream_through_engine(engine: Engine, settings: Settings, stream: list[dict], catalog: list[events.Item], *,
                          n: int, n_candidates: int, batch: int, prefix: str = "arm") -> EngineRun:
    """The first ``n`` ratings of ``stream`` through ``engine`` from a clean state (a key prefix of its own,
    deleted at the end)."""
    s = replace(settings, topic_prefix=f"{settings.topic_prefix}{prefix}-{uuid.uuid4().hex[:8]}.")
    store = RedisStore.from_settings(s)
    epochs = store.claim(s.group, range(PARTITIONS))
    n = min(n, len(stream))
    pred = np.full(len(stream), np.nan)
    latency = np.full(len(stream), np.nan)
    decisions: list[events.Decision | None] = [None] * len(stream)
    counts: Counter = Counter()
    batches: list[tuple[float, float]] = []
    offsets = {"query": 0, "feedback": 0}

    def records(kind: str, evs: list) -> list[InRecord]:
        out = []
        for e in evs:
            p = zlib.crc32(e.user_id.encode()) % PARTITIONS
            out.append(InRecord(kind, f"x.{kind}", p, offsets[kind], e.user_id.encode(), events.encode(e)))
            offsets[kind] += 1
        return out

    def process(recs: list[InRecord]):
        b = engine.process(recs, store)
        if not store.commit(b.write, group=s.group, epochs=epochs):
            raise RuntimeError("fenced: another process claimed this arm's partitions")
        engine.commit(b)
        if b.features_ready is not None and engine.anytime is not None:  # as the worker: what a deadline must leave
            engine.anytime.observe_tail(time.perf_counter() - b.features_ready)
        counts.update(b.counts)
        return b

    t0, c0 = time.perf_counter(), time.process_time()
    shadow = None
    try:
        for start in range(0, n, batch):
            idx = range(start, min(start + batch, n))
            ts = time.time()
            queries = [rating_query(i, stream[i], catalog, n_candidates, s.seed, ts, prefix) for i in idx]
            b = process(records("query", queries))
            done = time.time()
            batches.append(((done - ts) * 1000, (b.feature_net_s or 0.0) * 1000))
            by_rid = {}
            for _, _, value in b.outputs.records:
                d = events.decode_decision(value)
                by_rid[d.request_id] = d
            for i, q in zip(idx, queries):
                d = by_rid[q.request_id]
                item = [c.id for c in d.candidates].index(stream[i]["item"]["id"])
                pred[i] = d.scores[item]
                decisions[i] = d
                latency[i] = (done - ts) * 1000
            fb = [events.Feedback(q.request_id, q.user_id, stream[i]["item"]["id"], float(stream[i]["reward"]),
                                  time.time()) for i, q in zip(idx, queries)]
            process(records("feedback", fb))
            if engine.selection is not None:  # the worker does this every prior_refresh_s (5 s)
                engine.selection.share(store.selections(PARTITIONS))
        if engine.selection is not None:
            from stream.engine.selection import merged_errors

            shadow = {v: (k, (sse / k) ** 0.5)
                      for v, (k, sse) in merged_errors(store.selections(PARTITIONS).values()).items()}
    finally:
        store.delete_deployment()
        store.close()
    return EngineRun(pred, decisions, latency, time.process_time() - c0, time.perf_counter() - t0, n, counts,
                     batches, shadow)
