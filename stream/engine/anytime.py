"""Anytime predictions (Velox): the feature net runs under a deadline, and what is not ready is its expectation.

A query may carry a deadline (``Query.deadline_ms`` after its ``ts``, or the worker's
``deadline_ms`` setting). :meth:`Anytime.embed` cuts the batch's candidates into chunks
of ``chunk_rows`` and runs them one after another on a thread of its own; the engine's
thread waits for them until the batch's budget ends (the earliest deadline still ahead,
less the reserve for scoring, the Redis commit and publishing: the ``reserve_ms``
setting, or more when the shell has measured that this tail takes longer,
:meth:`Anytime.observe_tail`). Chunks not finished by then are cancelled (the one
running goes on in the background; its rows only update the means), and their
candidates are scored with ``E[f(x, item)]``: the running mean of the item's exact
feature vectors under this feature-net version (:class:`FeatureMeans`), or the mean over
all items when the item was never computed, or zeros before anything was.

A query already past its budget when the batch starts is not computed at all: under
overload that is what lets the worker catch up instead of falling further behind. A
query without a deadline in the same batch is always computed exactly.

Which candidates were approximated goes into the decision (``approximated``), and the
join record keeps the vectors actually used, so feedback learns from what decided.
Nothing here sleeps: the only waiting is on the feature net's own chunks.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from features.model import FeatureModel
from stream.events import Query

Inputs = list[tuple[dict[str, Any], list[dict[str, Any]]]]
EmbedMany = Callable[[Inputs], tuple[list[np.ndarray], list[tuple[int, ...]]]]
"""Each query's rows, and the indices of its candidates served from a coarsened cache entry."""

KEEP_VERSIONS = 4
"""Feature-net versions whose means are kept (the live one, a cascade's cheap one, and the last swapped out)."""


class FeatureMeans:
    """Running means of one feature-net version's vectors: per item (the ``capacity`` most recently
    updated items) and over every row seen (the population mean, for items never computed).

    >>> m = FeatureMeans(dim=2, capacity=10)
    >>> m.observe(["a", "a", "b"], np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 6.0]]))
    >>> m.expected(["a", "b", "new"]).tolist()
    [[2.0, 0.0], [0.0, 6.0], [1.3333333730697632, 2.0]]
    """

    def __init__(self, dim: int, capacity: int):
        self.dim = dim
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        self._n = 0
        self._sum = np.zeros(dim, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._items)

    def observe(self, item_ids: Sequence[str], rows: np.ndarray) -> None:
        """Exact rows ``(len(item_ids), dim)`` computed for these items."""
        rows = np.asarray(rows, dtype=np.float64)
        if not np.all(np.isfinite(rows)):
            return  # a broken row must not poison every later substitute
        self._n += len(item_ids)
        self._sum += rows.sum(axis=0)
        items = self._items
        for item, row in zip(item_ids, rows):
            n, mean = items.pop(item, (0, None))
            items[item] = (1, row.copy()) if mean is None else (n + 1, mean + (row - mean) / (n + 1))
        while len(items) > self.capacity:
            items.popitem(last=False)

    def population(self) -> np.ndarray:
        return (self._sum / self._n if self._n else np.zeros(self.dim)).astype(np.float32)

    def expected(self, item_ids: Sequence[str]) -> np.ndarray:
        """``E[f]`` per item: its own running mean, else the population mean, else zeros (float32)."""
        out = np.empty((len(item_ids), self.dim), dtype=np.float32)
        pop = None
        for i, item in enumerate(item_ids):
            entry = self._items.get(item)
            if entry is not None:
                out[i] = entry[1]
            else:
                pop = self.population() if pop is None else pop
                out[i] = pop
        return out


@dataclass
class Embedded:
    """One query's feature vectors: ``rows`` (n, d) float32, the indices of candidates scored with their
    expectation, those served from a coarsened cache entry (LSH), and the exception when its own features
    failed (the engine dead-letters it)."""

    rows: np.ndarray | None
    approximated: tuple[int, ...] = ()
    error: Exception | None = None
    coarsened: tuple[int, ...] = ()


class Anytime:
    """Deadlines and the budgeted feature net for one engine.

    Parameters
    ----------
    deadline_ms
        Default deadline of a query without its own ``deadline_ms`` (0: none).
    reserve_ms
        The feature net's budget ends at least this long before the earliest deadline.
    chunk_rows
        Candidates per chunk: the steps at which a budget can end.
    items
        Items whose mean is kept per feature-net version.
    clock
        Epoch seconds (queries' ``ts`` are epoch seconds); tests pass their own.
    """

    def __init__(self, *, deadline_ms: float = 0.0, reserve_ms: float = 5.0, chunk_rows: int = 256,
                 items: int = 100_000, clock: Callable[[], float] = time.time):
        self.deadline_s = deadline_ms / 1000
        self.reserve_s = reserve_ms / 1000
        self.chunk_rows = max(1, int(chunk_rows))
        self.items = items
        self._clock = clock
        self._means: dict[str, FeatureMeans] = {}
        self._pool: ThreadPoolExecutor | None = None
        # chunks that finished after their budget: (means, item ids, future), appended by the pool's
        # thread (deque appends are atomic), learned from by the engine's thread at the next batch
        self._late: deque[tuple[FeatureMeans, list[str], Future]] = deque()
        self._tail: float | None = None  # smoothed tail and its mean deviation (seconds)
        self._tail_dev = 0.0

    @property
    def reserve(self) -> float:
        """Seconds kept back from a deadline: the setting, or the measured tail plus four mean deviations
        when that is longer (TCP's retransmission timeout estimator, RFC 6298, applied to the tail)."""
        if self._tail is None:
            return self.reserve_s
        return max(self.reserve_s, self._tail + 4 * self._tail_dev)

    def observe_tail(self, seconds: float) -> None:
        """One batch's time from its features being ready to its answers being published (the shell
        measures it: it includes the Redis commit and the produce calls the engine never sees).

        >>> a = Anytime(reserve_ms=5)
        >>> for _ in range(50):
        ...     a.observe_tail(0.030)
        >>> round(a.reserve, 3)
        0.03
        """
        if not seconds >= 0:
            return
        if self._tail is None:
            self._tail, self._tail_dev = seconds, seconds / 2
        else:
            self._tail_dev = 0.75 * self._tail_dev + 0.25 * abs(seconds - self._tail)
            self._tail = 0.875 * self._tail + 0.125 * seconds

    def means(self, model: FeatureModel) -> FeatureMeans:
        m = self._means.get(model.version)
        if m is None:
            m = self._means[model.version] = FeatureMeans(model.output_dim, self.items)
            while len(self._means) > KEEP_VERSIONS:  # versions hot-swapped out long ago
                del self._means[next(iter(self._means))]
        return m

    def deadline(self, query: Query) -> float | None:
        """Epoch seconds by which ``query`` should be answered, or None."""
        ms = query.deadline_ms
        if ms is None:
            return query.ts + self.deadline_s if self.deadline_s > 0 else None
        return query.ts + ms / 1000 if ms > 0 else None

    def applies(self, queries: Sequence[Query]) -> bool:
        return any(self.deadline(q) is not None for q in queries)

    def _learn_late(self) -> None:
        while self._late:
            means, ids, f = self._late.popleft()
            if not f.cancelled() and f.exception() is None:
                means.observe(ids, f.result()[0])

    # ------------------------------------------------------------------ embed
    def idle(self) -> None:
        """Return once no chunk runs (the feature net and its cache are then the caller's alone)."""
        if self._pool is not None:
            self._pool.submit(_nothing).result()

    def embed(self, embed_many: EmbedMany, model: FeatureModel, queries: Sequence[Query],
              inputs: Inputs) -> list[Embedded]:
        """Every query's vectors, exact where the chunks finished within the budget. ``embed_many`` is
        ``model.embed_many`` (with its feature cache, if any) giving rows and coarsened indices: only the
        pool's thread calls it."""
        means = self.means(model)
        self._learn_late()
        now = self._clock()
        reserve = self.reserve
        ends = [None if d is None else d - reserve for d in map(self.deadline, queries)]
        ahead = [e for e in ends if e is not None and e > now]
        budget_end = min(ahead) if ahead else now
        # Rows to compute, deadline queries first (by deadline), then those without one.
        order = sorted((i for i, e in enumerate(ends) if e is None or e > now),
                       key=lambda i: (ends[i] is None, ends[i] or 0.0, i))
        rows: list[tuple[int, int]] = [(i, j) for i in order for j in range(len(inputs[i][1]))]
        chunks = [rows[k:k + self.chunk_rows] for k in range(0, len(rows), self.chunk_rows)]
        pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-anytime")
        self._pool = pool
        futures = [pool.submit(_run_chunk, embed_many, inputs, chunk) for chunk in chunks]
        must = [f for f, c in zip(futures, chunks) if any(ends[i] is None for i, _ in c)]
        wait([f for f in futures if f not in must], timeout=max(0.0, budget_end - self._clock()))
        late: set[int] = set()
        for k, (f, chunk) in enumerate(zip(futures, chunks)):
            if not f.done() and f not in must and not f.cancel():
                late.add(k)
                # running: it finishes in the background; too late for this batch, its rows still teach the means
                ids = [inputs[i][1][j]["id"] for i, j in chunk]
                f.add_done_callback(lambda done, ids=ids: self._late.append((means, ids, done)))
        wait(must)
        out = [Embedded(np.empty((len(inputs[i][1]), model.output_dim), dtype=np.float32)) for i in range(len(queries))]
        exact = [np.zeros(len(inputs[i][1]), dtype=bool) for i in range(len(queries))]
        coarse = [np.zeros(len(inputs[i][1]), dtype=bool) for i in range(len(queries))]
        failed: set[int] = set()
        for k, (f, chunk) in enumerate(zip(futures, chunks)):
            if k in late or not f.done() or f.cancelled():
                continue
            if f.exception() is not None:
                failed.update(i for i, _ in chunk)
                continue
            rows, flags = f.result()
            for (i, j), row, flag in zip(chunk, rows, flags):
                out[i].rows[j] = row
                exact[i][j] = True
                coarse[i][j] = flag
        for i in sorted(failed):  # alone, to find the record that broke its chunk (exact, whatever the budget)
            try:
                rows, marks = pool.submit(embed_many, [inputs[i]]).result()
                out[i].rows[:] = rows[0]
                exact[i][:] = True
                coarse[i][list(marks[0])] = True
            except Exception as exc:
                out[i] = Embedded(None, error=exc)
        ids = [[c["id"] for c in items] for _, items in inputs]
        for i, e in enumerate(out):  # first everything this batch computed, then the substitutes
            if e.rows is not None and exact[i].any():
                means.observe([ids[i][j] for j in np.flatnonzero(exact[i])], e.rows[exact[i]])
        for i, e in enumerate(out):
            if e.rows is not None and coarse[i].any():
                e.coarsened = tuple(int(j) for j in np.flatnonzero(coarse[i]))
            if e.rows is not None and not exact[i].all():
                missing = np.flatnonzero(~exact[i])
                e.rows[missing] = means.expected([ids[i][j] for j in missing])
                e.approximated = tuple(int(j) for j in missing)
        return out


def _nothing() -> None:
    pass


def _run_chunk(embed_many: EmbedMany, inputs: Inputs, chunk: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's rows ``(len(chunk), d)`` in one forward pass (its candidates grouped by query), and
    whether each came from a coarsened cache entry ``(len(chunk),)`` bool. ``chunk`` is not empty
    (:meth:`Anytime.embed` cuts only rows it has)."""
    groups: dict[int, list[int]] = {}
    for i, j in chunk:
        groups.setdefault(i, []).append(j)
    sub = [(inputs[i][0], [inputs[i][1][j] for j in js]) for i, js in groups.items()]
    parts, marks = embed_many(sub)
    by_row = {(i, j): part[k] for (i, js), part in zip(groups.items(), parts) for k, j in enumerate(js)}
    coarse = {(i, js[k]) for (i, js), m in zip(groups.items(), marks) for k in m}
    return np.stack([by_row[r] for r in chunk]), np.array([r in coarse for r in chunk], dtype=bool)


__all__ = ["Anytime", "Embedded", "FeatureMeans"]
