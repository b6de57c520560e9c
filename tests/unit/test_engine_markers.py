"""Applied-markers (stream/engine/markers.py): binary markers pointing into an outbox, and the JSON
markers of earlier workers, read with everything a re-read decides by.

Each test's docstring names the bug it was checked to catch (planted by hand, seen failing).
"""

from __future__ import annotations

import msgspec
import pytest

from stream.engine.markers import Marker, decode_marker, encode_marker, encode_outbox, outputs

pytestmark = pytest.mark.unit


def test_a_json_marker_of_an_earlier_worker_keeps_how_it_was_applied():
    """``via`` and ``summed`` decide what a re-read does (a held marker's outputs belong to its query's batch,
    a summed record is redelivered without output): a decoder that dropped either would re-emit outputs twice
    or take a summed record for a duplicate."""
    blob = msgspec.json.encode([["eddy.feedback", 2, 7], [["outcomes", '{"o":1}']], "sum", ["eddy.feedback:2:5"]])
    m = decode_marker(blob)
    assert (m.source, m.via, m.summed, m.outbox) == (("eddy.feedback", 2, 7), "sum", ["eddy.feedback:2:5"], "")
    assert outputs(m, {}) == [("outcomes", b'{"o":1}')]


def test_a_binary_marker_round_trips_and_slices_only_its_outputs():
    """A marker is decoded as written, and its slice is its own: an off-by-one in ``first`` or ``count``
    would re-emit a neighbour's outcome under this record's key."""
    box = encode_outbox([("model-updates", b"u1"), ("outcomes", b"o1"), ("model-updates", b"u2"), ("outcomes", b"o2")])
    m = Marker(("eddy.feedback", 1, 9), outbox="eddy.feedback:8", first=2, count=2, via="held", summed=["x"])
    assert decode_marker(encode_marker(m)) == m
    assert outputs(m, {(1, "eddy.feedback:8"): box}) == [("model-updates", b"u2"), ("outcomes", b"o2")]
    assert outputs(m, {(0, "eddy.feedback:8"): box}) == []  # another partition's outbox of the same name
