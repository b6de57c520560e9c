"""The applied-marker: what Redis keeps of a feedback record once it is learned.

A marker names the record that was applied (topic, partition, offset) and holds the outputs it
produced, byte for byte, so that the record read again (after a crash or an abort between the
Redis commit and the Kafka commit) re-emits them and learns nothing (:mod:`stream.engine.joins`).

Markers are binary: a msgpack array whose outputs are the published bytes as they are. The
format before it was JSON, with each output a JSON string inside the JSON: every quote of the
outcome (which carries its whole decision) escaped, then decoded to a string and encoded back
to bytes on the way out. Binary markers are smaller in Redis (a marker lives
``applied_ttl_s``, days by default, one per applied feedback) and cheaper to write and read.
A marker in the old format (its first byte is ``[``; a msgpack array never starts with it) is
still read, so a worker upgraded in place honours the markers its predecessor wrote.

>>> m = Marker(source=("feedback", 3, 41), outputs=[("outcomes", b'{"schema":"eddy.outcome/1"}')])
>>> blob = encode_marker(m)
>>> decode_marker(blob) == m, blob[:1] != b"["
(True, True)
>>> decode_marker(b'[["feedback",3,41],[["outcomes","{\\\\"schema\\\\":\\\\"eddy.outcome/1\\\\"}"]],"",[]]') == m
True
"""

from __future__ import annotations

import msgspec

__all__ = ["Marker", "decode_marker", "encode_marker"]


class Marker(msgspec.Struct, array_like=True):
    """The applied-marker of a request: the feedback record it came from and the outputs it produced."""

    source: tuple[str, int, int]
    outputs: list[tuple[str, bytes]]  # (logical topic, the event as published)
    # "held": applied by the batch that decided the request, which owns (re-emits) the outputs;
    # "default": the default reward, after the reward wait (a real reward after it is late)
    # "sum": the sum of the rewards that came within the reward wait (reward_aggregation=sum)
    via: str = ""
    summed: list[str] = []  # via "sum": the records summed (``topic:partition:offset``), each then redelivered


class _JsonMarker(msgspec.Struct, array_like=True):
    """A marker as written before markers were binary: each output a JSON string."""

    source: tuple[str, int, int]
    outputs: list[tuple[str, str]]
    via: str = ""
    summed: list[str] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Marker)
_json_decoder = msgspec.json.Decoder(_JsonMarker)


def encode_marker(marker: Marker) -> bytes:
    return _encoder.encode(marker)


def decode_marker(blob: bytes) -> Marker:
    """A stored marker, binary or in the JSON format before it."""
    if blob[:1] == b"[":
        old = _json_decoder.decode(blob)
        return Marker(old.source, [(topic, value.encode()) for topic, value in old.outputs], old.via, old.summed)
    return _decoder.decode(blob)
