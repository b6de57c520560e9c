"""Event contracts: every record Eddy reads or writes, defined once.

Each event is a frozen :mod:`msgspec` Struct with a ``SCHEMA`` name and version. On
the wire it is one JSON object whose ``"schema"`` field is ``"<name>/<version>"``
(for example ``"eddy.query/1"``), so any Kafka client (Python, Java, ``kcat``) can
produce and read it. The Struct definitions are the whole contract: typed decoding,
encoding, the bounds every field must respect, and the JSON Schemas in
``docs/schemas/`` (``python -m stream.events --write-schemas docs/schemas``).
``decode_*`` turn bytes into a typed event or raise :class:`EventError` whose
``reason`` is one of the dead-letter codes listed in docs/events.md; the worker
dead-letters the original bytes with that reason.

>>> q = Query("r1", "u1", 1.5, {"hour": 3.0}, (Item("a"), Item("b", {"genre": "doc"})))
>>> encode(q)
b'{"schema":"eddy.query/1","request_id":"r1","user_id":"u1","ts":1.5,"context":{"hour":3.0},"candidates":[{"id":"a"},{"id":"b","features":{"genre":"doc"}}]}'
>>> decode_query(encode(q)) == q
True
>>> decode_query(b'{"schema":"eddy.query/1","request_id":"r1","user_id":"u1","ts":1,"candidates":["a","a"]}')
Traceback (most recent call last):
...
stream.events.EventError: bad_value: candidates[1] repeats item id 'a'
"""

from __future__ import annotations

import inspect
import json
import math
import operator
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from features.errors import EddyError

MAX_EVENT_BYTES = 256 * 1024
MAX_CANDIDATES = 512
MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 1024  # policy names, versions
MAX_ABS_FEATURE = 1e6  # numeric features; ridge updates fail near 1e9 (docs/events.md, Limits)
MAX_ABS_REWARD = 1e6
MAX_TIMESTAMP_S = 1e10  # epoch seconds, year 2286: a millisecond timestamp is rejected, not misread
MAX_SEED = 2**63 - 1  # request seeds are 63-bit (bandits.decision_seed)
MAX_COUNT = 2**63 - 1  # versions and other counters
MAX_DEADLINE_MS = 3_600_000.0  # an hour: anything longer is not a deadline
_PROBABILITY_SLACK = 1e-9  # a pmf normalised in floating point may exceed 1 by an ulp


class EventError(EddyError, ValueError):
    """A record that does not match its contract; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
# A request id names a join key: no control characters, so the unit separator that keys a slate's
# later positions (stream/engine/slates.py) can never come from an application's own id.
RequestId = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern="^[^\\x00-\\x1f]+$")]
Name = Annotated[str, Meta(max_length=MAX_NAME_LENGTH)]
Timestamp = Annotated[float, Meta(ge=0, le=MAX_TIMESTAMP_S, description="epoch seconds")]
Reward = Annotated[float, Meta(ge=-MAX_ABS_REWARD, le=MAX_ABS_REWARD)]
Probability = Annotated[float, Meta(ge=0, le=1 + _PROBABILITY_SLACK)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
FeatureValue = Annotated[float, Meta(ge=-MAX_ABS_FEATURE, le=MAX_ABS_FEATURE)] | str
Features = Annotated[dict[str, FeatureValue], Meta(description="name -> number (numeric) or string (categorical)")]


class _Event(Struct, frozen=True, gc=False):  # gc=False: events hold no reference cycles
    def to_dict(self) -> dict[str, Any]:
        """The event as its wire JSON, in plain dicts and lists."""
        return _object_decoder.decode(encode(self))


class Item(Struct, frozen=True, gc=False, omit_defaults=True):
    """A candidate: its id and, optionally, its features (``null`` means none)."""

    id: Id
    features: Features | None = {}

    def to_dict(self) -> dict[str, Any]:
        # By hand: the feature net calls it for every candidate of every query.
        return {"id": self.id, "features": dict(self.features)} if self.features else {"id": self.id}


class Query(_Event, tag_field="schema", tag="eddy.query/1", omit_defaults=True):
    """A request to rank ``candidates`` for ``user_id`` and choose ``k`` of them.

    ``deadline_ms``: answer within this long after ``ts``; features not ready by then are
    replaced by their expectation (docs/design.md, "Anytime predictions"). ``None``: the
    worker's ``deadline_ms`` setting; 0: no deadline for this query.
    ``default_action``: the candidate id the application would show on its own; a
    deployment in apprentice mode serves it (absent: the first candidate).
    ``k`` > 1 asks for a slate: ``k`` positions filled one after another without
    replacement, one decision logged per position (docs/design.md, "Slates")."""

    SCHEMA: ClassVar[str] = "eddy.query/1"
    request_id: RequestId
    user_id: Id
    ts: Timestamp
    context: Features
    candidates: tuple[Item, ...]
    k: int = 1
    deadline_ms: float | None = None
    default_action: Id | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": self.SCHEMA, "request_id": self.request_id, "user_id": self.user_id, "ts": self.ts,
             "context": dict(self.context), "candidates": [c.to_dict() for c in self.candidates]}
        if self.k != 1:  # as on the wire (omit_defaults)
            d["k"] = self.k
        if self.deadline_ms is not None:
            d["deadline_ms"] = self.deadline_ms
        if self.default_action is not None:
            d["default_action"] = self.default_action
        return d


class _QueryIn(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.query/1"):
    """A request to rank ``candidates`` for ``user_id`` and choose ``k`` of them.

    Candidates are objects or plain id strings; ids are unique; 1 <= k <= len(candidates).
    ``k`` > 1: a slate of ``k`` positions, filled without replacement, one decision logged per position.
    ``deadline_ms`` (optional): answer within this long after ``ts``, features not ready by then
    replaced by their expectation; absent: the worker's setting; 0: no deadline.
    ``default_action`` (optional) is the id of one of the candidates: the application's own
    choice, which a deployment in apprentice mode serves (absent: the first candidate).
    """

    request_id: RequestId
    user_id: Id
    ts: Timestamp
    candidates: Annotated[tuple[Item | Id, ...], Meta(min_length=1, max_length=MAX_CANDIDATES)]
    context: Features | None = {}
    k: Annotated[int, Meta(ge=1, le=MAX_CANDIDATES)] = 1
    deadline_ms: Annotated[float, Meta(ge=0, le=MAX_DEADLINE_MS)] | None = None
    default_action: Id | None = None


class Feedback(_Event, tag_field="schema", tag="eddy.feedback/1", omit_defaults=True):
    """The outcome the application observed for one request: ``reward`` for ``item_id``.

    ``default`` is set by Eddy only: the deployment's default reward for a decision whose
    reward did not come within its reward wait time (absent from the wire when false).
    ``position``: the slate position (0-based) the feedback is for, when the query asked for
    ``k`` > 1 items; it joins the decision logged for that position (absent: 0)."""

    SCHEMA: ClassVar[str] = "eddy.feedback/1"
    request_id: RequestId
    user_id: Id
    item_id: Id
    reward: Reward
    ts: Timestamp
    default: bool = False
    position: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)] = 0


class RankedItem(Struct, frozen=True, gc=False):
    item_id: Id
    score: float
    probability: Probability


class Versions(Struct, frozen=True, gc=False):
    """The model versions a prediction used."""

    feature_net: Name
    user_weights: Count
    policy: Name


class Prediction(_Event, tag_field="schema", tag="eddy.prediction/1"):
    """What Eddy answers: the ranking, the chosen items and the versions used.

    On the wire the three versions nest under ``"versions"`` (see :attr:`versions`).
    """

    SCHEMA: ClassVar[str] = "eddy.prediction/1"
    request_id: RequestId
    user_id: Id
    ranked: tuple[RankedItem, ...]
    chosen: tuple[Id, ...]
    feature_net_version: Name
    user_weights_version: Count
    policy: Name
    latency_ms: float
    ts: Timestamp
    approximated: tuple[Id, ...] = ()
    coarsened: tuple[Id, ...] = ()

    @property
    def versions(self) -> Versions:
        return Versions(self.feature_net_version, self.user_weights_version, self.policy)


class _PredictionOut(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.prediction/1", omit_defaults=True):
    """What Eddy answers: the ranking (chosen items first, then by score), the chosen items and the versions used.

    ``approximated``: the candidates scored with the expectation of their features because these were not
    ready by the query's deadline (absent when none were). ``coarsened``: the candidates whose features came
    from a feature-cache entry computed for a similar input (LSH coarsening; absent when none did)."""

    request_id: RequestId
    user_id: Id
    ranked: tuple[RankedItem, ...]
    chosen: tuple[Id, ...]
    versions: Versions
    latency_ms: Annotated[float, Meta(ge=0)]
    ts: Timestamp
    approximated: tuple[Id, ...] = ()
    coarsened: tuple[Id, ...] = ()


class Decision(_Event, tag_field="schema", tag="eddy.decision/1", omit_defaults=True):
    """The counterfactual log record, written at decision time.

    ``pmf[i]`` is the probability the policy gave ``candidates[i]``; the
    chosen index was drawn from it with ``seed``, so the draw can be
    repeated. The features the policy used are the query's context and the
    candidates' features pushed through feature net ``feature_net_version``,
    except for the candidates listed in ``approximated`` (indices): their
    features were not ready by the query's deadline and the expectation of
    their features was used instead. ``escalated``: a prediction cascade's
    cheap model was unsure and ``feature_net_version`` (the expensive one)
    answered. ``coarsened`` (indices): the candidates whose features were read
    from a feature-cache entry computed for another, similar input (LSH
    coarsening): a real ``f`` of a near input, which the policy scored, so the
    propensity is still that of the features used. All three are absent from
    the wire when empty / false.

    With model selection (several feature-net versions served at once, absent from
    the wire otherwise): ``selector`` names the selector and its parameters,
    ``version_weights`` is its distribution over the versions for this request,
    ``version_scores`` every served version's scores, and ``version_probability``
    the probability that ``feature_net_version`` was the one to answer (Exp3; 1 for
    an ensemble). ``pmf`` is then the probability of each candidate over the version
    draw and the policy's draw together, so ``propensity`` stays the true
    probability that the chosen item was shown (docs/design.md, "Model selection").
    ``policy_snapshot``: the version of the learner role's policy snapshot that
    decided (absent when workers learn the policy themselves, or it learns nothing).

    ``position``: the slate position this decision filled (0-based; absent when 0). A query
    with ``k`` > 1 logs one decision per position: position ``j`` lists every candidate,
    ``pmf`` over those not taken by positions ``0..j-1`` (0 for taken ones), so the
    propensities of a slate's decisions multiply to the slate's probability. ``taken``:
    the indices of the candidates positions ``0..j-1`` took, in position order (absent
    when empty), so each position's record says alone what it could choose from.
    """

    SCHEMA: ClassVar[str] = "eddy.decision/1"
    request_id: RequestId
    user_id: Id
    ts: Timestamp
    context: Features | None
    candidates: Annotated[tuple[Item, ...], Meta(min_length=1, max_length=MAX_CANDIDATES)]
    scores: tuple[float, ...]
    pmf: tuple[Probability, ...]
    chosen_index: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)]
    propensity: Probability
    policy: Name
    policy_version: Name
    seed: Annotated[int, Meta(ge=0, le=MAX_SEED)]
    feature_net_version: Name
    user_weights_version: Count
    approximated: tuple[Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)], ...] = ()
    escalated: bool = False
    selector: Name = ""
    version_probability: Probability = 1.0
    version_weights: dict[Name, Probability] = {}
    version_scores: dict[Name, tuple[float, ...]] = {}
    policy_snapshot: Count | None = None
    coarsened: tuple[Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)], ...] = ()
    position: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)] = 0
    taken: tuple[Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)], ...] = ()

    @property
    def chosen_item(self) -> str:
        return self.candidates[self.chosen_index].id

    def to_dict(self) -> dict[str, Any]:
        # By hand, like Query's: the join record is built from it for every query.
        d = msgspec.structs.asdict(self)
        d["context"] = dict(self.context or {})
        d["candidates"] = [c.to_dict() for c in self.candidates]
        d["scores"], d["pmf"] = list(self.scores), list(self.pmf)
        if self.approximated:
            d["approximated"] = list(self.approximated)
        else:  # as on the wire (omit_defaults)
            del d["approximated"]
        if not self.escalated:
            del d["escalated"]
        if self.coarsened:
            d["coarsened"] = list(self.coarsened)
        else:
            del d["coarsened"]
        for name, default in _SELECTION_DEFAULTS.items():  # as on the wire: omitted at their defaults
            if d[name] == default:
                del d[name]
        if self.version_scores:
            d["version_scores"] = {v: list(s) for v, s in self.version_scores.items()}
        if d["policy_snapshot"] is None:  # as on the wire
            del d["policy_snapshot"]
        if not self.position:
            del d["position"]
        if self.taken:
            d["taken"] = list(self.taken)
        else:
            del d["taken"]
        return {"schema": self.SCHEMA, **d}


_SELECTION_DEFAULTS = {"selector": "", "version_probability": 1.0, "version_weights": {}, "version_scores": {}}


class Outcome(_Event, tag_field="schema", tag="eddy.outcome/1", omit_defaults=True):
    """A decision joined with its feedback: what replay reads without re-joining.

    ``default``: the reward is the deployment's default reward, applied because none came
    within the reward wait time (absent from the wire when false)."""

    SCHEMA: ClassVar[str] = "eddy.outcome/1"
    decision: Decision
    item_id: Id
    reward: Reward
    feedback_ts: Timestamp
    default: bool = False


class ModelUpdate(_Event, tag_field="schema", tag="eddy.model_update/1"):
    """A change of model state: one user's weights, the live feature net, the apprentice mode's
    switch (``version`` the mode now served: ``learned`` or ``default``; ``summary`` the estimate it rests on),
    or a policy snapshot that the learner role published (``version``: the snapshot's version)."""

    SCHEMA: ClassVar[str] = "eddy.model_update/1"
    kind: Literal["user_weights", "feature_net", "apprentice", "policy"]
    feature_net_version: Name
    version: Count | Name  # user-weights version (observations applied) or feature-net version
    user_id: Id | None
    request_id: RequestId | None
    summary: dict[str, float]
    ts: Timestamp


# --------------------------------------------------------------------------- wire
# One decoder per type, built once: msgspec compiles the type into a validator.

_encoder = msgspec.json.Encoder()
_object_decoder = msgspec.json.Decoder(dict[str, Any])
_query_decoder = msgspec.json.Decoder(_QueryIn)
_feedback_decoder = msgspec.json.Decoder(Feedback)
_prediction_decoder = msgspec.json.Decoder(_PredictionOut)
_decision_decoder = msgspec.json.Decoder(Decision)
_outcome_decoder = msgspec.json.Decoder(Outcome)


class _Envelope(Struct):
    schema: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_PREFIXES = {t.SCHEMA: b'{"schema":"%s"' % t.SCHEMA.encode() for t in (Query, Feedback, Prediction, Decision, Outcome)}
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
_BYTE_AT = re.compile(r"\(byte (\d+)\)")
_item_id = operator.attrgetter("id")
_item_features = operator.attrgetter("features")
_TOO_DEEP = "JSON nested deeper than the decoder's limit (about 1000 levels)"


def encode(event: Query | Feedback | Prediction | Decision | Outcome | ModelUpdate) -> bytes:
    """The event's wire JSON; non-finite numbers raise (JSON has none) rather than becoming ``null``."""
    if event.__class__ is Prediction:
        event = _PredictionOut(event.request_id, event.user_id, event.ranked, event.chosen, event.versions,
                               event.latency_ms, event.ts, event.approximated, event.coarsened)
    try:
        out = _encoder.encode(event)
    except UnicodeEncodeError as exc:
        raise EventError("bad_value", f"a string is not valid Unicode: {exc}") from None
    if b"null" in out:  # msgspec writes NaN and inf as null: look closer only then
        _check_finite(msgspec.to_builtins(event), "$")
    return out


# An outcome with its decision spliced in as the bytes already encoded (the worker's join record keeps
# them): built from Outcome's own fields, so the two cannot drift, and encoded without encoding the
# decision again (about 4 us of the engine's 70 us per feedback).
_OutcomeSpliced = msgspec.defstruct(
    "_OutcomeSpliced",
    [(f.name, msgspec.Raw if f.name == "decision" else f.type)
     if f.required else (f.name, f.type, f.default) for f in msgspec.structs.fields(Outcome)],
    rename={f.name: f.encode_name for f in msgspec.structs.fields(Outcome)},
    tag_field="schema", tag=Outcome.SCHEMA, omit_defaults=True, frozen=True, gc=False)


def encode_outcome(decision: bytes, item_id: str, reward: float, feedback_ts: float, *, default: bool = False) -> bytes:
    """``encode(Outcome(<decision>, item_id, reward, feedback_ts, default))`` byte for byte, for a decision
    given as the wire bytes :func:`encode` wrote for it (not checked again here).

    >>> d = Decision("r1", "u1", 1.0, None, (Item("a"), Item("b")), (0.2, 0.1), (0.9, 0.1), 0, 0.9,
    ...              "egreedy", "egreedy/1", 7, "fn1", 3)
    >>> encode_outcome(encode(d), "a", 1.0, 2.0) == encode(Outcome(d, "a", 1.0, 2.0))
    True
    """
    if not (math.isfinite(reward) and math.isfinite(feedback_ts)):
        raise EventError("non_finite_number", f"reward {reward!r} and feedback_ts {feedback_ts!r} must be finite")
    return _encoder.encode(_OutcomeSpliced(msgspec.Raw(decision), item_id, reward, feedback_ts, default))


def _check_finite(obj: Any, where: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise EventError("non_finite_number", f"{where} is {obj}")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_finite(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_finite(value, f"{where}[{i}]")


def _decode(raw: bytes | None, decoder: msgspec.json.Decoder, schema: str, field_reason: str | None = None):
    """``raw`` through ``decoder``; any failure becomes an :class:`EventError` with its dead-letter reason.

    ``field_reason`` replaces the per-field codes (``bad_type``...) for records Eddy
    writes itself (decisions, outcomes), which have one code each.
    """
    if raw is None:
        raise EventError("empty", "message has no value")
    if raw.__class__ is not bytes:
        raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("oversized", f"{len(raw)} bytes > limit {MAX_EVENT_BYTES}")
    try:
        event = decoder.decode(raw)
    except _DECODE_ERRORS as exc:
        raise _failure(raw, schema, exc, field_reason) from None
    # msgspec accepts a record without its tag; Eddy's own encoder puts it first.
    if not raw.startswith(_PREFIXES[schema]):
        _check_envelope(raw, schema)
    return event


def _failure(raw: bytes, schema: str, exc: Exception, field_reason: str | None) -> EventError:
    if isinstance(exc, RecursionError):
        return EventError("bad_value", _TOO_DEEP)
    if isinstance(exc, UnicodeDecodeError):  # in a string the envelope would skip unread
        return EventError("not_json", str(exc)[:200])
    _check_envelope(raw, schema)  # the document and its schema come before its fields
    msg = str(exc)
    reason = _field_reason(msg)
    if field_reason and reason != "non_finite_number":
        reason = field_reason
    return EventError(reason, msg[:200])


def _check_envelope(raw: bytes, schema: str) -> None:
    try:
        env = _envelope_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if "`$.schema`" in str(exc):
            raise EventError("wrong_schema", f"schema is not a string; expected {schema!r}") from None
        raise EventError("not_object", f"expected a JSON object: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        at = _BYTE_AT.search(str(exc))
        if at and raw.startswith((b"NaN", b"Infinity"), int(at[1])):
            raise EventError("non_finite_number", f"NaN and Infinity are not allowed ({exc})") from None
        raise EventError("not_json", str(exc)[:200]) from None
    except RecursionError:
        raise EventError("bad_value", _TOO_DEEP) from None
    if env.schema != schema:
        if env.schema is not None and env.schema.split("/")[0] == schema.split("/")[0]:
            raise EventError("unknown_schema_version", f"schema {env.schema!r}; this worker reads {schema!r}")
        raise EventError("wrong_schema", f"schema {env.schema!r}; expected {schema!r}")


def _field_reason(msg: str) -> str:
    """The dead-letter code of a msgspec validation message."""
    if msg.startswith("Object missing required field") or "got `null`" in msg:
        return "missing_field"
    if msg.startswith("Number out of range"):  # a float literal beyond the double range: infinite
        return "non_finite_number"
    if msg.endswith("`$.k`"):
        return "bad_value"
    if ", got `" in msg or "of length >= 1" in msg:  # wrong type, or an empty string or list
        return "bad_type"
    return "bad_value"  # out of range, too long, too many


def _items(candidates: tuple[Item | str, ...], where: str = "candidates") -> tuple[Item, ...]:
    """Plain-id candidates as :class:`Item`; ``features: null`` as ``{}``; ids unique."""
    try:
        ids = list(map(_item_id, candidates))
        as_given = None not in map(_item_features, candidates)
    except AttributeError:  # a plain id string
        ids = [c if c.__class__ is str else c.id for c in candidates]
        as_given = False
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen:
                raise EventError("bad_value", f"{where}[{i}] repeats item id {item_id!r}")
            seen.add(item_id)
    if as_given:
        return candidates  # type: ignore[return-value]
    return tuple(Item(c) if c.__class__ is str else Item(c.id, c.features or {}) for c in candidates)


def decode_query(raw: bytes | None) -> Query:
    w = _decode(raw, _query_decoder, Query.SCHEMA)
    candidates = _items(w.candidates)
    if w.k > len(candidates):
        raise EventError("bad_value", f"field 'k' must be an integer in [1, {len(candidates)}], got {w.k}")
    if w.default_action is not None and all(c.id != w.default_action for c in candidates):
        raise EventError("bad_value", f"field 'default_action' must name one of the candidates, got {w.default_action!r}")
    return Query(w.request_id, w.user_id, w.ts, w.context or {}, candidates, w.k, w.deadline_ms, w.default_action)


def decode_feedback(raw: bytes | None) -> Feedback:
    return _decode(raw, _feedback_decoder, Feedback.SCHEMA)


def decode_prediction(raw: bytes | None) -> Prediction:
    w = _decode(raw, _prediction_decoder, Prediction.SCHEMA)
    v = w.versions
    return Prediction(w.request_id, w.user_id, w.ranked, w.chosen, v.feature_net, v.user_weights, v.policy,
                      w.latency_ms, w.ts, w.approximated, w.coarsened)


def _checked_decision(d: Decision, reason: str, where: str = "decision") -> Decision:
    """Cross-field rules a type cannot state; ``context``/``features`` ``null`` as ``{}``."""
    n = len(d.candidates)
    if len(d.scores) != n or len(d.pmf) != n:
        raise EventError(reason, f"{where}: {n} candidates but {len(d.scores)} scores and {len(d.pmf)} pmf entries")
    if d.chosen_index >= n:
        raise EventError(reason, f"{where}: chosen_index {d.chosen_index} with {n} candidates")
    if d.position >= n:
        raise EventError(reason, f"{where}: position {d.position} with {n} candidates")
    if d.taken and (len(d.taken) != d.position or d.chosen_index in d.taken or any(i >= n for i in d.taken)):
        raise EventError(reason, f"{where}: taken {list(d.taken)} at position {d.position} (chosen_index "
                                 f"{d.chosen_index}, {n} candidates): one earlier choice per position, none chosen again")
    if any(i >= n for i in d.approximated):
        raise EventError(reason, f"{where}: approximated {list(d.approximated)} with {n} candidates")
    if any(i >= n for i in d.coarsened):
        raise EventError(reason, f"{where}: coarsened {list(d.coarsened)} with {n} candidates")
    for version, scores in d.version_scores.items():
        if len(scores) != n:
            raise EventError(reason, f"{where}: {n} candidates but {len(scores)} scores of version {version!r}")
    try:
        candidates = _items(d.candidates, f"{where}.candidates")
    except EventError as exc:
        raise EventError(reason, exc.detail) from None
    if candidates is not d.candidates or d.context is None:
        d = msgspec.structs.replace(d, candidates=candidates, context=d.context or {})
    return d


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """A decision from its :meth:`Decision.to_dict` form (the join record)."""
    try:
        decision = msgspec.convert(d, Decision)
    except (msgspec.ValidationError, RecursionError) as exc:
        raise EventError("bad_decision", str(exc)[:200]) from None
    return _checked_decision(decision, "bad_decision")


def decode_decision(raw: bytes | None) -> Decision:
    return _checked_decision(_decode(raw, _decision_decoder, Decision.SCHEMA, "bad_decision"), "bad_decision")


def decode_outcome(raw: bytes | None) -> Outcome:
    o = _decode(raw, _outcome_decoder, Outcome.SCHEMA, "bad_outcome")
    decision = _checked_decision(o.decision, "bad_outcome", "decision")
    return o if decision is o.decision else msgspec.structs.replace(o, decision=decision)


def decode_json(raw: bytes | None) -> dict[str, Any]:
    """Any Eddy event as a plain dict (for ``eddy tail``)."""
    if raw is None:
        raise EventError("empty", "message has no value")
    try:
        return _object_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        raise EventError("bad_value" if " - at `" in msg else "not_object", msg[:200]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventError("not_json", str(exc)[:200]) from None
    except RecursionError:
        raise EventError("bad_value", _TOO_DEEP) from None


# ------------------------------------------------------------------------ schemas

WIRE_TYPES: dict[str, type[Struct]] = {
    "query": _QueryIn, "feedback": Feedback, "prediction": _PredictionOut,
    "decision": Decision, "outcome": Outcome, "model_update": ModelUpdate,
}
_WIRE_NAMES = {"_QueryIn": "Query", "_PredictionOut": "Prediction"}


def json_schemas() -> dict[str, dict[str, Any]]:
    """``{event name: JSON Schema}`` of what each decoder accepts (what docs/schemas/ holds)."""
    out = {}
    for name, wire_type in WIRE_TYPES.items():
        text = json.dumps(msgspec.json.schema(wire_type))
        for private, public in _WIRE_NAMES.items():
            text = text.replace(private, public)
        schema = json.loads(text, object_hook=_clean_description)
        out[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                     "title": wire_type.__struct_config__.tag, **schema}
    return out


def _clean_description(obj: dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj.get("description"), str):  # docstrings keep their indentation in msgspec's schema
        obj["description"] = inspect.cleandoc(obj["description"]).replace("``", "`")
    return obj


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(schema_text(schema))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stream.events", description="Write the events' JSON Schemas.")
    parser.add_argument("--write-schemas", metavar="DIR", required=True, help="directory to write <event>.json into")
    args = parser.parse_args(argv)
    for path in write_schemas(args.write_schemas):
        print(path)
    return 0


if __name__ == "__main__":
    from stream.events import main as _main  # the imported module, not this __main__ copy

    raise SystemExit(_main())
