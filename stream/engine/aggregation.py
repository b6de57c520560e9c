"""Reward aggregation ``sum``: every reward for a request within its wait time, added up and applied once.

With ``reward_aggregation=sum`` a real reward that joins its decision within the
wait is not learned at once: the batch writes it into the request's
accumulator (``{pN}:rsum:<request>``, a hash with one field per source record,
``topic:partition:offset``), in its atomic commit. The reward timer
(:mod:`stream.rewards`) emits its usual ``default`` feedback event when the wait
ends; the batch that joins that event *closes* the window: it sums the
accumulator as it is at that point of the partition's order, learns the sum
once (an outcome that is not ``default``), deletes the accumulator and writes an
applied-marker ``via: sum`` listing the summed records. With nothing
accumulated it applies the default reward, as under ``earliest``.

Why exactly once: a reward and its close event share a partition (keyed by user,
emitted to the request's own partition), so every reward read before the close
event is in the accumulator when it closes, and every reward after it finds the
marker (late). Accumulating is idempotent: a record read again writes the same
field (counted ``feedback_redelivered``), and after the close it finds itself
in the marker's list (redelivered, no output: the close owns the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from stream.engine.state import StateReader
from stream.events import MAX_ABS_REWARD


class Summand(msgspec.Struct, array_like=True):
    """One reward in an accumulator."""

    item: str
    reward: float


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Summand)


def source_field(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


@dataclass
class RewardSums:
    """A batch's view of the accumulators of the requests it sees: loaded once, updated as it goes."""

    sums: dict[tuple[int, str], dict[str, Summand]] = field(default_factory=dict)

    @classmethod
    def load(cls, state: StateReader, wanted: list[tuple[int, str]]) -> RewardSums:
        raw = state.load_reward_sums(wanted) if wanted else {}
        return cls({k: {src: _decoder.decode(b) for src, b in fields.items()} for k, fields in raw.items()})

    def add(self, key: tuple[int, str], source: str, item: str, reward: float) -> tuple[str, bytes | None]:
        """``("added", field bytes)``, ``("redelivered", None)``, or ``("other_item", None)`` when the request
        already has rewards for another item (a sum is of one item's rewards)."""
        acc = self.sums.setdefault(key, {})
        if source in acc:
            return "redelivered", None
        if acc and next(iter(acc.values())).item != item:
            return "other_item", None
        summand = Summand(item, float(reward))
        acc[source] = summand
        return "added", _encoder.encode(summand)

    def item_of(self, key: tuple[int, str]) -> str | None:
        acc = self.sums.get(key)
        return next(iter(acc.values())).item if acc else None

    def close(self, key: tuple[int, str]) -> tuple[str, float, list[str]] | None:
        """``(item, total, sources)`` of a request's accumulator, emptied; None if it holds nothing."""
        acc = self.sums.pop(key, None)
        if not acc:
            return None
        sources = sorted(acc)  # one order, whatever order Redis returns the fields in
        total = sum(acc[s].reward for s in sources)
        # clipped to what a reward may be, so the outcome stays a valid record for its readers
        return acc[sources[0]].item, max(-MAX_ABS_REWARD, min(MAX_ABS_REWARD, total)), sources
