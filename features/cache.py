"""The feature cache (Velox): ``f``'s expensive part, cached per feature-net version by a hash of its input.

What is cached is the feature, never a decision: the policy still scores and
draws every query, so the logged pmf and propensity are always those of the
features that were used (the join record keeps them, and learning reads them).

* **Unit.** Each kind caches what is expensive and reusable
  (:meth:`features.model.FeatureModel.embed_many`): the text kind the sentence
  encoding of an item's text, keyed by the text; the MLP kind the whole row
  ``f(context, item)``, keyed by its encoded input (standardised numerics,
  hashed categorical buckets, item bucket), so equal keys give equal ``f``.
* **Versions.** One :class:`FeatureCache` per feature-net version; a model
  refuses a cache of another version, so a swap cannot mix them.
  :meth:`FeatureCaches.warmed` fills the next version's cache from the live
  one's most recent inputs before the switch; :meth:`FeatureCaches.install`
  then drops the old version's.
* **Bounds.** Least recently used entries are evicted past ``capacity``; hits,
  misses and evictions are counted (per version, and in totals that survive
  swaps, for Prometheus).
* **Coarsening.** With ``lsh_bits`` > 0 the MLP kind's key uses the SimHash
  signature of the numeric inputs (:class:`features.lsh.SimHash`) instead of
  their exact values: similar inputs share an entry, an approximation
  measured in ``benchmarks/lsh_coarsening.py``. The text kind's key is the
  text itself and is never coarsened. Given each row's exact key too,
  :meth:`FeatureCache.get_or_compute` says which rows were served from an
  entry computed for another input (``coarsened``), so the decision can
  record it.

>>> import numpy as np
>>> c = FeatureCache("v1", capacity=2)
>>> calls = []
>>> def compute(rows):
...     calls.append(rows)
...     return np.array([[float(len(k))] for k in (keys[i] for i in rows)])
>>> keys = ["a", "bb", "a"]
>>> [float(v[0]) for v in c.get_or_compute(keys, compute, source=lambda i: keys[i])]
[1.0, 2.0, 1.0]
>>> calls, (c.hits, c.misses)
([[0, 1]], (1, 2))
>>> keys = ["ccc"]
>>> _ = c.get_or_compute(keys, compute, source=lambda i: keys[i])
>>> c.evictions, c.sources(5)
(1, ['bb', 'ccc'])
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from features.errors import FeatureError
from features.lsh import MAX_BITS, SimHash

__all__ = ["FeatureCache", "FeatureCaches"]


def _packed(numeric: np.ndarray, exact: np.ndarray) -> list[bytes]:
    parts = [np.ascontiguousarray(numeric).view(np.uint8).reshape(len(numeric), -1),
             np.ascontiguousarray(exact, dtype=np.int64).view(np.uint8).reshape(len(exact), -1)]
    return [row.tobytes() for row in np.concatenate(parts, axis=1)]

LSH_SEED = 0x5E1F
"""Seed of the SimHash planes: every worker buckets alike."""


class FeatureCache:
    """LRU map ``key -> (feature row, source input, exact key of that input)`` of one feature-net version."""

    def __init__(self, version: str, *, capacity: int, lsh_bits: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise FeatureError(f"feature cache capacity must be an int >= 1, got {capacity!r}")
        if isinstance(lsh_bits, bool) or not isinstance(lsh_bits, int) or not 0 <= lsh_bits <= MAX_BITS:
            raise FeatureError(f"lsh_bits must be an int in [0, {MAX_BITS}], got {lsh_bits!r}")
        self.version, self.capacity, self.lsh_bits = version, capacity, lsh_bits
        self.hits = self.misses = self.evictions = 0
        self.coarsened = 0  # hits served from an entry computed for another input (lsh_bits > 0)
        self._entries: OrderedDict[Hashable, tuple[np.ndarray, Any, Hashable]] = OrderedDict()
        self._simhash: SimHash | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def row_keys(self, numeric: np.ndarray, exact: np.ndarray) -> list[bytes]:
        """Keys of encoded rows: ``numeric (B, n)`` float32 (SimHash-coarsened when ``lsh_bits``) and
        ``exact (B, m)`` integers (hashed buckets) that always key exactly."""
        if self.lsh_bits and numeric.shape[1]:
            if self._simhash is None or self._simhash.dim != numeric.shape[1]:
                self._simhash = SimHash(numeric.shape[1], self.lsh_bits, seed=LSH_SEED)
            numeric = self._simhash.signatures(numeric)
        return _packed(numeric, exact)

    @staticmethod
    def exact_keys(numeric: np.ndarray, exact: np.ndarray) -> list[bytes]:
        """:meth:`row_keys` without coarsening: equal only for equal inputs."""
        return _packed(numeric, exact)

    def get_or_compute(self, keys: Sequence[Hashable], compute: Callable[[list[int]], np.ndarray], *,
                       source: Callable[[int], Any], exact: Sequence[Hashable] | None = None,
                       coarsened: set[int] | None = None) -> list[np.ndarray]:
        """The feature row of each key; ``compute(rows)`` gives ``(len(rows), d)`` for the first row of each
        missing key, and ``source(row)`` the input kept with its entry (to warm the next version).
        A key repeated within the call is computed once: one miss, then hits.

        ``exact``: each row's exact key (:meth:`exact_keys`) when ``keys`` are coarsened; the rows whose
        value was computed for another exact key (a coarsened hit) are added to ``coarsened``."""
        out: list[np.ndarray | None] = [None] * len(keys)
        missing: dict[Hashable, list[int]] = {}
        entries = self._entries
        for i, key in enumerate(keys):
            hit = entries.get(key)
            if hit is not None:
                entries.move_to_end(key)
                out[i] = hit[0]
                self.hits += 1
                if exact is not None and hit[2] != exact[i]:
                    self.coarsened += 1
                    if coarsened is not None:
                        coarsened.add(i)
            else:
                missing.setdefault(key, []).append(i)
        if missing:
            first = [rows[0] for rows in missing.values()]
            values = np.asarray(compute(first))
            if values.shape[0] != len(first):
                raise FeatureError(f"compute gave {values.shape[0]} rows for {len(first)} missing keys")
            for (key, rows), value in zip(missing.items(), values):
                value = value.copy()  # own memory: an entry must not pin the whole batch's array
                value.flags.writeable = False
                self.misses += 1
                self.hits += len(rows) - 1
                ident = None if exact is None else exact[rows[0]]
                for i in rows:
                    out[i] = value
                    if ident is not None and exact[i] != ident:
                        self.coarsened += 1
                        if coarsened is not None:
                            coarsened.add(i)
                entries[key] = (value, source(rows[0]), ident)
            while len(entries) > self.capacity:
                entries.popitem(last=False)
                self.evictions += 1
        return out  # type: ignore[return-value]

    def sources(self, n: int) -> list[Any]:
        """The inputs of the ``n`` most recently used entries, oldest first."""
        if n <= 0:
            return []
        tail = list(self._entries.values())[-n:]
        return [src for _, src, _ in tail]

    def figures(self) -> dict[str, Any]:
        return {"version": self.version, "entries": len(self), "capacity": self.capacity,
                "lsh_bits": self.lsh_bits, "hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                "coarsened": self.coarsened}


class FeatureCaches:
    """The worker's feature caches: the live version's, and one being warmed for the next.

    ``capacity`` 0 turns caching off (:meth:`live` gives None); ``kinds`` are the feature-net kinds
    cached (:meth:`for_model`).
    """

    def __init__(self, *, capacity: int, lsh_bits: int = 0, warm: int = 0,
                 kinds: tuple[str, ...] = ("text", "mlp")) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise FeatureError(f"feature cache capacity must be an int >= 0, got {capacity!r}")
        self.capacity, self.lsh_bits, self.warm_entries, self.kinds = capacity, lsh_bits, warm, tuple(kinds)
        FeatureCache("check", capacity=1, lsh_bits=lsh_bits)  # validates lsh_bits now, not at the first query
        self._live: FeatureCache | None = None
        self._retired: Counter[str] = Counter()  # counts of the versions' caches that were dropped

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def new(self, version: str) -> FeatureCache | None:
        return FeatureCache(version, capacity=self.capacity, lsh_bits=self.lsh_bits) if self.enabled else None

    def live(self, version: str) -> FeatureCache | None:
        """The cache of the live ``version`` (a new, empty one on first use or after a swap without warming)."""
        if not self.enabled:
            return None
        if self._live is None or self._live.version != version:
            self.install(self.new(version))
        return self._live

    def for_model(self, model: Any) -> FeatureCache | None:
        """The live cache for ``model`` if its kind is cached, else None."""
        return self.live(model.version) if model.kind in self.kinds else None

    def warm_sources(self) -> list[Any]:
        """The live cache's most recent inputs, to warm the next version with (call on the serving thread)."""
        return [] if self._live is None else self._live.sources(self.warm_entries)

    def warmed(self, model: Any, sources: Sequence[Any], *, chunk: int = 256) -> FeatureCache | None:
        """A cache of ``model``'s version filled from ``sources`` (``(context, item)`` pairs); safe off the
        serving thread: it touches nothing the serving thread reads until :meth:`install`."""
        cache = self.new(model.version)
        if cache is None or model.kind not in self.kinds:
            return None
        for start in range(0, len(sources), chunk):
            part = sources[start : start + chunk]
            model.embed_many([(ctx, [item]) for ctx, item in part], cache=cache)
        cache.hits = cache.misses = cache.evictions = cache.coarsened = 0  # warming is not serving
        return cache

    def install(self, cache: FeatureCache | None) -> None:
        """Serve from ``cache`` (its version's); the previous version's cache is dropped, its counts kept."""
        if self._live is not None and (cache is None or cache is not self._live):
            self._retired.update(hits=self._live.hits, misses=self._live.misses, evictions=self._live.evictions)
        self._live = cache

    def totals(self) -> dict[str, int]:
        """Hits, misses and evictions over every version served since the start (monotonic)."""
        out = Counter(self._retired)
        if self._live is not None:
            out.update(hits=self._live.hits, misses=self._live.misses, evictions=self._live.evictions)
        return {k: int(out[k]) for k in ("hits", "misses", "evictions")}

    def figures(self) -> dict[str, Any]:
        live = self._live
        return {**self.totals(), "entries": 0 if live is None else len(live), "capacity": self.capacity,
                "lsh_bits": self.lsh_bits, "version": None if live is None else live.version}
