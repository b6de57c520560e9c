"""The one form every estimator's value takes: ``mean(direct) + mean(weighted) / mean(norm)`` over rounds.

IPS, SNIPS, DM, DR and SNDR differ only in their per-round terms; writing the
value this way lets the bootstrap (:mod:`bandits.ope.bootstrap`) resample
rounds with one matrix product for every estimator at once.

>>> import numpy as np
>>> Terms(direct=np.array([0.5, 0.5]), weighted=np.array([2.0, 0.0]), norm=np.array([2.0, 2.0])).value()
1.0
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Terms"]


class Terms(NamedTuple):
    """Per-round terms, each (n,); None means 0 (1 for ``norm``: not self-normalised)."""

    direct: np.ndarray | None
    weighted: np.ndarray | None
    norm: np.ndarray | None = None

    def value(self) -> float:
        """The estimate on every round; NaN when the norm sums to 0 (undefined)."""
        value = 0.0
        if self.direct is not None:
            value += float(self.direct.mean())
        if self.weighted is not None:
            part = float(self.weighted.mean())
            if self.norm is not None:
                norm = float(self.norm.mean())
                part = part / norm if norm > 0 else float("nan")
            value += part
        return value
