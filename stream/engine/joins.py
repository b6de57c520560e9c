"""The feedback join: decide what one feedback event means, with no I/O.

The worker looks up the decision and the applied-marker of each feedback's
request in Redis, then :func:`classify` says what to do with it. Kept pure
so the rules can be read (and tested) in one place:

* ``apply``: first feedback for a known decision within the join window;
* ``redelivered``: the very record (same topic, partition, offset) that was
  already applied, read again after a crash or rebalance: re-emit its
  outputs, change nothing;
* dead-letter reasons: ``duplicate_feedback`` (another record for an already
  applied request), ``unknown_request`` (no decision, or it expired after
  twice the join window), ``late_feedback`` (after the join window),
  ``user_mismatch``, ``unknown_item``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from stream.events import Decision, Feedback, decision_from_dict

_HEADER = struct.Struct(">I")


def pack_decision(decision: Decision, embeddings: np.ndarray) -> bytes:
    """The join record: the decision as JSON, then the candidates' embeddings as float32."""
    head = json.dumps(decision.to_dict(), separators=(",", ":")).encode()
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    return _HEADER.pack(len(head)) + head + struct.pack(">HH", *emb.shape) + emb.tobytes()


def unpack_decision(data: bytes) -> tuple[Decision, np.ndarray]:
    (n,) = _HEADER.unpack_from(data, 0)
    decision = decision_from_dict(json.loads(data[4 : 4 + n]))
    rows, cols = struct.unpack_from(">HH", data, 4 + n)
    emb = np.frombuffer(data, dtype=np.float32, count=rows * cols, offset=8 + n).reshape(rows, cols)
    return decision, emb


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int

    def to_list(self) -> list:
        return [self.topic, self.partition, self.offset]


@dataclass(frozen=True)
class Verdict:
    action: str  # "apply" | "redelivered" | "dead_letter"
    reason: str = ""
    detail: str = ""
    item_index: int = -1


def classify(feedback: Feedback, source: Source, decision: Decision | None, marker: dict | None,
             *, join_window_s: float) -> Verdict:
    if marker is not None:
        if marker.get("source") == source.to_list():
            return Verdict("redelivered")
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
    return Verdict("apply", item_index=ids.index(feedback.item_id))
