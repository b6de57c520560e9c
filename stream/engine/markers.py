"""The applied-marker and the outbox: what Redis keeps of a feedback record once it is learned.

A marker names the record that was applied (topic, partition, offset) and says where its
outputs are, so that the record read again (after a crash or an abort between the Redis
commit and the Kafka commit) re-emits exactly those and learns nothing
(:mod:`stream.engine.joins`). The outputs themselves, the model update and the outcome (which
carries its whole decision), are kept once per batch and partition, in an *outbox*, as the
bytes that were published; a marker points into it (its id, first output, count).

The two live differently. A marker must stay as long as the record could be learned again:
days (``applied_ttl_s``), about a hundred bytes each. An outbox is needed only until the
Kafka transaction that carries its outputs commits; the worker then deletes it
(:meth:`stream.store.RedisStore.delete_outboxes`), and its TTL (the marker's) is only the
fallback for a worker that died in between. So Redis holds each output for the moment its
commit is in flight, instead of for days inside every marker. A marker whose outbox is gone
was committed: the record read again (an offset reset, an expired consumer group) re-emits
nothing, where an output inside the marker would have been published twice.

Binary (msgpack arrays), the outputs kept as the bytes they are. Markers of earlier workers
(JSON, each output a JSON string inside the JSON; first byte ``[``, which a msgpack array never
is) are still read, with their outputs inline, so a worker upgraded in place honours them.

>>> outbox = encode_outbox([("model-updates", b'{"u":1}'), ("outcomes", b'{"o":1}')])
>>> m = Marker(source=("feedback", 3, 41), outbox="feedback:41", first=0, count=2)
>>> decode_marker(encode_marker(m)) == m, len(encode_marker(m))
(True, 30)
>>> outputs(m, {(3, "feedback:41"): outbox})
[('model-updates', b'{"u":1}'), ('outcomes', b'{"o":1}')]
>>> outputs(m, {})  # the outbox was deleted once its outputs committed
[]
>>> old = decode_marker(b'[["feedback",3,41],[["outcomes","{\\\\"o\\\\":1}"]],"",[]]')
>>> outputs(old, {})
[('outcomes', b'{"o":1}')]
"""

from __future__ import annotations

from typing import Mapping

import msgspec

__all__ = ["Marker", "decode_marker", "encode_marker", "encode_outbox", "outbox_ref", "outputs"]


class Marker(msgspec.Struct, array_like=True):
    """The applied-marker of a request: the feedback record it came from and where its outputs are."""

    source: tuple[str, int, int]
    outbox: str = ""  # the outbox of the batch that applied it, in the source's partition ("": none)
    first: int = 0  # its outputs: the outbox's outputs [first, first + count)
    count: int = 0
    # "held": applied by the batch that decided the request, which owns (re-emits) the outputs;
    # "default": the default reward, after the reward wait (a real reward after it is late)
    # "sum": the sum of the rewards that came within the reward wait (reward_aggregation=sum)
    via: str = ""
    summed: list[str] = []  # via "sum": the records summed (``topic:partition:offset``), each then redelivered
    inline: list[tuple[str, bytes]] = []  # a marker of an earlier worker: its outputs, in the marker itself


class _JsonMarker(msgspec.Struct, array_like=True):
    """A marker as written before markers were binary: its outputs inline, each a JSON string."""

    source: tuple[str, int, int]
    outputs: list[tuple[str, str]]
    via: str = ""
    summed: list[str] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Marker)
_json_decoder = msgspec.json.Decoder(_JsonMarker)
_outbox_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes]])


def encode_marker(marker: Marker) -> bytes:
    return _encoder.encode(marker)


def decode_marker(blob: bytes) -> Marker:
    """A stored marker, binary or in the JSON format before it."""
    if blob[:1] == b"[":
        old = _json_decoder.decode(blob)
        return Marker(old.source, via=old.via, summed=old.summed,
                      inline=[(topic, value.encode()) for topic, value in old.outputs])
    return _decoder.decode(blob)


def encode_outbox(outputs: list[tuple[str, bytes]]) -> bytes:
    """One batch's outputs in one partition: ``(logical topic, event bytes)`` in marker order."""
    return _encoder.encode(outputs)


def outbox_ref(marker: Marker) -> tuple[int, str] | None:
    """``(partition, outbox id)`` the marker's outputs are in, or None (inline or none)."""
    return (marker.source[1], marker.outbox) if marker.outbox else None


def outputs(marker: Marker, outboxes: Mapping[tuple[int, str], bytes]) -> list[tuple[str, bytes]]:
    """The outputs ``marker``'s record produced, from ``outboxes`` (``{(partition, id): blob}``, as read);
    none when its outbox is gone: deleted once the outputs' Kafka transaction committed."""
    if marker.inline:
        return list(marker.inline)
    ref = outbox_ref(marker)
    blob = outboxes.get(ref) if ref is not None else None
    if blob is None:
        return []
    return _outbox_decoder.decode(blob)[marker.first:marker.first + marker.count]
