"""Decisions and outcomes from Kafka, decoded a batch at a time into columns.

The records are :mod:`stream.events`' ``eddy.decision/1`` and ``eddy.outcome/1``;
replay reads them through lean views of those Structs (:class:`DecisionRead`,
:class:`OutcomeRead`: the same field names and types, so the same checks, for
the fields replay reads; a unit test keeps the types equal). A batch of
values is joined into one JSON array and decoded by one msgspec call. A batch
that fails is decoded record by record, and a record that fails, or breaks a
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
from itertools import chain
from operator import attrgetter
from typing import Annotated, Callable, Sequence

import msgspec
import numpy as np
from msgspec import Meta, Struct

from stream.events import (MAX_CANDIDATES, MAX_EVENT_BYTES, MAX_SEED, EventError, Features, Id,
                           Outcome, Probability, Reward, Timestamp, decode_decision, decode_outcome)
from stream.replay.columns import DecisionColumns, without_gc

__all__ = ["DecisionRead", "OutcomeRead", "OutcomeColumns", "decision_columns", "outcome_columns", "decode_batch"]


class CandidateRead(Struct, frozen=True, gc=False):
    id: Id


class DecisionRead(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.decision/1"):
    """The fields of :class:`~stream.events.Decision` replay reads (its candidates' ids, not their features)."""

    request_id: Id
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
    request_id: Id
    position: Annotated[int, Meta(ge=0, lt=MAX_CANDIDATES)] = 0


class OutcomeRead(Struct, frozen=True, gc=False, tag_field="schema", tag="eddy.outcome/1"):
    """The fields of :class:`~stream.events.Outcome` the join reads (of its decision, only the request id)."""

    decision: DecisionRef
    item_id: Id
    reward: Reward
    feedback_ts: Timestamp
    default: bool = False


_id = attrgetter("id")
_PREFIX = {DecisionRead: b'{"schema":"eddy.decision/1"', OutcomeRead: b'{"schema":"eddy.outcome/1"'}


def decode_batch(values: Sequence[bytes | None], kind: type, full: Callable[[bytes | None], object],
                 undecodable: Counter, label: str) -> tuple[list, list[int]]:
    """``(records, index)``: the values that decode as ``kind``, and their positions in ``values``.

    A value that does not (or is not plainly Eddy's: no schema prefix, oversized, empty) goes to ``full``,
    the per-record decoder: its EventError reason is counted under ``label.reason``; a value ``full``
    accepts is decoded alone.
    """
    prefix = _PREFIX[kind]
    single = msgspec.json.Decoder(kind)
    plain = [j for j, v in enumerate(values)
             if v is not None and v.__class__ is bytes and len(v) <= MAX_EVENT_BYTES and v.startswith(prefix)]
    records: list = []
    index: list[int] = []
    try:
        records = msgspec.json.Decoder(list[kind]).decode(b"[" + b",".join([values[j] for j in plain]) + b"]")
        index = plain
        others = sorted(set(range(len(values))) - set(plain)) if len(plain) < len(values) else []
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        others = list(range(len(values)))
    for j in others:
        try:
            full(values[j])
        except EventError as exc:
            undecodable[f"{label}.{exc.reason}"] += 1
            continue
        records.append(single.decode(values[j]))
        index.append(j)
    if others:  # back in read order
        order = sorted(range(len(index)), key=index.__getitem__)
        records, index = [records[k] for k in order], [index[k] for k in order]
    return records, index


@without_gc
def decision_columns(values: Sequence[bytes | None], undecodable: Counter | None = None) -> tuple[DecisionColumns, Counter]:
    """Columns of the decisions among ``values`` (Kafka record values, in read order) and what was skipped.

    ``record(j)`` decodes row ``j``'s value again with :func:`stream.events.decode_decision`.
    """
    undecodable = Counter() if undecodable is None else undecodable
    records, index = decode_batch(values, DecisionRead, decode_decision, undecodable, "decisions")
    n_cand = [len(r.candidates) for r in records]
    # decode_decision's cross-field rules: one score and one pmf entry per candidate, a chosen index inside
    # them (checked below on the columns), unique ids (likewise).
    ok = [len(r.scores) == n and len(r.pmf) == n and r.chosen_index < n and r.position < n
          and (not r.taken or len(r.taken) == r.position and r.chosen_index not in r.taken and max(r.taken) < n)
          for r, n in zip(records, n_cand)]
    if not all(ok):
        for r, j, good in zip(records, index, ok):
            if not good:
                _skip(values[j], undecodable)
        records = [r for r, good in zip(records, ok) if good]
        index = [j for j, good in zip(index, ok) if good]
    cols = _build(records, index, values)
    repeats = _repeated_ids(cols)
    if repeats.any():
        for j in np.flatnonzero(repeats).tolist():
            _skip(values[index[j]], undecodable)
        keep = np.flatnonzero(~repeats)
        records, index = [records[k] for k in keep.tolist()], [index[k] for k in keep.tolist()]
        cols = _build(records, index, values)
    return cols, undecodable


def _skip(value: bytes | None, undecodable: Counter) -> None:
    try:
        decode_decision(value)
    except EventError as exc:
        undecodable[f"decisions.{exc.reason}"] += 1
    else:  # the lean view and the full decoder disagree: never silently
        raise AssertionError("a decision the full decoder accepts failed replay's checks")


def _build(records: list[DecisionRead], index: list[int], values: Sequence[bytes | None]) -> DecisionColumns:
    return DecisionColumns.build(
        request_id=[r.request_id for r in records],
        user_id=[r.user_id for r in records],
        context=[r.context if r.context is not None else {} for r in records],
        ts=[r.ts for r in records],
        item_ids=list(map(_id, chain.from_iterable(r.candidates for r in records))),
        n_candidates=[len(r.candidates) for r in records],
        pmf=[r.pmf for r in records],
        scores=[r.scores for r in records],
        chosen=[r.chosen_index for r in records],
        propensity=[r.propensity for r in records],
        seed=[r.seed for r in records],
        record=lambda j: decode_decision(values[index[j]]),
        position=[r.position for r in records],
        taken=[r.taken for r in records],
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

    request_id: np.ndarray
    item_id: np.ndarray
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
        return cls(np.array([o.decision.request_id for o in outcomes], dtype=str).reshape(-1),
                   np.array([o.item_id for o in outcomes], dtype=str).reshape(-1),
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
    return OutcomeColumns(
        np.array([o.decision.request_id for o in records], dtype=str).reshape(-1),
        np.array([o.item_id for o in records], dtype=str).reshape(-1),
        np.fromiter((o.reward for o in records), dtype=np.float64, count=len(records)),
        np.fromiter((o.feedback_ts for o in records), dtype=np.float64, count=len(records)),
        _positions([o.decision.position for o in records]),
    ), undecodable


def _positions(position: list[int]) -> np.ndarray | None:
    return np.asarray(position, dtype=np.intp) if any(position) else None

