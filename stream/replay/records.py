"""Decisions and outcomes from Kafka, decoded a batch at a time into columns.

The records are :mod:`stream.events`' ``eddy.decision/1`` and ``eddy.outcome/1``;
replay reads them through lean views of those Structs (:class:`DecisionRead`,
:class:`OutcomeRead`: the same field names and types, so the same checks, for
the fields replay reads; a unit test keeps the types equal). A batch of
values is decoded one msgspec call per record (no intermediate objects, no
copy of the batch), and a record that fails, or breaks a
cross-field rule (:func:`stream.events.decode_decision`'s), is handed to the
full decoder, whose :class:`~stream.events.EventError` reason is what replay
counts (``undecodable``) and skips; so a record is kept or skipped, for the
same reason, exactly as the per-record decoder would.

>>> from stream.events import Decision, Item, encode
>>> d = Decision("r1", "u1", 1.0, {}, (Item("a"), Item("b")), (0.1, 0.7), (0.25, 0.75), 1, 0.75,
...              "epsilon_greedy", "epsilon_greedy/1?epsilon=0.5", 7, "v1", 0)
>>> cols, undecodable = decision_columns([encode(d), b"{}", None])
>>> cols.n, cols.request_id.tolist(), cols.pmf.tolist(), dict(undecodable)
(1, ['r1'], [[0.25, 0.75]], {'decisions.wrong_schema': 1, 'decisions.empty': 1})
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Callable, Sequence

import msgspec
import numpy as np
from msgspec import Meta, Struct

from stream.events import (MAX_CANDIDATES, MAX_EVENT_BYTES, MAX_SEED, EventError, Features, Id, RequestId,
                           Outcome, Probability, Reward, Timestamp, decode_decision, decode_outcome)
from stream.replay.columns import DecisionColumns, object_array, without_gc

__all__ = ["DecisionRead", "OutcomeRead", "OutcomeColumns", "decision_columns", "outcome_columns", "decode_batch"]


class CandidateRead(Struct, frozen=True, gc=False):
    id: Id


class DecisionRead(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.decision/1"):
    """The fields of :class:`~stream.events.Decision` replay reads (its candidates' ids, not their features)."""

    request_id: RequestId
    user_id: Id
    ts: Timestamp
    context: Features | None
    candidates: Annotated[tuple[CandidateRead, ...], Meta(min_length=1, max_length=MAX_CANDIDATES)]
    scores: tuple[float, ...]
    pmf: tuple[Probability, ...]
    chosen_index: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)]
    propensity: Probability
    seed: Annotated[int, Meta(ge=0, le=MAX_SEED)]
    position: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)] = 0
    taken: tuple[Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)], ...] = ()


class DecisionRef(Struct, frozen=True, gc=False):
    request_id: RequestId
    position: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)] = 0


class OutcomeRead(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.outcome/1"):
    """The fields of :class:`~stream.events.Outcome` the join reads (of its decision, only the request id)."""

    decision: DecisionRef
    item_id: Id
    reward: Reward
    feedback_ts: Timestamp
    default: bool = False


_PREFIX = {DecisionRead: b'{"schema":"eddy.decision/1"', OutcomeRead: b'{"schema":"eddy.outcome/1"'}


def decode_batch(values: Sequence[bytes | None], kind: type, full: Callable[[bytes | None], object],
                 undecodable: Counter, label: str) -> tuple[list, list[int]]:
    """``(records, index)``: the values that decode as ``kind``, and their positions in ``values`` (in order).

    Each plain value (bytes with Eddy's schema prefix, within the size limit) is decoded by the lean
    decoder, one C call each: as fast as one call on the values joined into an array, without copying
    them into one, and a bad value costs only itself. A value that is not plain, or that the lean view
    rejects, goes to ``full``, the per-record decoder: its EventError reason is counted under
    ``label.reason``; a value ``full`` accepts is decoded alone.
    """
    prefix = _PREFIX[kind]
    decode = msgspec.json.Decoder(kind).decode
    records: list = []
    index: list[int] = []
    append, at = records.append, index.append
    others: list[int] = []
    for j, v in enumerate(values):
        if v.__class__ is bytes and len(v) <= MAX_EVENT_BYTES and v.startswith(prefix):
            try:
                append(decode(v))
                at(j)
                continue
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
                pass
        others.append(j)
    if not others:
        return records, index
    for j in others:
        try:
            full(values[j])
        except EventError as exc:
            undecodable[f"{label}.{exc.reason}"] += 1
            continue
        records.append(msgspec.json.decode(values[j], type=kind))  # full accepts it: so does the lean view
        index.append(j)
    order = sorted(range(len(index)), key=index.__getitem__)  # back in read order
    return [records[k] for k in order], [index[k] for k in order]


@without_gc
def decision_columns(values: Sequence[bytes | None], undecodable: Counter | None = None) -> tuple[DecisionColumns, Counter]:
    """Columns of the decisions among ``values`` (Kafka record values, in read order) and what was skipped.

    ``record(j)`` decodes row ``j``'s value again with :func:`stream.events.decode_decision`.
    """
    undecodable = Counter() if undecodable is None else undecodable
    records, index = decode_batch(values, DecisionRead, decode_decision, undecodable, "decisions")
    fields = _fields(records)
    m = len(records)
    counts = np.fromiter(map(len, fields["candidates"]), dtype=np.intp, count=m)
    # decode_decision's cross-field rules: one score and one pmf entry per candidate, a chosen index inside
    # them (checked here on the columns), unique ids (checked on the item codes); a slate position inside
    # them, and the candidates earlier positions took (when listed): one per earlier position, each inside,
    # the chosen one not among them.
    position = np.fromiter(fields["position"], dtype=np.intp, count=m)
    bad = ((np.fromiter(map(len, fields["scores"]), dtype=np.intp, count=m) != counts)
           | (np.fromiter(map(len, fields["pmf"]), dtype=np.intp, count=m) != counts)
           | (np.fromiter(fields["chosen_index"], dtype=np.intp, count=m) >= counts)
           | (position >= counts))
    if any(fields["taken"]):
        bad |= np.array([bool(t) and (len(t) != p or c in t or max(t) >= n) for t, p, c, n in
                         zip(fields["taken"], position.tolist(), fields["chosen_index"], counts.tolist())], dtype=bool)
    if bad.any():
        fields, index = _drop(bad, fields, index, values, undecodable)
    cols = _build(fields, index, values)
    repeats = _repeated_ids(cols)
    if repeats.any():
        fields, index = _drop(repeats, fields, index, values, undecodable)
        cols = _build(fields, index, values)
    return cols, undecodable


_FIELDS = ("request_id", "user_id", "context", "ts", "candidates", "pmf", "scores", "chosen_index", "propensity",
           "seed", "position", "taken")
_GETTERS = tuple((name, attrgetter(name)) for name in _FIELDS)


def _fields(records: list[DecisionRead]) -> dict[str, list]:
    """Each field of the records as a list (one C-level pass per field)."""
    return {name: list(map(get, records)) for name, get in _GETTERS}


def _drop(bad: np.ndarray, fields: dict[str, list], index: list[int], values: Sequence[bytes | None],
          undecodable: Counter) -> tuple[dict[str, list], list[int]]:
    """The rows not ``bad``; each bad row's reason, from the full decoder, counted."""
    for k in np.flatnonzero(bad).tolist():
        _skip(values[index[k]], undecodable)
    keep = np.flatnonzero(~bad).tolist()
    return {name: [column[k] for k in keep] for name, column in fields.items()}, [index[k] for k in keep]


def _skip(value: bytes | None, undecodable: Counter) -> None:
    try:
        decode_decision(value)
    except EventError as exc:
        undecodable[f"decisions.{exc.reason}"] += 1
    else:  # the lean view and the full decoder disagree: never silently
        raise AssertionError("a decision the full decoder accepts failed replay's checks")


def _build(fields: dict[str, list], index: list[int], values: Sequence[bytes | None]) -> DecisionColumns:
    context = fields["context"]
    if None in context:
        context = [x if x is not None else {} for x in context]
    candidates = fields["candidates"]
    return DecisionColumns.build(
        request_id=fields["request_id"],
        user_id=fields["user_id"],
        context=context,
        ts=fields["ts"],
        item_ids=[c.id for row in candidates for c in row],
        n_candidates=list(map(len, candidates)),
        pmf=fields["pmf"],
        scores=fields["scores"],
        chosen=fields["chosen_index"],
        propensity=fields["propensity"],
        seed=fields["seed"],
        record=lambda j: decode_decision(values[index[j]]),
        position=fields["position"],
        taken=fields["taken"],
    )


def _repeated_ids(cols: DecisionColumns) -> np.ndarray:
    """(m,) True where a decision lists an item id twice."""
    if cols.n == 0:
        return np.zeros(0, dtype=bool)
    code = np.where(cols.item_code >= 0, cols.item_code, -1 - np.arange(cols.item_code.shape[1])[None, :])
    code = np.sort(code, axis=1)
    return (np.diff(code, axis=1) == 0).any(axis=1)


@dataclass(eq=False)
class OutcomeColumns:
    """m outcomes in read order: the request each joins, the item its feedback was for, reward and time."""

    request_id: np.ndarray  # (m,) object, str
    item_id: np.ndarray  # (m,) object, str
    reward: np.ndarray
    feedback_ts: np.ndarray
    position: np.ndarray | None = None  # (m,) the slate position of each outcome's decision; None: all 0

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    def join_keys(self) -> list[str]:
        """Each outcome's join key: its decision's request id and slate position (as DecisionColumns')."""
        ids = self.request_id.tolist()
        if self.position is None:
            return ids
        from stream.engine.slates import slot_key

        return list(map(slot_key, ids, self.position.tolist()))

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> OutcomeColumns:
        """Columns of Outcome objects already decoded."""
        return cls(object_array([o.decision.request_id for o in outcomes]), object_array([o.item_id for o in outcomes]),
                   np.array([o.reward for o in outcomes], dtype=np.float64).reshape(-1),
                   np.array([o.feedback_ts for o in outcomes], dtype=np.float64).reshape(-1),
                   _positions([o.decision.position for o in outcomes]))


@without_gc
def outcome_columns(values: Sequence[bytes | None], undecodable: Counter | None = None) -> tuple[OutcomeColumns, Counter]:
    """Columns of the outcomes among ``values`` (in read order), and what was skipped.

    decode_outcome also checks the embedded decision's cross-field rules; replay joins an outcome to the
    decision read from the decisions topic, so only the outcome's own fields matter here.
    """
    undecodable = Counter() if undecodable is None else undecodable
    records, _ = decode_batch(values, OutcomeRead, decode_outcome, undecodable, "outcomes")
    m = len(records)
    return OutcomeColumns(  # ids stay Python strings (object arrays): the join looks them up in dicts
        object_array(list(map(_decision_request_id, records))),
        object_array(list(map(_item_id, records))),
        np.fromiter(map(_reward, records), dtype=np.float64, count=m),
        np.fromiter(map(_feedback_ts, records), dtype=np.float64, count=m),
        _positions(list(map(_decision_position, records))),
    ), undecodable


_decision_request_id, _item_id = attrgetter("decision.request_id"), attrgetter("item_id")
_reward, _feedback_ts = attrgetter("reward"), attrgetter("feedback_ts")
_decision_position = attrgetter("decision.position")


def _positions(position: list[int]) -> np.ndarray | None:
    return np.asarray(position, dtype=np.intp) if any(position) else None

