"""The engine's inputs and outputs: records as bytes with where they came from, and dead letters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["query", "feedback"]

# A dead letter carries its record's original bytes. A record just under the
# topic's size limit would not fit once headers are added, so values above
# this are stored truncated, with the full length and a digest in headers.
DEAD_LETTER_MAX_VALUE = 512 * 1024
DETAIL_MAX_CHARS = 1000


@dataclass(frozen=True)
class InRecord:
    """One consumed record: its kind (by topic), coordinates and raw bytes."""

    kind: Kind
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """A record that cannot be processed, as it goes to the dead-letter topic."""

    record: InRecord
    reason: str
    detail: str

    @property
    def value(self) -> bytes | None:
        v = self.record.value
        return v if v is None or len(v) <= DEAD_LETTER_MAX_VALUE else v[:DEAD_LETTER_MAX_VALUE]

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        r = self.record
        out = [
            ("eddy.reason", self.reason.encode()),
            ("eddy.error", self.detail[:DETAIL_MAX_CHARS].encode("utf-8", "replace")),
            ("eddy.source.topic", r.topic.encode()),
            ("eddy.source.partition", str(r.partition).encode()),
            ("eddy.source.offset", str(r.offset).encode()),
        ]
        if r.value is not None and len(r.value) > DEAD_LETTER_MAX_VALUE:
            out += [("eddy.truncated", b"true"),
                    ("eddy.original.length", str(len(r.value)).encode()),
                    ("eddy.original.sha256", hashlib.sha256(r.value).hexdigest().encode())]
        return out


@dataclass
class BatchOutputs:
    """What one batch publishes.

    ``predictions`` (key, value) go out as soon as the batch's state is durable,
    ahead of its Kafka transaction; ``records`` (logical topic, key, value) and
    ``dead`` letters go in the transaction with the input offsets.
    """

    predictions: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
