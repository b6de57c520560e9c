"""The join record's decision head: the fields the feedback join reads, decoded without the rest.

:class:`stream.engine.joins.DecisionHead` is a second decoding of the decision's bytes; these tests hold
it to :class:`stream.events.Decision` (same names, same values, same verdicts) for any decision.
"""

from __future__ import annotations

import typing

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import events
from stream.engine.joins import DecisionHead, JoinRecord, Source, classify
from tests.unit.test_events_fuzz import decisions, feedbacks

pytestmark = pytest.mark.unit
SOURCE = Source("t.feedback", 0, 10)
HEAD_FIELDS = [f.name for f in msgspec.structs.fields(DecisionHead)]


def _selected(d: events.Decision, versions: list[str]) -> events.Decision:
    """``d`` as model selection logs it: every served version's scores."""
    return msgspec.structs.replace(d, version_scores={v: d.scores for v in versions}, selector="exp3")


def _bare(t):
    """``t`` without its ``Annotated`` bounds, at every depth: the type the bytes decode to."""
    if typing.get_origin(t) is typing.Annotated:
        return _bare(typing.get_args(t)[0])
    args = typing.get_args(t)
    return typing.get_origin(t)[tuple(_bare(a) for a in args)] if args else t


def test_every_head_field_is_a_decision_field_of_the_same_type_and_default():
    decision = {f.name: f for f in msgspec.structs.fields(events.Decision)}
    for f in msgspec.structs.fields(DecisionHead):
        assert f.name in decision, f.name
        want = decision[f.name]
        if f.name == "candidates":  # the ids only
            assert _bare(want.type) == tuple[events.Item, ...] and f.type.__args__[0].__struct_fields__ == ("id",)
        else:
            assert _bare(want.type) == _bare(f.type), f.name
        assert (f.required, f.default, f.default_factory) == (want.required, want.default, want.default_factory), f.name


@settings(max_examples=200, deadline=None, database=None)
@given(decisions(), st.lists(st.text(min_size=1, max_size=4), max_size=3, unique=True), feedbacks)
def test_the_head_holds_the_decisions_values_and_gives_the_same_verdict(d, versions, fb):
    if versions:
        d = _selected(d, versions)
    record = JoinRecord.unpack(JoinRecord(events.encode(d), b"{}", np.zeros((len(d.candidates), 2), np.float32)).pack())
    head = record.head
    for name in HEAD_FIELDS:
        want, got = getattr(d, name), getattr(head, name)
        if name == "candidates":
            want, got = [c.id for c in want], [c.id for c in got]
        assert got == want, name
    assert record.decision == d
    # a feedback for this decision's user and one of its items, within the window or not
    fb = msgspec.structs.replace(fb, user_id=d.user_id, item_id=d.candidates[-1].id)
    for window in (1e12, 0.0):
        assert classify(fb, SOURCE, head, None, join_window_s=window) == classify(fb, SOURCE, d, None, join_window_s=window)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_a_record_unpacks_from_any_bytes_like_with_its_other_versions(wrap):
    """Redis clients hand back bytes; a view or a buffer must unpack the same (and its slices decode)."""
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    others = {"v2": np.ones((3, 4), np.float32), "v3": np.zeros((3, 1), np.float32)}
    d = events.encode(_selected(msgspec.structs.replace(
        _plain(), candidates=tuple(events.Item(i) for i in "abc")), ["v1", "v2"]))
    record = JoinRecord.unpack(wrap(JoinRecord(d, b'{"p":1}', emb, others).pack()))
    assert record.decision_bytes == d and record.prediction_bytes == b'{"p":1}'
    assert type(record.decision_bytes) is bytes and np.array_equal(record.embeddings, emb)
    assert list(record.others) == ["v2", "v3"] and all(np.array_equal(record.others[v], others[v]) for v in others)
    assert record.head.version_scores == {"v1": (0.1, 0.2), "v2": (0.1, 0.2)}


def _plain() -> events.Decision:
    return events.Decision(request_id="r1", user_id="u1", ts=100.0, context=None, candidates=(events.Item("a"),),
                           scores=(0.1, 0.2), pmf=(0.5, 0.5), chosen_index=1, propensity=0.5, policy="p",
                           policy_version="p/1", seed=7, feature_net_version="v1", user_weights_version=3)


def test_a_record_without_other_versions_has_none():
    record = JoinRecord.unpack(JoinRecord(events.encode(_plain()), b"", np.zeros((1, 2), np.float32)).pack())
    assert record.others == {} and record.prediction_bytes == b"" and record.head.version_scores == {}
