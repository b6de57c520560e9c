"""Configuration of the feature net: which fields it reads and how big it is.

A :class:`FeatureNetConfig` names the numeric and categorical fields of the
context and of the item, and the sizes of the network. Categorical values
and item ids are hashed with a stable hash into shared embedding tables, so
no vocabulary is stored and unseen values work (see
:mod:`features.encoder`).

>>> examples = [
...     ("u1", {"hour": 9, "device": "ios"}, {"id": "a", "features": {"price": 2.5}}, 1.0),
...     ("u2", {"hour": 21}, {"id": "b", "features": {"genre": "jazz"}}, 0.0),
... ]
>>> cfg = FeatureNetConfig.infer(examples, output_dim=8)
>>> cfg.context_numeric, cfg.context_categorical
(('hour',), ('device',))
>>> cfg.item_numeric, cfg.item_categorical
(('price',), ('genre',))
>>> FeatureNetConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from features.errors import FeatureError

__all__ = ["KINDS", "FeatureNetConfig"]

KINDS = ("mlp", "text")
"""Feature-net kinds: the MLP over hashed and numeric fields, and the MLP over those plus an item text encoding."""

_FIELD_GROUPS = ("context_numeric", "context_categorical", "item_numeric", "item_categorical")


def _is_number(value: Any) -> bool:
    """True for ints, floats, bools and numpy scalars; False for strings."""
    return isinstance(value, numbers.Real)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class FeatureNetConfig:
    """Fields and sizes of the feature net ``f(x, item; theta)``.

    Parameters
    ----------
    context_numeric, context_categorical:
        Names of the context's numeric and categorical fields.
    item_numeric, item_categorical:
        Names of the item's numeric and categorical fields (``item["features"]``).
    hash_buckets:
        Rows of each hashed embedding table (the categorical table, shared by
        all categorical fields, and the item-id table). Row 0 is reserved for
        "missing" and stays zero.
    embedding_dim:
        Width of each categorical field's embedding.
    item_id_embedding_dim:
        Width of the item-id embedding; 0 leaves the item id out (a pure
        content model, which generalises to new items).
    hidden:
        Hidden layer sizes of the MLP (ReLU); ``()`` gives a linear map.
    output_dim:
        Width ``d`` of ``f``: the size of the per-user weight vector ``w_u``.
    dropout:
        Dropout probability after each hidden layer, in ``[0, 1)``.
    kind:
        ``"mlp"`` (the default, and what artifacts without a kind are) or
        ``"text"``: the MLP also reads the sentence encoding of the item's text
        field ``item_text`` (:mod:`features.text`, frozen; only the MLP on top,
        the projection head, is trained). The encoding is the expensive part.
    item_text:
        Name of the item's text field (``item["features"][item_text]``); the
        text kind needs it, and it is not a categorical input.
    text_dim:
        Width of the text encoding (384 for all-MiniLM-L6-v2).
    """

    context_numeric: tuple[str, ...] = ()
    context_categorical: tuple[str, ...] = ()
    item_numeric: tuple[str, ...] = ()
    item_categorical: tuple[str, ...] = ()
    hash_buckets: int = 2**15
    embedding_dim: int = 8
    item_id_embedding_dim: int = 16
    hidden: tuple[int, ...] = (64,)
    output_dim: int = 16
    dropout: float = 0.0
    kind: str = "mlp"
    item_text: str | None = None
    text_dim: int = 384

    def __post_init__(self) -> None:
        # Accept lists (e.g. from JSON) but store tuples so the config stays hashable.
        for name in (*_FIELD_GROUPS, "hidden"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        self.validate()

    def validate(self) -> FeatureNetConfig:
        """Check every field; raise :class:`FeatureError` naming the bad one.

        >>> FeatureNetConfig(output_dim=0)
        Traceback (most recent call last):
        ...
        features.errors.FeatureError: output_dim must be an int >= 1, got 0
        """
        for group in _FIELD_GROUPS:
            names = getattr(self, group)
            if not isinstance(names, tuple):
                raise FeatureError(f"{group} must be a tuple of field names, got {names!r}")
            for name in names:
                if not isinstance(name, str) or not name:
                    raise FeatureError(f"{group} must hold non-empty strings, got {name!r}")
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise FeatureError(f"{group} has duplicate field names {dup!r}")
        for side in ("context", "item"):
            both = set(getattr(self, f"{side}_numeric")) & set(getattr(self, f"{side}_categorical"))
            if both:
                raise FeatureError(
                    f"{side}_numeric and {side}_categorical share field names {sorted(both)!r}"
                )
        _check_int("hash_buckets", self.hash_buckets, minimum=2)
        _check_int("embedding_dim", self.embedding_dim, minimum=1)
        _check_int("item_id_embedding_dim", self.item_id_embedding_dim, minimum=0)
        _check_int("output_dim", self.output_dim, minimum=1)
        if not isinstance(self.hidden, tuple):
            raise FeatureError(f"hidden must be a tuple of layer sizes, got {self.hidden!r}")
        for size in self.hidden:
            _check_int("hidden", size, minimum=1)
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, numbers.Real)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise FeatureError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if self.kind not in KINDS:
            raise FeatureError(f"kind must be one of {list(KINDS)!r}, got {self.kind!r}")
        if self.kind == "text":
            if not isinstance(self.item_text, str) or not self.item_text:
                raise FeatureError(f"the text kind needs item_text, the item's text field, got {self.item_text!r}")
            if self.item_text in self.item_numeric or self.item_text in self.item_categorical:
                raise FeatureError(f"item_text {self.item_text!r} must not also be a numeric or categorical field")
        _check_int("text_dim", self.text_dim, minimum=1)
        if self.input_dim == 0:
            raise FeatureError(
                "the config has no inputs: no numeric or categorical fields and "
                f"item_id_embedding_dim={self.item_id_embedding_dim}"
            )
        return self

    @property
    def n_numeric(self) -> int:
        """Number of numeric inputs (context first, then item)."""
        return len(self.context_numeric) + len(self.item_numeric)

    @property
    def n_categorical(self) -> int:
        """Number of categorical inputs (context first, then item)."""
        return len(self.context_categorical) + len(self.item_categorical)

    @property
    def input_dim(self) -> int:
        """Width of the MLP's input: numeric + categorical embeddings + item id.

        >>> FeatureNetConfig(context_numeric=("a",), item_categorical=("g",)).input_dim
        25
        """
        width = self.n_numeric + self.n_categorical * self.embedding_dim + self.item_id_embedding_dim
        return width + (self.text_dim if self.kind == "text" else 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        if not isinstance(data, Mapping):
            raise FeatureError(f"config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FeatureError(f"config has unknown keys {unknown!r}")
        return cls(**dict(data))

    @classmethod
    def infer(cls, examples: Iterable[tuple[Any, Mapping, Mapping, Any]], **overrides: Any) -> FeatureNetConfig:
        """Scan ``(user_id, context, item, reward)`` examples for field names.

        A field whose present values are all numbers (int, float, bool) is
        numeric; a field with any string value is categorical. Names are
        sorted. ``overrides`` set any other config field (``hidden=(32,)``)
        or replace an inferred name list.

        >>> FeatureNetConfig.infer([("u", {"x": 1}, {"id": "a"}, 0.0)], hiddn=(8,))
        Traceback (most recent call last):
        ...
        features.errors.FeatureError: infer() got unknown overrides ['hiddn']
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise FeatureError(f"infer() got unknown overrides {unknown!r}")
        kinds: dict[str, dict[str, bool]] = {"context": {}, "item": {}}  # name -> is_categorical
        n = 0
        for i, example in enumerate(examples):
            n += 1
            try:
                _, context, item, _ = example
            except (TypeError, ValueError):
                raise FeatureError(
                    f"examples[{i}] must be (user_id, context, item, reward), got {example!r}"
                ) from None
            if not isinstance(context, Mapping):
                raise FeatureError(f"examples[{i}] context must be a dict, got {context!r}")
            if not isinstance(item, Mapping):
                raise FeatureError(f"examples[{i}] item must be a dict, got {item!r}")
            item_features = item.get("features") or {}
            if not isinstance(item_features, Mapping):
                raise FeatureError(f"examples[{i}] item['features'] must be a dict, got {item_features!r}")
            for side, feats in (("context", context), ("item", item_features)):
                seen = kinds[side]
                for name, value in feats.items():
                    if _is_missing(value):
                        seen.setdefault(name, False)
                    elif isinstance(value, str):
                        seen[name] = True
                    elif _is_number(value):
                        seen.setdefault(name, False)
                    else:
                        raise FeatureError(
                            f"examples[{i}] {side} field {name!r} must be a number or a string, "
                            f"got {value!r}"
                        )
        if n == 0:
            raise FeatureError("infer() needs at least one example, got 0")
        inferred: dict[str, Any] = {}
        text_field = overrides.get("item_text")
        kinds["item"].pop(text_field, None)  # the text field is encoded as text, not hashed
        for side in ("context", "item"):
            seen = kinds[side]
            inferred[f"{side}_numeric"] = tuple(sorted(k for k, cat in seen.items() if not cat))
            inferred[f"{side}_categorical"] = tuple(sorted(k for k, cat in seen.items() if cat))
        inferred.update(overrides)
        return cls(**inferred)


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise FeatureError(f"{name} must be an int >= {minimum}, got {value!r}")
