"""Apprentice mode's switch: which policy a deployment in apprentice mode serves, kept in Redis.

A deployment started with ``apprentice`` on serves every query's default action
(:mod:`stream.engine.apprentice`) until the switch says ``learned``; then its
workers serve the configured policy. ``eddy apprentice evaluate`` flips the
switch to ``learned`` when the off-policy estimate says so
(:mod:`stream.replay.apprentice`), ``eddy apprentice revert`` flips it back.
Each flip is one ``MULTI`` (the state and a history entry, :meth:`RedisStore.set_apprentice_state`)
and then one ``apprentice`` record on ``model-updates``. Workers re-read the
switch every second between batches (:class:`SwitchWatch`), so a flip takes
effect within about a second, at a batch boundary, with no restart.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import msgspec

from stream.config import Settings
from stream.errors import StoreUnavailable
from stream.store import RedisStore

log = logging.getLogger("eddy.worker")

__all__ = ["Switch", "read_switch", "history", "flip", "now_switch", "serves_default", "SwitchWatch"]

Mode = Literal["default", "learned"]


class Switch(msgspec.Struct, frozen=True, omit_defaults=True):
    """One state of the switch: the mode served from ``ts`` on, who set it, and the estimate it rests on."""

    mode: Mode
    ts: float
    by: str  # "evaluate" or "revert"
    reason: str = ""
    estimate: dict[str, float] = {}


_decoder = msgspec.json.Decoder(Switch)


def read_switch(store: RedisStore) -> Switch | None:
    blob = store.apprentice_state()
    return None if blob is None else _decoder.decode(blob)


def history(store: RedisStore, limit: int = 20) -> list[Switch]:
    return [_decoder.decode(b) for b in store.apprentice_history(limit)]


def flip(settings: Settings, store: RedisStore, switch: Switch, *, feature_net_version: str = "") -> None:
    """Record ``switch`` in Redis (workers follow it), then log it on ``model-updates``."""
    from confluent_kafka import Producer

    from stream import events
    from stream.kafka_io import ensure_topics

    store.set_apprentice_state(msgspec.json.encode(switch))
    ensure_topics(settings, ("model-updates",))
    summary = {"mode_learned": 1.0 if switch.mode == "learned" else 0.0, **switch.estimate}
    update = events.ModelUpdate(kind="apprentice", feature_net_version=feature_net_version, version=switch.mode,
                                user_id=None, request_id=None, summary=summary, ts=switch.ts)
    producer = Producer(settings.producer_config())
    producer.produce(settings.topic("model-updates"), key=b"apprentice", value=events.encode(update))
    if producer.flush(10):
        raise StoreUnavailable("the switch is set in Redis, but its model-updates record was not acknowledged "
                               "within 10 s")


def serves_default(settings: Settings, switch: Switch | None) -> bool:
    """In apprentice mode, the default action is served until the switch says ``learned``."""
    return settings.apprentice and (switch is None or switch.mode != "learned")


class SwitchWatch:
    """The worker's view of the switch, re-read every ``every_s`` between batches."""

    def __init__(self, settings: Settings, store: RedisStore, *, every_s: float = 1.0):
        self._s = settings
        self._store = store
        self._every = every_s
        self._next = 0.0
        self.serving_default = settings.apprentice

    def poll(self, now: float) -> bool | None:
        """Whether to serve the default action now; None when it is not time to look (or Redis is out)."""
        if not self._s.apprentice or now < self._next:
            return None
        self._next = now + self._every
        try:
            switch = read_switch(self._store)
        except StoreUnavailable:
            return None  # the batch path reports outages; keep serving as before
        default = serves_default(self._s, switch)
        if default != self.serving_default:
            log.info("apprentice mode: now serving %s", "the default action" if default else
                     f"the learned policy {self._s.policy}")
        self.serving_default = default
        return default


def now_switch(mode: Mode, by: str, reason: str = "", estimate: dict[str, float] | None = None) -> Switch:
    return Switch(mode=mode, ts=time.time(), by=by, reason=reason, estimate=dict(estimate or {}))
