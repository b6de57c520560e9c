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
from dataclasses import dataclass, field
from itertools import chain, count
from typing import Sequence

import numpy as np

from bandits.ope.dataset import BanditFeedback
from stream.replay.columns import DecisionColumns, Rounds, without_gc
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


@without_gc
def context_matrix(log: BanditLog, dim: int = DEFAULT_CONTEXT_DIM, *, include_user: bool = True) -> np.ndarray:
    """(n, dim) float64 hashed context features of ``log``'s rounds (see the module docstring).

    Vectorised: each distinct feature name is hashed once, and the matrix is one ``bincount``.

    >>> from stream.events import Decision, Item
    >>> d = Decision("r", "u1", 0.0, {"hour": 3.0, "device": "tv"}, (Item("a"),), (0.0,), (1.0,), 0, 1.0,
    ...              "greedy", "greedy/1", 0, "v1", 0)
    >>> x = context_matrix(BanditLog.from_rounds([LoggedRound(d, 1.0)]), 16)
    >>> x.shape, float(x.sum())
    ((1, 16), 5.0)
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ReplayError(f"context dim must be a positive integer, got {dim!r}")
    n = log.n_rounds
    # Logs repeat a few contexts (devices x hours) across thousands of decisions: each distinct context
    # (its items in order) is hashed once, and the rows are gathered. The sums are the same floats as
    # hashing every row: each cell adds its entries in the same order, the user's 1 last.
    distinct: dict[tuple, int] = {}
    code = np.fromiter(map(distinct.setdefault, map(tuple, map(dict.items, log.contexts.tolist())), count()),
                       dtype=np.intp, count=n)
    if len(distinct) < n:
        first = np.fromiter(distinct.values(), dtype=np.intp, count=len(distinct))  # each one's first row
        dense = np.empty(n, dtype=np.intp)
        dense[first] = np.arange(first.size)
        x = _hashed(log.contexts[first].tolist(), dim)[dense[code]]
    else:
        x = _hashed(log.contexts.tolist(), dim)
    if include_user:
        x[np.arange(n), _buckets(log.users.tolist(), "user_id={}", dim)] += 1.0
    return x


def _hashed(contexts: list[dict], dim: int) -> np.ndarray:
    """(len(contexts), dim) the hashed features of each context, without the user."""
    n = len(contexts)
    per_row = np.fromiter(map(len, contexts), dtype=np.intp, count=n)
    # Keys and values of every context in two C-level passes, then each feature name hashed once: a key
    # by its distinct values when they are strings (its own column each), by itself when numeric. The
    # entries keep their order, so the bincount adds them up as it always did.
    keys = list(chain.from_iterable(contexts))
    values = np.empty(len(keys), dtype=object)
    values[:] = list(chain.from_iterable(map(dict.values, contexts)))
    key_index: dict[str, int] = {}
    key_code = np.fromiter(map(key_index.setdefault, keys, count()), dtype=np.intp, count=len(keys))
    cols = np.empty(len(keys), dtype=np.intp)
    weights = np.ones(len(keys))
    for key, first in key_index.items():
        at = np.flatnonzero(key_code == first)
        is_str = np.fromiter(map(str.__instancecheck__, values[at].tolist()), dtype=bool, count=at.size)
        numbers, strings = at[~is_str], at[is_str]
        if numbers.size:
            cols[numbers] = feature_bucket(key, dim)
            weights[numbers] = values[numbers].astype(np.float64)
        if strings.size:
            cols[strings] = _buckets(values[strings].tolist(), f"{key}={{}}", dim)
    rows = np.repeat(np.arange(n), per_row)
    flat = np.bincount(rows * dim + cols, weights=weights, minlength=n * dim)
    return flat.reshape(n, dim).astype(np.float64, copy=False)  # no entry at all: bincount's zeros are ints


def _buckets(values: list[str], name: str, dim: int) -> np.ndarray:
    """The column of feature ``name.format(v)`` for each of ``values``, each distinct one hashed once."""
    index: dict[str, int] = {}
    code = np.fromiter(map(index.setdefault, values, count()), dtype=np.intp, count=len(values))
    bucket = np.zeros(len(values), dtype=np.intp)
    first = np.fromiter(index.values(), dtype=np.intp, count=len(index))
    bucket[first] = [feature_bucket(name.format(v), dim) for v in index]
    return bucket[code]


@dataclass(frozen=True, eq=False)
class BanditLog(BanditFeedback):
    """Eddy's joined decision log as :class:`bandits.ope.dataset.BanditFeedback` arrays, plus per-round columns.

    The arrays are documented on the parent class; the rest, one entry per round
    (in time order, decision ts):

    Attributes:
        request_ids: (n,) object, str.
        users: (n,) object, str: the user of each decision.
        contexts: (n,) object, the context dict of each decision (for tables and the hashed context).
        feedback_ts: (n,) when the feedback was given; NaN when the reward was imputed.
        rounds: the rounds as :class:`~stream.replay.rounds.LoggedRound`, each built on first access (by
            decoding its record again) for the targets that read a decision's candidates (VW, feature nets)
            and for export.
        positions: (n,) intp, the slate position each decision filled (0 without slates).
        taken: (n, K) bool, True on the candidates earlier positions of the same slate took (they were not
            available to this position), or None when no decision lists any (:mod:`stream.replay.positions`).
    """

    request_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    users: np.ndarray = field(default=None)  # type: ignore[assignment]
    contexts: np.ndarray = field(default=None)  # type: ignore[assignment]
    feedback_ts: np.ndarray = field(default=None)  # type: ignore[assignment]
    rounds: Rounds = field(default=None)  # type: ignore[assignment]
    positions: np.ndarray = field(default=None)  # type: ignore[assignment]
    taken: np.ndarray | None = None

    @classmethod
    def from_columns(cls, cols: DecisionColumns, rows: np.ndarray, *, reward: np.ndarray, feedback_ts: np.ndarray,
                     imputed: np.ndarray, n_actions: int | None = None) -> BanditLog:
        """The log of decisions ``cols[rows]`` (in that order) with their rewards (``reward[i]`` is row
        ``rows[i]``'s; ``feedback_ts`` NaN where there was none)."""
        rows = np.asarray(rows, dtype=np.intp)
        n = int(rows.size)
        if not n:
            raise ReplayError("the log slice holds no joined decisions: nothing to evaluate or export")
        counts = cols.n_candidates[rows]
        k = int(counts.max())
        if n_actions is not None:
            if n_actions < k:
                raise ReplayError(f"n_actions={n_actions} is below the {k} candidates of the largest decision")
        else:
            n_actions = k
        action = cols.chosen[rows]
        if np.any(action >= counts) or np.any(action < 0):
            bad = int(np.argmax((action >= counts) | (action < 0)))
            raise ReplayError(f"decision {cols.request_id[rows[bad]]!r} has chosen_index {action[bad]} "
                              f"outside its {counts[bad]} candidates")

        def width(a: np.ndarray, fill: float | int) -> np.ndarray:
            a = a[rows]
            if a.shape[1] >= n_actions:
                return a[:, :n_actions]
            return np.pad(a, ((0, 0), (0, n_actions - a.shape[1])), constant_values=fill)

        code = width(cols.item_code, -1)
        mask = code >= 0
        # The vocabulary of the rounds kept, sorted: BanditFeedback.item_index, computed here from the codes.
        present = np.zeros(len(cols.vocab) + 1, dtype=bool)
        present[code[mask]] = True
        present = present[:-1]
        vocab = np.asarray(cols.vocab, dtype=str)[present] if len(cols.vocab) else np.zeros(0, dtype=str)
        order = np.argsort(vocab, kind="stable")
        rank = np.full(len(cols.vocab) + 1, -1, dtype=np.intp)
        rank[np.flatnonzero(present)[order]] = np.arange(order.size)
        index = rank[code]  # code -1 (padding) reads rank[-1] = -1
        sorted_vocab = vocab[order]
        item_ids = np.append(sorted_vocab, "").astype(sorted_vocab.dtype if sorted_vocab.size else "<U1")[index]
        feedback_ts = np.asarray(feedback_ts, dtype=np.float64)
        imputed = np.asarray(imputed, dtype=bool)
        reward = np.asarray(reward, dtype=np.float64)
        origin = cols.origin

        def build(i: int) -> LoggedRound:
            j = int(rows[i])
            fts = float(feedback_ts[i])
            return LoggedRound(cols.record(j), float(reward[i]), None if fts != fts else fts, bool(imputed[i]),
                               origin=origin(j) if origin is not None else None)

        def where(i: int) -> str:
            j = int(rows[i])
            return origin(j) if origin is not None else f"decision {cols.request_id[j]!r}"

        log = cls(
            reward=reward,
            action=action,
            pscore=cols.propensity[rows],
            pmf=width(cols.pmf, 0.0),
            scores=width(cols.scores, 0.0),
            mask=mask,
            item_ids=item_ids,
            ts=cols.ts[rows],
            seed=cols.seed[rows],
            imputed=imputed,
            request_ids=cols.request_id[rows],
            users=cols.user_id[rows],
            contexts=cols.context[rows],
            feedback_ts=feedback_ts,
            rounds=Rounds(n, build, where),
            positions=cols.position[rows] if cols.position is not None else np.zeros(n, dtype=np.intp),
            taken=_taken(cols, rows, n_actions),
        )
        log.__dict__["item_index"] = (sorted_vocab, index)  # the cached property, already known
        return log

    @classmethod
    def from_rounds(cls, rounds: Sequence[LoggedRound], *, n_actions: int | None = None) -> BanditLog:
        """The log of already built rounds, in the order given (tests, synthetic logs)."""
        rounds = tuple(rounds)
        if not rounds:
            raise ReplayError("the log slice holds no joined decisions: nothing to evaluate or export")
        decisions = [r.decision for r in rounds]
        cols = DecisionColumns.from_decisions(decisions, origin=lambda j: rounds[j].where())
        log = cls.from_columns(
            cols, np.arange(len(rounds)),
            reward=np.fromiter((r.reward for r in rounds), dtype=np.float64, count=len(rounds)),
            feedback_ts=np.fromiter((np.nan if r.feedback_ts is None else r.feedback_ts for r in rounds),
                                    dtype=np.float64, count=len(rounds)),
            imputed=np.fromiter((r.imputed for r in rounds), dtype=bool, count=len(rounds)),
            n_actions=n_actions)
        object.__setattr__(log, "rounds", Rounds.of(rounds))
        return log

    def subset(self, rows: np.ndarray) -> BanditLog:
        """The rounds selected by a boolean mask or index array (same column count)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.size == 0:
            raise ReplayError("the selected part of the log is empty")
        return BanditLog(**self.rows(rows), request_ids=self.request_ids[rows], users=self.users[rows],
                         contexts=self.contexts[rows], feedback_ts=self.feedback_ts[rows],
                         rounds=self.rounds.take(rows), positions=self.positions[rows],
                         taken=None if self.taken is None else self.taken[rows])


def _taken(cols: DecisionColumns, rows: np.ndarray, n_actions: int) -> np.ndarray | None:
    """(n, n_actions) bool: the candidates that earlier slate positions took, per row; None if none did."""
    if cols.taken is None:
        return None
    lists = cols.taken[rows].tolist()
    if not any(lists):
        return None
    out = np.zeros((len(lists), n_actions), dtype=bool)
    counts = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
    out[np.repeat(np.arange(len(lists)), counts), np.fromiter(chain.from_iterable(lists), dtype=np.intp,
                                                                 count=int(counts.sum()))] = True
    return out
