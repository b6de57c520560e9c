"""A logged bandit dataset as (n, K) arrays: the shape every estimator, reward model and export reads.

Action columns are *candidate positions*: column ``k`` of round ``i`` is the
``k``-th candidate of that decision, so a round with fewer candidates than
``n_actions`` has its remaining columns padded (``mask`` False, pmf 0, score
0, item id ``""``). Item ids say which item a column held. How the arrays are
read from a log is the caller's business (Eddy's decision log:
:class:`stream.replay.dataset.BanditLog`).

>>> import numpy as np
>>> data = BanditFeedback(
...     reward=np.array([1.0, 0.0]), action=np.array([1, 0]), pscore=np.array([0.75, 0.5]),
...     pmf=np.array([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]]), scores=np.zeros((2, 3)),
...     mask=np.array([[True, True, False], [True, True, True]]),
...     item_ids=np.array([["a", "b", ""], ["c", "a", "b"]]))
>>> data.n_rounds, data.n_actions, data.n_candidates.tolist()
(2, 3, [2, 3])
>>> vocab, index = data.item_index
>>> vocab.tolist(), index.tolist()
(['a', 'b', 'c'], [[0, 1, -1], [2, 0, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np

from bandits.errors import BanditError

__all__ = ["BanditFeedback"]

_PER_ROUND = ("reward", "action", "pscore", "ts", "seed", "imputed")
_PER_COLUMN = ("pmf", "scores", "mask", "item_ids")


@dataclass(frozen=True, eq=False)
class BanditFeedback:
    """A logged dataset (n rounds, K = n_actions = most candidates in any round).

    Attributes:
        reward: (n,) reward of the logged action.
        action: (n,) int column of the logged action (its candidate position).
        pscore: (n,) logged propensity of that action, in (0, 1].
        pmf: (n, K) the logging policy's pmf, padded with 0.
        scores: (n, K) the logged scores, padded with 0 (NaN rows when the source had no scores).
        mask: (n, K) bool, True for real candidates.
        item_ids: (n, K) str item id per column, ``""`` for padding.
        ts: (n,) decision time, epoch seconds (default 0).
        seed: (n,) uint64 exploration seed of each decision (default 0).
        imputed: (n,) bool, True where the reward is a missing-outcome default (default False).
    """

    reward: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    pmf: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    item_ids: np.ndarray
    ts: np.ndarray = field(default=None)  # type: ignore[assignment]
    seed: np.ndarray = field(default=None)  # type: ignore[assignment]
    imputed: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.reward.shape[0] if self.reward.ndim == 1 else -1
        if n < 1:
            raise BanditError(f"reward must be 1-D with at least one round; got shape {self.reward.shape}")
        for name, default in (("ts", np.zeros(n)), ("seed", np.zeros(n, dtype=np.uint64)),
                              ("imputed", np.zeros(n, dtype=bool))):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        k = self.pmf.shape[1] if self.pmf.ndim == 2 else -1
        for name in _PER_ROUND:
            if getattr(self, name).shape != (n,):
                raise BanditError(f"{name} must have shape ({n},); got {getattr(self, name).shape}")
        for name in _PER_COLUMN:
            if getattr(self, name).shape != (n, k):
                raise BanditError(f"{name} must have shape ({n}, {k}); got {getattr(self, name).shape}")
        if np.any(self.action < 0) or np.any(self.action >= self.n_candidates):
            bad = int(np.argmax((self.action < 0) | (self.action >= self.n_candidates)))
            raise BanditError(f"action {self.action[bad]} of round {bad} is outside its "
                              f"{self.n_candidates[bad]} candidates")

    @property
    def n_rounds(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.pmf.shape[1])

    @cached_property
    def n_candidates(self) -> np.ndarray:
        """(n,) real candidates per round."""
        return self.mask.sum(axis=1).astype(np.intp)

    @cached_property
    def has_scores(self) -> bool:
        """False when the source (e.g. a foreign DSJSON file) carried no logged scores."""
        return bool(np.all(np.isfinite(self.scores)))

    @cached_property
    def item_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vocabulary (m,) str, index (n, K) int)``: a global id per item; padding is -1."""
        vocab, inverse = np.unique(self.item_ids[self.mask], return_inverse=True)
        index = np.full(self.mask.shape, -1, dtype=np.intp)
        index[self.mask] = inverse
        return vocab, index

    def rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every array field restricted to ``rows`` (an index array), same column count."""
        return {f.name: getattr(self, f.name)[rows] for f in fields(BanditFeedback)}

    def subset(self, rows: np.ndarray) -> BanditFeedback:
        """The rounds selected by a boolean mask or index array (same column count)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.size == 0:
            raise BanditError("the selected part of the log is empty")
        return BanditFeedback(**self.rows(rows))

    def on_policy_value(self) -> float:
        """The logging policy's observed average reward over these rounds."""
        return float(self.reward.mean())
