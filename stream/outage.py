"""Outages of Redis or Kafka: waited out with bounded backoff, logged as what they are, counted.

The worker calls :meth:`Outage.wait` each time a batch could not commit
because a service did not answer, and :meth:`Outage.over` once a batch
gets through. The first failure logs a warning naming the service; the
recovery logs how long it lasted. Only an outage longer than
``give_up_s`` ends the process (with a one-line message), so a restart of
Redis or of the broker never needs a person.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable

log = logging.getLogger("eddy.worker")


class Outage:
    def __init__(self, *, give_up_s: float, stats: Counter[str], first_backoff_s: float = 0.05,
                 max_backoff_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.give_up_s = give_up_s
        self.stats = stats
        self._first = first_backoff_s
        self._max = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._since: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._last_kafka_log = 0.0
        self._last_log: dict[str, float] = {}

    def down(self, service: str) -> bool:
        return service in self._since

    def wait(self, service: str, error: object) -> None:
        """``service`` did not answer: log it the first time, back off, give up after ``give_up_s``."""
        now = self._clock()
        if service not in self._since:
            self._since[service] = now
            self._backoff[service] = self._first
            self.stats[f"outages.{service}"] += 1
            log.warning("%s is unavailable (%s); retrying with backoff for up to %gs", _NAMES[service],
                        _text(error), self.give_up_s)
        elapsed = now - self._since[service]
        if now - self._last_log.get(service, 0.0) >= 10:
            if self._last_log.get(service) is not None and elapsed > 1:
                log.warning("%s still unavailable after %.0fs (%s)", _NAMES[service], elapsed, _text(error))
            self._last_log[service] = now
        if elapsed > self.give_up_s:
            raise SystemExit(f"eddy worker: {_NAMES[service]} unavailable for {elapsed:.0f}s "
                             f"(outage_give_up_s={self.give_up_s:g}): {_text(error)}")
        delay = self._backoff[service]
        self._backoff[service] = min(self._max, delay * 2)
        self._sleep(delay)

    def over(self, service: str) -> None:
        since = self._since.pop(service, None)
        self._last_log.pop(service, None)
        if since is not None:
            lasted = self._clock() - since
            self.stats[f"outage_ms.{service}"] += int(lasted * 1000)
            log.warning("%s is back after %.1fs", _NAMES[service], lasted)

    def kafka_error(self, error: object) -> None:
        """A consumer error event (broker down, transport): counted, logged at most every 10 s."""
        self.stats["kafka_errors"] += 1
        now = self._clock()
        if now - self._last_kafka_log >= 10:
            self._last_kafka_log = now
            log.warning("Kafka consumer error: %s", _text(error))


_NAMES = {"redis": "Redis", "kafka": "Kafka"}


def _text(error: object) -> str:
    s = getattr(error, "str", None)
    return s() if callable(s) else str(error)
