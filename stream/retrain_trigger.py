"""When to retrain the feature net: the rolling RMSE of the prequential errors, and the trigger rule.

Used by ``eddy retrain --watch`` (and the demo's live arm for its rolling
RMSE). Pure: no I/O, no clocks (callers pass ``now``), so the rules are
tested directly.

>>> r = RollingRMSE(window=2)
>>> for e in (3.0, 1.0, 1.0):
...     r.add(e)
>>> r.value, r.n, r.full
(1.0, 2, True)

>>> t = RetrainTrigger(threshold=1.2, every_s=None, started_at=0.0)
>>> r = RollingRMSE(window=2)
>>> r.add(1.0); r.add(1.0)
>>> t.check(r, now=1.0) is None, t.baseline      # the first full window sets the baseline
(True, 1.0)
>>> r.add(2.0); r.add(2.0)
>>> t.check(r, now=2.0)
'degraded: rolling RMSE 2.0000 > 1.2 x 1.0000 (its value after the last (re)train)'
"""


from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from stream.config import ConfigError


class RollingRMSE:
    """RMSE of the last ``window`` errors, updated in O(1) per error."""

    def __init__(self, window: int):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be an int >= 1, got {window!r}")
        self.window = window
        self._sq: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._adds = 0

    def add(self, error: float) -> None:
        sq = float(error) ** 2
        if not math.isfinite(sq):
            return
        if len(self._sq) == self.window:
            self._sum -= self._sq[0]
        self._sq.append(sq)
        self._sum += sq
        self._adds += 1
        if self._adds % 10_000 == 0:  # re-sum now and then: no drift from float cancellation
            self._sum = math.fsum(self._sq)

    def clear(self) -> None:
        self._sq.clear()
        self._sum = 0.0

    @property
    def n(self) -> int:
        return len(self._sq)

    @property
    def full(self) -> bool:
        return len(self._sq) == self.window

    @property
    def value(self) -> float:
        return math.sqrt(max(self._sum, 0.0) / len(self._sq)) if self._sq else float("nan")


@dataclass
class RetrainTrigger:
    """When to retrain: the rolling RMSE degraded past ``threshold`` x its value right
    after the last (re)train, or ``every_s`` seconds passed since it.

    The baseline is the rolling RMSE the first time its window is full after
    :meth:`reset` (so it measures the model that was just installed).
    """

    threshold: float = 1.2
    every_s: float | None = None
    started_at: float = 0.0
    baseline: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold) and self.threshold >= 1.0):
            raise ConfigError(f"threshold must be a number >= 1.0 (1.2 = retrain when 20% worse), got {self.threshold!r}")
        if self.every_s is not None and not (math.isfinite(self.every_s) and self.every_s > 0):
            raise ConfigError(f"every-minutes must be > 0, got {self.every_s / 60!r}")

    def reset(self, now: float) -> None:
        self.baseline = None
        self.started_at = now

    def check(self, rolling: RollingRMSE, now: float) -> str | None:
        """The reason to retrain now, or None."""
        if self.every_s is not None and now - self.started_at >= self.every_s:
            return f"schedule: {(now - self.started_at) / 60:.1f} min since the last (re)train"
        if not rolling.full:
            return None
        if self.baseline is None:
            self.baseline = rolling.value
            return None
        if rolling.value > self.threshold * self.baseline:
            return (f"degraded: rolling RMSE {rolling.value:.4f} > {self.threshold:g} x {self.baseline:.4f} "
                    "(its value after the last (re)train)")
        return None
