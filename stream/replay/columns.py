"""Decisions as columns: what a DSJSON file or a decisions topic is decoded into, with no per-decision objects.

Replay reads thousands of decisions a second, so each source is decoded in
one msgspec call into lean Structs holding only the fields replay reads
(:mod:`stream.replay.dsjson_schema`, :mod:`stream.replay.records`), and those
become numpy columns with a few list comprehensions: the pmf and scores as
padded (m, K) matrices, the item ids as integer codes into a vocabulary.
Nothing builds a :class:`~stream.events.Decision` or a
:class:`~stream.replay.rounds.LoggedRound` per decision on the way. The full
record of a row is decoded again only when something asks for it
(:class:`Rounds`: the VW and feature-net targets, ``eddy export --format
dsjson``), by the source's own decoder.

>>> cols = DecisionColumns.build(
...     request_id=["r1", "r2"], user_id=["u1", "u2"], context=[{}, {"hour": 3.0}], ts=[1.0, 2.0],
...     item_ids=["a", "b", "c", "a", "b"], n_candidates=[2, 3], pmf=[[0.25, 0.75], [0.5, 0.25, 0.25]],
...     scores=[None, [0.0, 1.0, 2.0]], chosen=[1, 0], propensity=[0.75, 0.5], seed=[7, 8],
...     record=lambda j: None)
>>> cols.vocab, cols.item_code.tolist(), cols.n_candidates.tolist()
(['a', 'b', 'c'], [[0, 1, -1], [2, 0, 1]], [2, 3])
>>> cols.scores[0].tolist(), cols.pmf[1].tolist()
([nan, nan, 0.0], [0.5, 0.25, 0.25])
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

__all__ = ["DecisionColumns", "Rounds", "padded", "object_array", "without_gc"]

F = TypeVar("F", bound=Callable[..., Any])


def without_gc(fn: F) -> F:
    """Run ``fn`` with the cyclic garbage collector paused (and restored as it was, whatever happens).

    A bulk decode allocates a few tuples per record (msgspec's sequences, attrgetter rows), tens of
    thousands in all: each 700 of them start a collection that visits them and what they hold, and
    some of those collections walk the whole heap. Nothing here makes a reference cycle, and the
    temporaries are freed by reference counting before ``fn`` returns, so pausing the collector
    costs nothing later and takes most of the cost of turning records into columns (measured: 22 ms
    to 9 ms to gather 17 keys of 10,000 decoded lines).
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return run  # type: ignore[return-value]


def object_array(values: Sequence[Any]) -> np.ndarray:
    """(m,) object array of ``values`` (never a 2-D array, whatever the values are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def padded(rows: Sequence[Sequence[float]], counts: np.ndarray, width: int, fill: float = 0.0) -> np.ndarray:
    """(m, width) float matrix of ragged ``rows`` (row ``j`` has ``counts[j]`` values), padded with ``fill``.

    >>> padded([[1.0], [2.0, 3.0]], np.array([1, 2]), 3).tolist()
    [[1.0, 0.0, 0.0], [2.0, 3.0, 0.0]]
    """
    m = len(rows)
    values = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=int(counts.sum()))
    if m and int(counts.min()) == width:  # every row full: a reshape, no scatter
        return values.reshape(m, width)
    out = np.full((m, width), fill)
    out[np.arange(width)[None, :] < counts[:, None]] = values
    return out


@dataclass(eq=False)
class DecisionColumns:
    """m decisions as columns, row ``j`` being the ``j``-th record read (K = most candidates in any row).

    Attributes:
        request_id: (m,) object, str.
        user_id: (m,) object, str.
        context: (m,) object, the context dict of each decision (shared with the decoded record, not copied).
        ts: (m,) decision time, epoch seconds.
        chosen: (m,) intp, the chosen candidate's position.
        propensity: (m,) the logged probability of the chosen candidate.
        pmf: (m, K) the logged pmf, padded with 0.
        scores: (m, K) logged scores, padded with 0; a row without scores is NaN.
        n_candidates: (m,) intp.
        item_code: (m, K) intp, index into ``vocab`` of each candidate's id; -1 for padding.
        vocab: item ids in order of first appearance.
        seed: (m,) uint64 exploration seeds.
        record: ``record(j)``, the full record of row ``j``, decoded again from its source.
        origin: ``origin(j)``, where row ``j`` was read (``path:line``), or None for the request id.
        position: (m,) intp slate position of each decision, or None when every decision fills position 0.
        taken: (m,) object, the candidate indices earlier positions took (a tuple per row), or None likewise.
    """

    request_id: np.ndarray
    user_id: np.ndarray
    context: np.ndarray
    ts: np.ndarray
    chosen: np.ndarray
    propensity: np.ndarray
    pmf: np.ndarray
    scores: np.ndarray
    n_candidates: np.ndarray
    item_code: np.ndarray
    vocab: list[str]
    seed: np.ndarray
    record: Callable[[int], Any]
    origin: Callable[[int], str] | None = None
    position: np.ndarray | None = None
    taken: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    def join_keys(self) -> list[str]:
        """Each row's join key: its request id, with its slate position when not 0
        (:func:`stream.engine.slates.slot_key`, what feedback and outcomes join on)."""
        ids = self.request_id.tolist()
        if self.position is None:
            return ids
        from stream.engine.slates import slot_key

        return list(map(slot_key, ids, self.position.tolist()))

    @classmethod
    def build(cls, *, request_id: Sequence[str], user_id: Sequence[str], context: Sequence[dict],
              ts: Sequence[float], item_ids: Sequence[str], n_candidates: Sequence[int],
              pmf: Sequence[Sequence[float]] | np.ndarray,
              scores: Sequence[Sequence[float] | None], chosen: Sequence[int], propensity: Sequence[float],
              seed: Sequence[int], record: Callable[[int], Any],
              origin: Callable[[int], str] | None = None, position: Sequence[int] | None = None,
              taken: Sequence[tuple[int, ...]] | None = None) -> DecisionColumns:
        """Columns from per-row lists (what the decoders produce): ``item_ids`` holds every row's candidate ids
        one row after another (``n_candidates[j]`` of them for row ``j``); ``pmf`` and ``scores`` rows are in
        candidate order with one entry per candidate (callers check it first); a ``None`` scores row means
        the record had no scores. ``pmf`` may also be the padded (m, K) matrix already."""
        m = len(n_candidates)
        counts = np.asarray(n_candidates, dtype=np.intp).reshape(m)
        width = int(counts.max()) if m else 1
        # The ids become small integers once, here: the vocabulary in order of first appearance, then one
        # C-level lookup per candidate.
        index = {item: k for k, item in enumerate(dict.fromkeys(item_ids))}
        item_code = np.full((m, width), -1, dtype=np.intp)
        mask = np.arange(width)[None, :] < counts[:, None]
        item_code[mask] = np.fromiter(map(index.__getitem__, item_ids), dtype=np.intp, count=len(item_ids))
        if None in scores:  # (a C-level scan; rows are tuples, lists or None)
            nan_rows = [[np.nan] * c for c in counts.tolist()]
            scores = [s if s is not None else nan_rows[j] for j, s in enumerate(scores)]
        return cls(
            request_id=object_array(request_id),
            user_id=object_array(user_id),
            context=object_array(context),
            ts=np.asarray(ts, dtype=np.float64).reshape(m),
            chosen=np.asarray(chosen, dtype=np.intp).reshape(m),
            propensity=np.asarray(propensity, dtype=np.float64).reshape(m),
            pmf=pmf if isinstance(pmf, np.ndarray) else padded(pmf, counts, width),
            scores=padded(scores, counts, width),
            n_candidates=counts,
            item_code=item_code,
            vocab=list(index),
            seed=np.asarray(seed, dtype=np.uint64).reshape(m),
            record=record,
            origin=origin,
            position=np.asarray(position, dtype=np.intp).reshape(m) if position is not None and any(position) else None,
            taken=object_array(taken) if position is not None and any(position) else None,
        )

    @classmethod
    def from_decisions(cls, decisions: Sequence[Any], *, origin: Callable[[int], str] | None = None) -> DecisionColumns:
        """Columns of :class:`~stream.events.Decision` objects already decoded (tests, synthetic logs, joins of
        objects); ``record(j)`` is ``decisions[j]``. Lengths are checked here (ReplayError naming the request)."""
        from stream.replay.errors import ReplayError

        for d in decisions:
            if len(d.pmf) != len(d.candidates) or len(d.scores) != len(d.candidates):
                raise ReplayError(f"decision {d.request_id!r} has {len(d.candidates)} candidates but "
                                  f"{len(d.pmf)} pmf entries and {len(d.scores)} scores")
        return cls.build(
            request_id=[d.request_id for d in decisions], user_id=[d.user_id for d in decisions],
            context=[d.context or {} for d in decisions], ts=[d.ts for d in decisions],
            item_ids=[c.id for d in decisions for c in d.candidates],
            n_candidates=[len(d.candidates) for d in decisions], pmf=[d.pmf for d in decisions],
            scores=[d.scores for d in decisions], chosen=[d.chosen_index for d in decisions],
            propensity=[d.propensity for d in decisions], seed=[d.seed for d in decisions],
            record=decisions.__getitem__, origin=origin, position=[d.position for d in decisions],
            taken=[d.taken for d in decisions])

    def first_unique(self) -> tuple[np.ndarray, int]:
        """(rows, duplicates): the first row of each request id (and slate position), in row order, and how many
        rows repeat one."""
        ids = self.join_keys()
        # A dict built from the end keeps each id's first row (later keys overwrite): C loops, no string sort.
        first = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1)))
        rows = np.sort(np.fromiter(first.values(), dtype=np.intp, count=len(first)))
        return rows, self.n - rows.size

    def time_order(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` sorted by (decision time, request id): the order replay evaluates in."""
        rows = np.asarray(rows, dtype=np.intp)
        ts = self.ts[rows]
        order = np.argsort(ts, kind="stable")
        if np.any(np.diff(ts[order]) == 0):  # ties in time: the request id decides (strings sorted only then)
            keys = (self.request_id[rows].astype(str), ts)
            order = np.lexsort(keys if self.position is None else (self.position[rows],) + keys)
        return rows[order]


class Rounds(Sequence):
    """The rounds of a log as :class:`~stream.replay.rounds.LoggedRound`, built on first access.

    ``build(i)`` makes round ``i`` (decoding its record again); a built round is kept. ``take(rows)`` is the
    sequence of the selected rounds, sharing what was built.
    """

    def __init__(self, n: int, build: Callable[[int], Any], where: Callable[[int], str]):
        self._n = n
        self._build = build
        self._where = where
        self._cache: dict[int, Any] = {}

    @classmethod
    def of(cls, rounds: Sequence[Any]) -> Rounds:
        """Rounds already built (``rounds[i].where()`` says where each came from)."""
        rounds = tuple(rounds)
        out = cls(len(rounds), rounds.__getitem__, lambda i: rounds[i].where())
        out._cache = dict(enumerate(rounds))
        return out

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        r = self._cache.get(i)
        if r is None:
            r = self._cache[i] = self._build(i)
        return r

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(self._n))

    def where(self, i: int) -> str:
        """Where round ``i`` was read (``path:line`` of a file, else its request id), without building it."""
        return self._where(int(i))

    def take(self, rows: np.ndarray) -> Rounds:
        rows = np.asarray(rows, dtype=np.intp)
        out = Rounds(int(rows.size), lambda i: self[rows[i]], lambda i: self.where(rows[i]))
        out._cache = {i: self._cache[int(r)] for i, r in enumerate(rows.tolist()) if int(r) in self._cache}
        return out
