"""Turn (context, item) dicts into the tensors the feature net reads.

Three arrays per batch of ``B`` rows (one row per (context, item) pair):

* ``numeric`` ``(B, n_numeric)`` float32: context numeric fields, then item
  numeric fields, standardised with the mean and standard deviation fitted
  at training time (:meth:`FeatureEncoder.fit`). A missing value (absent
  key, ``None`` or NaN) becomes 0, i.e. the training mean.
* ``categorical`` ``(B, n_categorical)`` int64: each categorical value hashed
  into ``[1, hash_buckets)``; 0 means missing.
* ``item_ids`` ``(B,)`` int64: the item id hashed the same way.

Hashing is stable across processes and machines (blake2b of
``"<side>.<field>=<value>"``), so no vocabulary is stored and unseen items
and values get a bucket like any other. Values are put in a canonical text
form first: ``1``, ``1.0``, ``True`` and ``"1"`` are the same category.

Encoding costs one Python pass per field over the batch, not per element:
columns are gathered with list comprehensions and converted to numpy once.
A query's context is encoded once and repeated over its candidates. Hashes
are cached in bounded dicts (cleared when full).

>>> from features.config import FeatureNetConfig
>>> cfg = FeatureNetConfig(context_numeric=("hour",), item_categorical=("genre",))
>>> enc = FeatureEncoder(cfg)
>>> batch = enc.encode({"hour": 9}, [{"id": "a", "features": {"genre": "jazz"}}, {"id": "b"}])
>>> batch.numeric.tolist()
[[9.0], [9.0]]
>>> batch.categorical[1].tolist(), len(batch)
([0], 2)
>>> stable_bucket("item.genre=jazz", 2**15) == int(batch.categorical[0, 0])
True
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from features.config import FeatureNetConfig
from features.errors import FeatureError

__all__ = ["EncodedBatch", "FeatureEncoder", "canonical", "stable_bucket"]

_EMPTY: dict[str, Any] = {}  # never mutated
_PLAIN_NUMERIC = frozenset({int, float, bool, type(None), np.float64, np.float32, np.int64, np.int32})


def canonical(value: Any) -> str | None:
    """Canonical text of a categorical value; ``None`` when missing.

    Values that compare equal in Python get the same text, so the hash
    caches (keyed by value) can never disagree with a fresh hash.

    >>> [canonical(v) for v in ("jazz", 3, 3.0, True, 2.5, None, float("nan"))]
    ['jazz', '3', '3', '1', '2.5', None, None]
    """
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if value is None:
        return None
    raise TypeError(type(value).__name__)


def stable_bucket(key: str, buckets: int) -> int:
    """Bucket of ``key`` in ``[1, buckets)``, the same in every process.

    >>> stable_bucket("id=item-42", 2**15)
    32257
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Encoded rows: ``numeric (B, n_numeric) float32``, ``categorical (B, n_cat) int64``, ``item_ids (B,) int64``,
    and for the text kind ``text (B, text_dim) float32``, the items' text encodings (:mod:`features.text`)."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    item_ids: torch.Tensor
    text: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> EncodedBatch:
        """The same batch on ``device``."""
        return EncodedBatch(
            self.numeric.to(device, non_blocking=non_blocking),
            self.categorical.to(device, non_blocking=non_blocking),
            self.item_ids.to(device, non_blocking=non_blocking),
            None if self.text is None else self.text.to(device, non_blocking=non_blocking),
        )

    def take(self, index: torch.Tensor) -> EncodedBatch:
        """Rows ``index`` (a 1-D long tensor on the batch's device)."""
        return EncodedBatch(self.numeric[index], self.categorical[index], self.item_ids[index],
                            None if self.text is None else self.text[index])

    def with_text(self, text: torch.Tensor) -> EncodedBatch:
        """The same rows with their text encodings ``(B, text_dim)``."""
        if text.shape[0] != len(self):
            raise FeatureError(f"text encodings must have {len(self)} rows, got {text.shape[0]}")
        return EncodedBatch(self.numeric, self.categorical, self.item_ids, text)


class _HashCache:
    """Value -> bucket for one field, bounded (cleared when full)."""

    __slots__ = ("prefix", "buckets", "max_size", "field", "table")

    def __init__(self, prefix: str, buckets: int, max_size: int, field: str) -> None:
        self.prefix, self.buckets, self.max_size, self.field = prefix, buckets, max_size, field
        self.table: dict[Any, int] = {}

    def lookup(self, values: list[Any], *, missing: int | None) -> list[int]:
        get = self.table.get
        try:
            out = [get(v) for v in values]
        except TypeError:  # an unhashable value: find and name it
            out = [None] * len(values)
        if None in out:
            for i, idx in enumerate(out):
                if idx is None:
                    out[i] = self._miss(values[i], missing)
        return out

    def _miss(self, value: Any, missing: int | None) -> int:
        try:
            text = canonical(value)
        except TypeError:
            raise FeatureError(
                f"{self.field} must be a string or a number, got {value!r}"
            ) from None
        if text is None:
            if missing is None:
                raise FeatureError(f"{self.field} is missing, got {value!r}")
            return missing
        idx = stable_bucket(self.prefix + text, self.buckets)
        if len(self.table) >= self.max_size:
            self.table.clear()
        self.table[value] = idx
        return idx


class FeatureEncoder:
    """Encodes batches of (context, item) pairs for :class:`features.net.FeatureNet`.

    Parameters
    ----------
    config:
        The feature net's config; fixes the fields and their order.
    stats:
        Standardisation stats from :attr:`stats` of a fitted encoder (as
        stored in an artifact); ``None`` means mean 0, std 1 until :meth:`fit`.
    cache_size:
        Most entries of each field's hash cache (and the item-id cache).
    """

    def __init__(
        self,
        config: FeatureNetConfig,
        *,
        stats: Mapping[str, Any] | None = None,
        cache_size: int = 100_000,
    ) -> None:
        if not isinstance(config, FeatureNetConfig):
            raise FeatureError(f"config must be a FeatureNetConfig, got {type(config).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise FeatureError(f"cache_size must be an int >= 1, got {cache_size!r}")
        self.config = config
        c = config
        self.numeric_names: tuple[str, ...] = tuple(
            [f"context.{n}" for n in c.context_numeric] + [f"item.{n}" for n in c.item_numeric]
        )
        self.categorical_names: tuple[str, ...] = tuple(
            [f"context.{n}" for n in c.context_categorical] + [f"item.{n}" for n in c.item_categorical]
        )
        b = c.hash_buckets
        self._ctx_caches = [_HashCache(f"context.{n}=", b, cache_size, f"context field {n!r}") for n in c.context_categorical]
        self._item_caches = [_HashCache(f"item.{n}=", b, cache_size, f"item field {n!r}") for n in c.item_categorical]
        self._id_cache = _HashCache("id=", b, cache_size, "item['id']")
        self.mean = np.zeros(c.n_numeric, dtype=np.float64)
        self.std = np.ones(c.n_numeric, dtype=np.float64)
        self.fitted = False
        if stats is not None:
            self._set_stats(stats)

    # ------------------------------------------------------------------ stats
    @property
    def stats(self) -> dict[str, Any]:
        """JSON-ready standardisation stats: names, mean and std per numeric input."""
        return {
            "numeric_names": list(self.numeric_names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "fitted": self.fitted,
        }

    def _set_stats(self, stats: Mapping[str, Any]) -> None:
        if not isinstance(stats, Mapping):
            raise FeatureError(f"stats must be a mapping, got {type(stats).__name__}")
        names = stats.get("numeric_names")
        if names is None or tuple(names) != self.numeric_names:
            raise FeatureError(
                f"stats numeric_names must be {list(self.numeric_names)!r}, got {names!r}"
            )
        try:
            mean = np.asarray(stats["mean"], dtype=np.float64)
            std = np.asarray(stats["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"stats must hold numeric 'mean' and 'std' lists: {exc}") from None
        n = len(self.numeric_names)
        if mean.shape != (n,) or std.shape != (n,):
            raise FeatureError(f"stats mean/std must have shape ({n},), got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise FeatureError(f"stats need finite means and positive stds, got mean={mean.tolist()} std={std.tolist()}")
        self.mean, self.std, self.fitted = mean, std, bool(stats.get("fitted", True))

    def fit(self, contexts: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> FeatureEncoder:
        """Fit mean and std of each numeric input over paired rows; returns self.

        Missing values are ignored; a constant or always-missing input gets std 1.
        """
        if len(contexts) != len(items):
            raise FeatureError(f"contexts and items must have equal lengths, got {len(contexts)} and {len(items)}")
        raw = self._numeric_raw(contexts, items, None)
        with np.errstate(invalid="ignore"):
            count = (~np.isnan(raw)).sum(axis=0)
            mean = np.where(count > 0, np.nansum(raw, axis=0) / np.maximum(count, 1), 0.0)
            var = np.where(count > 0, np.nansum((raw - mean) ** 2, axis=0) / np.maximum(count, 1), 1.0)
        std = np.sqrt(var)
        std[~(std > 1e-12)] = 1.0
        self.mean, self.std, self.fitted = mean, std, True
        return self

    # --------------------------------------------------------------- encoding
    def encode(self, context: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> EncodedBatch:
        """One query: ``context`` paired with each of ``items`` (``len(items)`` rows)."""
        return self._encode([context], items, np.zeros(len(items), dtype=np.intp))

    def encode_many(self, queries: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]) -> EncodedBatch:
        """Many queries ``[(context, items), ...]``; rows follow queries, then items."""
        contexts = [q[0] for q in queries]
        items = [it for q in queries for it in q[1]]
        counts = [len(q[1]) for q in queries]
        return self._encode(contexts, items, np.repeat(np.arange(len(contexts)), counts))

    def encode_pairs(self, contexts: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> EncodedBatch:
        """Row ``i`` pairs ``contexts[i]`` with ``items[i]`` (training data)."""
        if len(contexts) != len(items):
            raise FeatureError(f"contexts and items must have equal lengths, got {len(contexts)} and {len(items)}")
        return self._encode(contexts, items, None)

    def _encode(self, contexts: Sequence[Mapping], items: Sequence[Mapping], rows: np.ndarray | None) -> EncodedBatch:
        item_feats = _item_features(items)
        raw = self._numeric_raw(contexts, items, rows, item_feats=item_feats)
        numeric = (raw - self.mean) / self.std
        numeric[np.isnan(numeric)] = 0.0
        n = len(items)
        cat = np.zeros((n, len(self.categorical_names)), dtype=np.int64)
        ctx_check = _checked(contexts, "contexts")
        for j, (name, cache) in enumerate(zip(self.config.context_categorical, self._ctx_caches)):
            col = np.asarray(cache.lookup([c.get(name) for c in ctx_check], missing=0), dtype=np.int64)
            cat[:, j] = col if rows is None else col[rows]
        off = len(self._ctx_caches)
        for j, (name, cache) in enumerate(zip(self.config.item_categorical, self._item_caches)):
            cat[:, off + j] = cache.lookup([f.get(name) for f in item_feats], missing=0)
        if self.config.item_id_embedding_dim > 0:
            try:
                ids = [it["id"] for it in items]
            except KeyError:
                bad = next(i for i, it in enumerate(items) if "id" not in it)
                raise FeatureError(f"items[{bad}] has no 'id', got {items[bad]!r}") from None
            item_ids = np.asarray(self._id_cache.lookup(ids, missing=None), dtype=np.int64)
        else:
            item_ids = np.zeros(n, dtype=np.int64)
        return EncodedBatch(
            torch.from_numpy(numeric.astype(np.float32)),
            torch.from_numpy(cat),
            torch.from_numpy(item_ids),
        )

    def _numeric_raw(
        self,
        contexts: Sequence[Mapping],
        items: Sequence[Mapping],
        rows: np.ndarray | None,
        *,
        item_feats: list[Mapping] | None = None,
    ) -> np.ndarray:
        """Unstandardised numeric matrix (B, n_numeric), NaN where missing."""
        c = self.config
        if item_feats is None:
            item_feats = _item_features(items)
        n = len(items)
        out = np.empty((n, c.n_numeric), dtype=np.float64)
        if c.context_numeric:
            ctx = _checked(contexts, "contexts")
            block = _numeric_block(ctx, c.context_numeric, "context")
            out[:, : len(c.context_numeric)] = block if rows is None else block[rows]
        if c.item_numeric:
            out[:, len(c.context_numeric) :] = _numeric_block(item_feats, c.item_numeric, "item")
        return out


def _checked(dicts: Sequence[Any], what: str) -> Sequence[Mapping]:
    for i, d in enumerate(dicts):
        if type(d) is not dict and not isinstance(d, Mapping):  # fast path: ABC checks are slow
            raise FeatureError(f"{what}[{i}] must be a dict, got {d!r}")
    return dicts


def _item_features(items: Sequence[Any]) -> list[Mapping]:
    if all(type(it) is dict for it in items):  # fast path: ABC isinstance checks are slow
        feats = [it.get("features") for it in items]
        if all(f is None or type(f) is dict for f in feats):
            return [_EMPTY if f is None else f for f in feats]
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise FeatureError(f"items[{i}] must be a dict with an 'id', got {it!r}")
        f = it.get("features")
        if f is None:
            f = _EMPTY
        elif not isinstance(f, Mapping):
            raise FeatureError(f"items[{i}]['features'] must be a dict, got {f!r}")
        out.append(f)
    return out


def _numeric_block(dicts: Sequence[Mapping], names: tuple[str, ...], side: str) -> np.ndarray:
    """(len(dicts), len(names)) float64, NaN where missing; rejects strings and inf."""
    cols = []
    for name in names:
        col = [d.get(name) for d in dicts]
        if not _PLAIN_NUMERIC.issuperset(map(type, col)):
            for v in col:
                if not (v is None or (isinstance(v, numbers.Real) and not isinstance(v, str))):
                    raise FeatureError(f"{side} field {name!r} must be numeric, got {v!r}")
        cols.append(col)
    try:
        block = np.array(cols, dtype=np.float64).reshape(len(names), len(dicts)).T
    except (TypeError, ValueError, OverflowError) as exc:  # pragma: no cover - guarded above
        raise FeatureError(f"{side} numeric fields {list(names)!r} could not be converted: {exc}") from None
    if np.isinf(block).any():
        j = int(np.nonzero(np.isinf(block).any(axis=0))[0][0])
        bad = float(block[np.isinf(block[:, j]), j][0])
        raise FeatureError(f"{side} field {names[j]!r} must be finite, got {bad!r}")
    return block
