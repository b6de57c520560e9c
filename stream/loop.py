"""The closed loop a live application runs: query, read the prediction, act, send feedback.

Queries go out on a fixed schedule (open loop: a slow answer does not
delay the next query), predictions are read as they come, and the
simulated user's click on the chosen item goes back as feedback.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from tqdm import tqdm

from stream import events
from stream.client import EddyClient, reader
from stream.config import ConfigError, Settings
from stream.simulator import SimulatedWorld


def run_closed_loop(settings: Settings, *, count: int, rate: float, users: int = 100, items: int = 50,
                    feedback_ratio: float = 1.0, seed: int = 0, progress: bool = False,
                    wait_s: float = 30.0, prefix: str | None = None) -> dict:
    if count < 1 or not rate > 0 or not 0 <= feedback_ratio <= 1:  # the CLI checks each flag; this guards callers
        raise ConfigError(f"need count >= 1, rate > 0, feedback_ratio in [0, 1]; got {count}, {rate}, {feedback_ratio}")
    world = SimulatedWorld(n_users=users, n_items=items, seed=seed)
    client = EddyClient(settings)
    predictions = reader(settings, [settings.topic("predictions")])
    rng = np.random.default_rng(seed + 1)
    prefix = prefix or f"sim{int(time.time() * 1000)}-"
    pending: dict[str, tuple[events.Query, float]] = {}
    latencies: list[float] = []
    rewards: list[float] = []
    start = time.monotonic()
    sent = 0
    bar = tqdm(total=count, desc="queries answered", unit="q", file=sys.stderr, disable=not progress,
               mininterval=1.0)
    next_postfix = start
    deadline = None
    while sent < count or (pending and time.monotonic() < deadline):
        now = time.monotonic()
        if sent < count and now >= start + sent / rate:
            scheduled = start + sent / rate
            q = world.query(sent, ts=time.time(), prefix=prefix)
            client.send(q)
            pending[q.request_id] = (q, scheduled)
            sent += 1
            if sent == count:
                client.flush(timeout=max(30.0, wait_s))  # rides out a broker restart as the worker does
                deadline = time.monotonic() + wait_s
            continue
        timeout = max(0.0, min(0.05, start + sent / rate - time.monotonic())) if sent < count else 0.05
        for m in predictions.consume(500, timeout):
            if m.error():
                continue
            p = events.decode_json(m.value())
            got = pending.pop(p.get("request_id"), None)
            if got is None:
                continue
            q, scheduled = got
            latencies.append((time.monotonic() - scheduled) * 1000)
            bar.update(1)
            fb = world.feedback(q, p["chosen"][0], time.time())
            rewards.append(fb.reward)
            if rng.random() < feedback_ratio:
                client.send(fb)
        if progress and latencies and time.monotonic() > next_postfix:
            next_postfix = time.monotonic() + 1.0
            p50, p99 = np.percentile(latencies[-2000:], [50, 99])
            bar.set_postfix_str(f"sent {sent}, mean reward {np.mean(rewards):.3f}, "
                                f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms", refresh=False)
    bar.close()
    client.flush()
    predictions.close()
    lat = np.asarray(latencies)
    return {
        "sent": sent,
        "answered": int(lat.size),
        "unanswered": len(pending),
        "mean_reward": float(np.mean(rewards)) if rewards else None,
        "latency_ms": {q: float(np.percentile(lat, q)) for q in (50, 95, 99)} if lat.size else {},
        "seconds": time.monotonic() - start,
    }
