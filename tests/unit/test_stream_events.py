"""Event contracts and the feedback-join rules (pure; no broker)."""

from __future__ import annotations

import numpy as np
import pytest

from stream import events
from stream.joins import Source, classify, pack_decision, unpack_decision

pytestmark = pytest.mark.unit


def _decision(**kw) -> events.Decision:
    base = dict(request_id="r1", user_id="u1", ts=100.0, context={"device": "tv", "hour": 3.0},
                candidates=(events.Item("a", {"genre": "doc"}), events.Item("b")), scores=(0.1, 0.2),
                pmf=(0.5, 0.5), chosen_index=1, propensity=0.5, policy="epsilon_greedy",
                policy_version="epsilon_greedy/1", seed=7, feature_net_version="v1", user_weights_version=3)
    base.update(kw)
    return events.Decision(**base)


def test_every_event_round_trips_through_its_wire_format():
    q = events.Query("r1", "u1", 1.5, {"device": "tv", "hour": 3}, (events.Item("a", {"g": "x"}), events.Item("b")), 2)
    assert events.decode_query(events.encode(q)) == q
    fb = events.Feedback("r1", "u1", "a", 1.0, 2.0)
    assert events.decode_feedback(events.encode(fb)) == fb
    d = _decision()
    assert events.decode_decision(events.encode(d)) == d
    o = events.Outcome(d, "b", 1.0, 3.0)
    assert events.decode_outcome(events.encode(o)) == o


def test_candidates_may_be_plain_ids():
    q = events.decode_query(b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":1,"candidates":["a","b"]}')
    assert [c.id for c in q.candidates] == ["a", "b"] and q.k == 1


@pytest.mark.parametrize("raw, reason", [
    (b"{", "not_json"),
    (b'"x"', "not_object"),
    (b'{"schema":"eddy.query/2","request_id":"r","user_id":"u","ts":1,"candidates":["a"]}', "unknown_schema_version"),
    (b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":true,"candidates":["a"]}', "bad_type"),
    (b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":1,"candidates":["a","a"]}', "bad_value"),
    (b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":1,"context":{"x":[1]},"candidates":["a"]}', "bad_type"),
    (b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":-Infinity,"candidates":["a"]}', "non_finite_number"),
    (b'{"schema":"eddy.query/1","request_id":"","user_id":"u","ts":1,"candidates":["a"]}', "bad_type"),
])
def test_malformed_queries_name_the_problem(raw, reason):
    with pytest.raises(events.EventError) as err:
        events.decode_query(raw)
    assert err.value.reason == reason


def test_join_record_keeps_decision_and_float32_embeddings():
    d = _decision()
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    d2, emb2 = unpack_decision(pack_decision(d, emb))
    assert d2 == d and np.array_equal(emb2, emb)


SRC = Source("t.feedback", 0, 10)


@pytest.mark.parametrize("fb, decision, marker, expected", [
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), None, ("apply", "")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), {"source": ["t.feedback", 0, 10]}, ("redelivered", "")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), {"source": ["t.feedback", 0, 9]}, ("dead_letter", "duplicate_feedback")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), None, None, ("dead_letter", "unknown_request")),
    (events.Feedback("r1", "u2", "b", 1.0, 110.0), _decision(), None, ("dead_letter", "user_mismatch")),
    (events.Feedback("r1", "u1", "zz", 1.0, 110.0), _decision(), None, ("dead_letter", "unknown_item")),
    (events.Feedback("r1", "u1", "b", 1.0, 100.0 + 61), _decision(), None, ("dead_letter", "late_feedback")),
])
def test_feedback_join_rules(fb, decision, marker, expected):
    v = classify(fb, SRC, decision, marker, join_window_s=60)
    assert (v.action, v.reason) == expected
    if v.action == "apply":
        assert v.item_index == 1
