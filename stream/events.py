"""Event contracts: every record Eddy reads or writes, defined once.

Each event is a frozen dataclass with a ``SCHEMA`` name and version. On the
wire it is one JSON object whose ``"schema"`` field is ``"<name>/<version>"``
(for example ``"eddy.query/1"``), so any Kafka client (Python, Java, ``kcat``)
can produce and read it. ``decode_*`` functions turn bytes into a typed event
or raise :class:`EventError` naming the field and the problem; the worker
dead-letters the original bytes with that reason. Producers, processors,
replay and tests all use these classes; docs/events.md shows one example of
each.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from features.errors import EddyError

MAX_EVENT_BYTES = 256 * 1024
MAX_CANDIDATES = 512
MAX_ID_LENGTH = 256


class EventError(EddyError, ValueError):
    """A record that does not match its contract; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


FeatureValue = float | str
Features = dict[str, FeatureValue]


@dataclass(frozen=True)
class Item:
    id: str
    features: Features = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "features": dict(self.features)} if self.features else {"id": self.id}


@dataclass(frozen=True)
class Query:
    """A request to rank ``candidates`` for ``user_id`` and choose ``k`` of them."""

    SCHEMA: ClassVar[str] = "eddy.query/1"
    request_id: str
    user_id: str
    ts: float
    context: Features
    candidates: tuple[Item, ...]
    k: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "ts": self.ts,
            "context": dict(self.context),
            "candidates": [c.to_dict() for c in self.candidates],
            "k": self.k,
        }


@dataclass(frozen=True)
class Feedback:
    """The outcome the application observed for one request: ``reward`` for ``item_id``."""

    SCHEMA: ClassVar[str] = "eddy.feedback/1"
    request_id: str
    user_id: str
    item_id: str
    reward: float
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **asdict(self)}


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    score: float
    probability: float


@dataclass(frozen=True)
class Prediction:
    """What Eddy answers: the ranking, the chosen items and the versions used."""

    SCHEMA: ClassVar[str] = "eddy.prediction/1"
    request_id: str
    user_id: str
    ranked: tuple[RankedItem, ...]
    chosen: tuple[str, ...]
    feature_net_version: str
    user_weights_version: int
    policy: str
    latency_ms: float
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "ranked": [{"item_id": r.item_id, "score": r.score, "probability": r.probability} for r in self.ranked],
            "chosen": list(self.chosen),
            "versions": {
                "feature_net": self.feature_net_version,
                "user_weights": self.user_weights_version,
                "policy": self.policy,
            },
            "latency_ms": self.latency_ms,
            "ts": self.ts,
        }


@dataclass(frozen=True)
class Decision:
    """The counterfactual log record, written at decision time.

    ``pmf[i]`` is the probability the policy gave ``candidates[i]``; the
    chosen index was drawn from it with ``seed``, so the draw can be
    repeated. The features the policy used are the query's context and the
    candidates' features pushed through feature net ``feature_net_version``.
    """

    SCHEMA: ClassVar[str] = "eddy.decision/1"
    request_id: str
    user_id: str
    ts: float
    context: Features
    candidates: tuple[Item, ...]
    scores: tuple[float, ...]
    pmf: tuple[float, ...]
    chosen_index: int
    propensity: float
    policy: str
    policy_version: str
    seed: int
    feature_net_version: str
    user_weights_version: int

    @property
    def chosen_item(self) -> str:
        return self.candidates[self.chosen_index].id

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(): it deep-copies every candidate's features only to be replaced
        # here, and this runs up to three times per request (pack, decision, outcome).
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["candidates"] = [c.to_dict() for c in self.candidates]
        d["context"] = dict(self.context)
        d["scores"], d["pmf"] = list(self.scores), list(self.pmf)
        return {"schema": self.SCHEMA, **d}


@dataclass(frozen=True)
class Outcome:
    """A decision joined with its feedback: what replay reads without re-joining."""

    SCHEMA: ClassVar[str] = "eddy.outcome/1"
    decision: Decision
    item_id: str
    reward: float
    feedback_ts: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "decision": self.decision.to_dict(),
            "item_id": self.item_id,
            "reward": self.reward,
            "feedback_ts": self.feedback_ts,
        }


@dataclass(frozen=True)
class ModelUpdate:
    """A change of model state: one user's weights, or the live feature net."""

    SCHEMA: ClassVar[str] = "eddy.model_update/1"
    kind: str  # "user_weights" | "feature_net"
    feature_net_version: str
    version: int | str  # user-weights version (observations applied) or feature-net version
    user_id: str | None
    request_id: str | None
    summary: dict[str, float]
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **asdict(self)}


# --------------------------------------------------------------------------- wire


def encode(event: Query | Feedback | Prediction | Decision | Outcome | ModelUpdate) -> bytes:
    return json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False).encode()


def _load(raw: bytes | None, expected: str) -> dict[str, Any]:
    if raw is None:
        raise EventError("empty", "message has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("oversized", f"{len(raw)} bytes > limit {MAX_EVENT_BYTES}")
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except EventError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError("not_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise EventError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != expected:
        name = expected.split("/")[0]
        if isinstance(schema, str) and schema.split("/")[0] == name:
            raise EventError("unknown_schema_version", f"schema {schema!r}; this worker reads {expected!r}")
        raise EventError("wrong_schema", f"schema {schema!r}; expected {expected!r}")
    return obj


def _reject_constant(name: str) -> None:
    raise EventError("non_finite_number", f"{name} is not allowed")


def _str(obj: dict, key: str, *, max_len: int = MAX_ID_LENGTH) -> str:
    v = obj.get(key)
    if v is None:
        raise EventError("missing_field", f"field {key!r} is required")
    if not isinstance(v, str) or not v:
        raise EventError("bad_type", f"field {key!r} must be a non-empty string, got {v!r:.60}")
    if len(v) > max_len:
        raise EventError("bad_value", f"field {key!r} longer than {max_len} characters")
    return v


def _num(obj: dict, key: str, *, default: float | None = None) -> float:
    v = obj.get(key, default)
    if v is None:
        raise EventError("missing_field", f"field {key!r} is required")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EventError("bad_type", f"field {key!r} must be a number, got {v!r:.60}")
    if not math.isfinite(v):
        raise EventError("non_finite_number", f"field {key!r} is {v}")
    return float(v)


def _features(obj: Any, where: str) -> Features:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise EventError("bad_type", f"{where} must be an object of name -> number or string")
    out: Features = {}
    for name, v in obj.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise EventError("bad_type", f"{where}[{name!r}] must be a number or string, got {v!r:.60}")
        if isinstance(v, float) and not math.isfinite(v):
            raise EventError("non_finite_number", f"{where}[{name!r}] is {v}")
        out[name] = v
    return out


def _items(obj: dict) -> tuple[Item, ...]:
    raw = obj.get("candidates")
    if raw is None:
        raise EventError("missing_field", "field 'candidates' is required")
    if not isinstance(raw, list) or not raw:
        raise EventError("bad_type", "field 'candidates' must be a non-empty list")
    if len(raw) > MAX_CANDIDATES:
        raise EventError("bad_value", f"{len(raw)} candidates > limit {MAX_CANDIDATES}")
    items = []
    seen = set()
    for i, c in enumerate(raw):
        if isinstance(c, str):
            c = {"id": c}
        if not isinstance(c, dict):
            raise EventError("bad_type", f"candidates[{i}] must be an object with 'id' or a string id")
        item_id = _str(c, "id")
        if item_id in seen:
            raise EventError("bad_value", f"candidates[{i}] repeats item id {item_id!r}")
        seen.add(item_id)
        items.append(Item(item_id, _features(c.get("features"), f"candidates[{i}].features")))
    return tuple(items)


def decode_query(raw: bytes | None) -> Query:
    obj = _load(raw, Query.SCHEMA)
    candidates = _items(obj)
    k = obj.get("k", 1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(candidates):
        raise EventError("bad_value", f"field 'k' must be an integer in [1, {len(candidates)}], got {k!r:.20}")
    return Query(
        request_id=_str(obj, "request_id"),
        user_id=_str(obj, "user_id"),
        ts=_num(obj, "ts"),
        context=_features(obj.get("context"), "context"),
        candidates=candidates,
        k=k,
    )


def decode_feedback(raw: bytes | None) -> Feedback:
    obj = _load(raw, Feedback.SCHEMA)
    return Feedback(
        request_id=_str(obj, "request_id"),
        user_id=_str(obj, "user_id"),
        item_id=_str(obj, "item_id"),
        reward=_num(obj, "reward"),
        ts=_num(obj, "ts"),
    )


def decision_from_dict(d: dict[str, Any]) -> Decision:
    return Decision(
        request_id=d["request_id"],
        user_id=d["user_id"],
        ts=float(d["ts"]),
        context=d.get("context") or {},
        candidates=tuple(Item(c["id"], c.get("features") or {}) for c in d["candidates"]),
        scores=tuple(d["scores"]),
        pmf=tuple(d["pmf"]),
        chosen_index=int(d["chosen_index"]),
        propensity=float(d["propensity"]),
        policy=d["policy"],
        policy_version=d["policy_version"],
        seed=int(d["seed"]),
        feature_net_version=d["feature_net_version"],
        user_weights_version=int(d["user_weights_version"]),
    )


def decode_decision(raw: bytes | None) -> Decision:
    obj = _load(raw, Decision.SCHEMA)
    try:
        return decision_from_dict(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError("bad_decision", repr(exc)[:200]) from None


def decode_outcome(raw: bytes | None) -> Outcome:
    obj = _load(raw, Outcome.SCHEMA)
    try:
        return Outcome(
            decision=decision_from_dict(obj["decision"]),
            item_id=obj["item_id"],
            reward=float(obj["reward"]),
            feedback_ts=float(obj["feedback_ts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError("bad_outcome", repr(exc)[:200]) from None


def decode_json(raw: bytes | None) -> dict[str, Any]:
    """Any Eddy event as a plain dict (for ``eddy tail``)."""
    if raw is None:
        raise EventError("empty", "message has no value")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError("not_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise EventError("not_object", "expected a JSON object")
    return obj
