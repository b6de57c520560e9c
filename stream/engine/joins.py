"""The feedback join: decide what one feedback event means, with no I/O.

The engine looks up the join record (:class:`JoinRecord`) and the
applied-marker of each feedback's request, then :func:`classify` says what
to do with it. Kept pure
so the rules can be read (and tested) in one place:

* ``apply``: first feedback for a known decision within the join window (and
  within the reward wait time, when the deployment has one);
* ``superseded``: a default reward (Eddy's own, emitted when the reward wait
  ended) for a request whose reward was already applied: nothing to do;
* ``redelivered``: the very record (same topic, partition, offset) that was
  already applied, read again after a crash or rebalance: re-emit its
  outputs, change nothing;
* dead-letter reasons: ``duplicate_feedback`` (another record for an already
  applied request), ``unknown_request`` (no decision, or it expired after
  twice the join window; the engine holds such feedback until its decision
  comes, :meth:`stream.engine.Engine.process`), ``late_feedback`` (after the join window),
  ``user_mismatch``, ``unknown_item``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import msgspec
import numpy as np

from stream.events import Decision, Feedback

# format version, len(decision), len(prediction), embedding rows, embedding columns
_HEAD = struct.Struct(">BIIHH")
_OTHER = struct.Struct(">HHH")  # after the embeddings, per other version: len(name), rows, columns
JOIN_RECORD_FORMAT = 2
_decision_decoder = msgspec.json.Decoder(Decision)  # bytes Eddy wrote itself: no envelope checks


class _CandidateId(msgspec.Struct, frozen=True, gc=False):
    id: str


class DecisionHead(msgspec.Struct, frozen=True, gc=False):
    """The fields of a logged decision that the feedback join and the user's update read, decoded
    from the join record's decision without the rest (the candidates' features, the scores and the
    probabilities): about a third of the full decode's time, paid for every joined feedback.
    Every field is :class:`~stream.events.Decision`'s of the same name, decoded from the same bytes
    (tests/unit/test_join_record.py holds them to it); the bytes are Eddy's own, so no bound is
    checked again."""

    request_id: str
    user_id: str
    ts: float
    candidates: tuple[_CandidateId, ...]
    chosen_index: int
    feature_net_version: str
    version_scores: dict[str, tuple[float, ...]] = {}


_head_decoder = msgspec.json.Decoder(DecisionHead)


class JoinRecord:
    """What Redis keeps of a decision: the decision and prediction exactly as published, and the
    candidates' embeddings (float32) that feedback learns from.

    Keeping the published bytes lets a batch that is read again (after a crash, an
    abort or a rebalance) re-emit the very prediction and decision instead of deciding
    again: a prediction already seen by the application is always the one logged.

    ``others`` (model selection): the candidates' embeddings under every other served feature-net
    version, so that each version's user weights learn from the feedback (a tail after ``embeddings``;
    absent without it). A plain class with slots, not a dataclass: a frozen dataclass's constructor and
    a ``cached_property`` (which takes a lock on Python 3.11) cost microseconds per joined feedback.
    """

    __slots__ = ("decision_bytes", "prediction_bytes", "embeddings", "others", "_head", "_decision")

    def __init__(self, decision_bytes: bytes, prediction_bytes: bytes, embeddings: np.ndarray,
                 others: dict[str, np.ndarray] | None = None):
        self.decision_bytes = decision_bytes
        self.prediction_bytes = prediction_bytes
        self.embeddings = embeddings
        self.others = {} if others is None else others
        self._head: DecisionHead | None = None
        self._decision: Decision | None = None

    @property
    def head(self) -> DecisionHead:
        """The fields the join and the user's update read (:class:`DecisionHead`), decoded once."""
        if self._head is None:
            self._head = _head_decoder.decode(self.decision_bytes)
        return self._head

    @property
    def decision(self) -> Decision:
        """The whole decision, decoded once: for the readers that need more than :attr:`head`."""
        if self._decision is None:
            self._decision = _decision_decoder.decode(self.decision_bytes)
        return self._decision

    def pack(self) -> bytes:
        emb = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        head = _HEAD.pack(JOIN_RECORD_FORMAT, len(self.decision_bytes), len(self.prediction_bytes), *emb.shape)
        parts = [head, self.decision_bytes, self.prediction_bytes, emb.tobytes()]
        for version, other in self.others.items():
            other = np.ascontiguousarray(other, dtype=np.float32)
            name = version.encode()
            parts += [_OTHER.pack(len(name), *other.shape), name, other.tobytes()]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> JoinRecord:
        if type(data) is not bytes:  # a memoryview's slices would be views, and a view has no decode()
            data = bytes(data)
        fmt, nd, np_, rows, cols = _HEAD.unpack_from(data, 0)
        if fmt != JOIN_RECORD_FORMAT:
            raise ValueError(f"join record format {fmt}; this worker reads {JOIN_RECORD_FORMAT}")
        start = _HEAD.size
        at = start + nd + np_
        emb = np.frombuffer(data, dtype=np.float32, count=rows * cols, offset=at).reshape(rows, cols)
        at += 4 * rows * cols
        others = None
        if at < len(data):
            others = {}
            while at < len(data):
                n_name, r, c = _OTHER.unpack_from(data, at)
                at += _OTHER.size
                name = data[at:at + n_name].decode()
                at += n_name
                others[name] = np.frombuffer(data, dtype=np.float32, count=r * c, offset=at).reshape(r, c)
                at += 4 * r * c
        return cls(data[start:start + nd], data[start + nd:start + nd + np_], emb, others)


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int

    def to_list(self) -> list:
        return [self.topic, self.partition, self.offset]


@dataclass(frozen=True)
class Verdict:
    action: str  # "apply" | "redelivered" | "superseded" | "dead_letter"
    reason: str = ""
    detail: str = ""
    item_index: int = -1


def classify(feedback: Feedback, source: Source, decision: DecisionHead | Decision | None, marker: dict | None,
             *, join_window_s: float, reward_wait_s: float = 0.0) -> Verdict:
    """``decision``: the joined decision (its :class:`DecisionHead` is enough), or None.
    ``marker``: the request's applied-marker as ``{"source": [...], "via": ...}``, or None."""
    if marker is not None:
        if marker.get("source") == source.to_list():
            return Verdict("redelivered")
        if feedback.default:  # the reward came first, or this default was emitted twice (a lost lease)
            return Verdict("superseded")
        if marker.get("via") == "default":
            return Verdict("dead_letter", "late_feedback",
                           f"request {feedback.request_id!r} got the default reward when its reward wait "
                           f"({reward_wait_s:g}s) ended")
        if marker.get("via") == "sum":
            return Verdict("dead_letter", "late_feedback",
                           f"request {feedback.request_id!r} got the sum of its rewards when its reward wait "
                           f"({reward_wait_s:g}s) ended")
        return Verdict("dead_letter", "duplicate_feedback",
                       f"request {feedback.request_id!r} already applied from {marker.get('source')}")
    if decision is None:
        return Verdict("dead_letter", "unknown_request",
                       f"no decision for request {feedback.request_id!r} (never made, or expired)")
    if decision.user_id != feedback.user_id:
        return Verdict("dead_letter", "user_mismatch",
                       f"request {feedback.request_id!r} was for user {decision.user_id!r}, not {feedback.user_id!r}")
    ids = [c.id for c in decision.candidates]
    if feedback.item_id not in ids:
        return Verdict("dead_letter", "unknown_item",
                       f"item {feedback.item_id!r} was not a candidate of request {feedback.request_id!r}")
    lag = feedback.ts - decision.ts
    if lag > join_window_s:
        return Verdict("dead_letter", "late_feedback",
                       f"feedback came {lag:.1f}s after its decision; join window is {join_window_s:g}s")
    if reward_wait_s > 0 and not feedback.default and lag > reward_wait_s:
        return Verdict("dead_letter", "late_feedback",
                       f"feedback came {lag:.1f}s after its decision; reward wait time is {reward_wait_s:g}s")
    return Verdict("apply", item_index=ids.index(feedback.item_id))
