"""The joined log as (n, n_actions) arrays, built once and shared by every estimator and export.

The arrays and their padding are :class:`bandits.ope.dataset.BanditFeedback`'s
(pure, shared with the estimators and the reward model); this module reads
them from logged rounds and keeps the rounds alongside.

Context features become a numeric matrix by feature hashing (see
:func:`context_matrix`): a numeric feature ``name: v`` adds ``v`` to column
``h("name")``, a string feature ``name: "s"`` adds 1 to column ``h("name=s")``,
and the user id adds 1 to column ``h("user_id=<id>")``; ``h`` is a stable
hash (blake2b) modulo ``dim``. Collisions add up; the matrix is for reward
models and for Open Bandit Pipeline, not for reading.

>>> from stream.events import Decision, Item
>>> from stream.replay.rounds import LoggedRound
>>> d = Decision("r1", "u1", 10.0, {"device": "tv"}, (Item("a"), Item("b")), (0.1, 0.7), (0.25, 0.75), 1, 0.75,
...              "epsilon_greedy", "epsilon_greedy/1?epsilon=0.5", 7, "v1", 0)
>>> e = Decision("r2", "u2", 11.0, {}, (Item("c"), Item("a"), Item("b")), (0.0, 0.0, 0.0), (0.5, 0.25, 0.25),
...              0, 0.5, "epsilon_greedy", "epsilon_greedy/1?epsilon=0.5", 8, "v1", 0)
>>> log = BanditLog.from_rounds([LoggedRound(d, 1.0, 12.0), LoggedRound(e, 0.0, 13.0)])
>>> log.n_rounds, log.n_actions, log.pmf.tolist(), log.item_ids.tolist()
(2, 3, [[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]], [['a', 'b', ''], ['c', 'a', 'b']])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bandits.ope.dataset import BanditFeedback
from stream.replay.errors import ReplayError
from stream.replay.rounds import LoggedRound

__all__ = ["BanditLog", "context_matrix", "feature_bucket", "DEFAULT_CONTEXT_DIM"]

DEFAULT_CONTEXT_DIM = 64


def feature_bucket(name: str, dim: int) -> int:
    """Stable column of a hashed feature name in ``[0, dim)`` (not Python's salted ``hash``).

    >>> feature_bucket("device=tv", 64) == feature_bucket("device=tv", 64)
    True
    """
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") % dim


def context_matrix(rounds: Sequence[LoggedRound], dim: int = DEFAULT_CONTEXT_DIM, *,
                   include_user: bool = True) -> np.ndarray:
    """(n, dim) float64 hashed context features (see the module docstring).

    >>> from stream.events import Decision, Item
    >>> d = Decision("r", "u1", 0.0, {"hour": 3.0, "device": "tv"}, (Item("a"),), (0.0,), (1.0,), 0, 1.0,
    ...              "greedy", "greedy/1", 0, "v1", 0)
    >>> x = context_matrix([LoggedRound(d, 1.0)], 16)
    >>> x.shape, float(x.sum())
    ((1, 16), 5.0)
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ReplayError(f"context dim must be a positive integer, got {dim!r}")
    cache: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []

    def col(name: str) -> int:
        c = cache.get(name)
        if c is None:
            c = cache[name] = feature_bucket(name, dim)
        return c

    for i, r in enumerate(rounds):
        d = r.decision
        for name, v in d.context.items():
            if isinstance(v, str):
                rows.append(i), cols.append(col(f"{name}={v}")), vals.append(1.0)
            else:
                rows.append(i), cols.append(col(name)), vals.append(float(v))
        if include_user:
            rows.append(i), cols.append(col(f"user_id={d.user_id}")), vals.append(1.0)
    x = np.zeros((len(rounds), dim))
    np.add.at(x, (np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)), np.asarray(vals))
    return x


@dataclass(frozen=True, eq=False)
class BanditLog(BanditFeedback):
    """Eddy's joined decision log as :class:`bandits.ope.dataset.BanditFeedback` arrays, with its rounds.

    The arrays are documented on the parent class; ``rounds`` (in time order,
    decision ts) are the records they were read from, for the targets that
    look at a decision's context or candidates again (tables, VW, feature nets).
    """

    rounds: tuple[LoggedRound, ...] = ()

    @classmethod
    def from_rounds(cls, rounds: Sequence[LoggedRound], *, n_actions: int | None = None) -> BanditLog:
        """Build every array in one pass over the rounds plus flat numpy fills."""
        rounds = tuple(rounds)
        if not rounds:
            raise ReplayError("the log slice holds no joined decisions: nothing to evaluate or export")
        counts = np.fromiter((len(r.decision.candidates) for r in rounds), dtype=np.intp, count=len(rounds))
        k = int(counts.max())
        if n_actions is not None:
            if n_actions < k:
                raise ReplayError(f"n_actions={n_actions} is below the {k} candidates of the largest decision")
            k = n_actions
        n = len(rounds)
        mask = np.arange(k)[None, :] < counts[:, None]
        flat_pmf: list[float] = []
        flat_scores: list[float] = []
        flat_ids: list[str] = []
        for r in rounds:
            d = r.decision
            if len(d.pmf) != len(d.candidates) or len(d.scores) != len(d.candidates):
                raise ReplayError(f"decision {d.request_id!r} has {len(d.candidates)} candidates but "
                                  f"{len(d.pmf)} pmf entries and {len(d.scores)} scores")
            flat_pmf.extend(d.pmf)
            flat_scores.extend(d.scores)
            flat_ids.extend(c.id for c in d.candidates)
        pmf = np.zeros((n, k))
        pmf[mask] = flat_pmf
        scores = np.zeros((n, k))
        scores[mask] = flat_scores
        width = max(1, max(len(s) for s in flat_ids))
        item_ids = np.full((n, k), "", dtype=f"<U{width}")
        item_ids[mask] = flat_ids
        action = np.fromiter((r.decision.chosen_index for r in rounds), dtype=np.intp, count=n)
        pscore = np.fromiter((r.decision.propensity for r in rounds), dtype=np.float64, count=n)
        if np.any(action >= counts) or np.any(action < 0):
            bad = int(np.argmax((action >= counts) | (action < 0)))
            raise ReplayError(f"decision {rounds[bad].decision.request_id!r} has chosen_index {action[bad]} "
                              f"outside its {counts[bad]} candidates")
        return cls(
            reward=np.fromiter((r.reward for r in rounds), dtype=np.float64, count=n),
            action=action,
            pscore=pscore,
            pmf=pmf,
            scores=scores,
            mask=mask,
            item_ids=item_ids,
            ts=np.fromiter((r.decision.ts for r in rounds), dtype=np.float64, count=n),
            seed=np.fromiter((r.decision.seed for r in rounds), dtype=np.uint64, count=n),
            imputed=np.fromiter((r.imputed for r in rounds), dtype=bool, count=n),
            rounds=rounds,
        )

    def subset(self, rows: np.ndarray) -> BanditLog:
        """The rounds selected by a boolean mask or index array (same column count)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.size == 0:
            raise ReplayError("the selected part of the log is empty")
        return BanditLog(**self.rows(rows), rounds=tuple(self.rounds[i] for i in rows))
