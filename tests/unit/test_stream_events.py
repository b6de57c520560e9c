"""Event contracts and the feedback-join rules (pure; no broker)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream import events
from stream.engine.joins import JoinRecord, Source, classify

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


QUERY = {"schema": b'"eddy.query/1"', "request_id": b'"r"', "user_id": b'"u"', "ts": b"1", "candidates": b'["a","b"]'}
FB = b'{"schema":"eddy.feedback/1","request_id":"r","user_id":"u","item_id":"a","reward":%s,"ts":%s}'
DEEP = b"[" * 5000 + b"]" * 5000
HUGE = b"9" * 5000


def _q(extra: bytes = b"", **fields: bytes | None) -> bytes:
    """A query with fields set to raw JSON values (None drops one) and ``extra`` appended."""
    parts = {**QUERY, **fields}
    return b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in parts.items() if v is not None) + extra + b"}"


@pytest.mark.parametrize("raw, reason", [
    # the document, then its schema, come before its fields
    (None, "empty"),
    (b"", "not_json"),
    (b" " * (events.MAX_EVENT_BYTES + 1), "oversized"),
    (b"[1, 2]", "not_object"),
    (b'{"request_id":"r","user_id":"u","ts":1,"candidates":["a"]}', "wrong_schema"),
    (b'{"request_id":5,"schema":"eddy.feedback/1"}', "wrong_schema"),
    (b'{"schema":7,"request_id":"r"}', "wrong_schema"),
    (_q(ts=b'"x",,'), "not_json"),
    (_q(b',"x":NaN'), "non_finite_number"),
    (_q(ts=b"Infinity"), "non_finite_number"),
    # fields
    (_q(user_id=b"null"), "missing_field"),
    (_q(user_id=None), "missing_field"),
    (_q(request_id=b"5"), "bad_type"),
    (_q(candidates=b"[]"), "bad_type"),
    (_q(candidates=b'[{"id":"a","features":{"x":{"y":1}}}]'), "bad_type"),
    (_q(request_id=b'"' + b"r" * (events.MAX_ID_LENGTH + 1) + b'"'), "bad_value"),
    (_q(candidates=b"[" + b",".join(b'"i%d"' % i for i in range(events.MAX_CANDIDATES + 1)) + b"]"), "bad_value"),
    (_q(k=b"3"), "bad_value"),
    (_q(k=b"0"), "bad_value"),
    (_q(k=b"true"), "bad_value"),
    (_q(k=b'"1"'), "bad_value"),
    # issue 11's poison records: each is one dead letter, never a crash
    (_q(b',"x":' + DEEP), "bad_value"),
    (_q(context=DEEP), "bad_value"),  # too deep, wherever it is
    (_q(request_id=HUGE), "non_finite_number"),  # a literal beyond a double, wherever it is
    (_q(request_id=b"9" * 300), "bad_type"),
    (_q(ts=HUGE), "non_finite_number"),
    (_q(k=HUGE), "bad_value"),
    (_q(context=b'{"price":' + HUGE + b"}"), "non_finite_number"),
    (_q(context=b'{"price":' + b"9" * 30 + b"}"), "bad_value"),
    (_q(context=b'{"price":1e308}'), "bad_value"),
    (_q(candidates=b'[{"id":"a","features":{"price":1000000.001}}]'), "bad_value"),
    (_q(context=b'{"price":-1e400}'), "non_finite_number"),
    (_q(request_id=b'"\\ud800"'), "not_json"),
    (_q(user_id=b'"x\\udc00"'), "not_json"),
    (_q(user_id=b'"\xed\xa0\x80"'), "not_json"),
    (_q(candidates=b'["a\\ud83d"]'), "not_json"),
    (_q(ts=b"-1"), "bad_value"),
    (_q(ts=b"1795459200000"), "bad_value"),  # milliseconds
])
def test_query_bounds_and_poison_records_map_to_reasons(raw, reason):
    with pytest.raises(events.EventError) as err:
        events.decode_query(raw)
    assert err.value.reason == reason, err.value


@pytest.mark.parametrize("reward, ts, reason", [
    (b"1e7", b"1", "bad_value"),
    (HUGE, b"1", "non_finite_number"),
    (b"-" + HUGE, b"1", "non_finite_number"),
    (b"NaN", b"1", "non_finite_number"),
    (b"true", b"1", "bad_type"),
    (b"1", b"1e11", "bad_value"),
])
def test_feedback_bounds(reward, ts, reason):
    with pytest.raises(events.EventError) as err:
        events.decode_feedback(FB % (reward, ts))
    assert err.value.reason == reason


def test_in_range_extremes_and_lenient_forms_decode():
    fb = events.decode_feedback(FB % (b"-1e6", b"1e10"))
    assert (fb.reward, fb.ts) == (-events.MAX_ABS_REWARD, events.MAX_TIMESTAMP_S)
    q = events.decode_query(_q(context=b'{"price":-1e6}',
                               candidates=b'[{"id":"a","features":null},"b",{"id":"\\ud83d\\ude00"}]'))
    assert q.context == {"price": -events.MAX_ABS_FEATURE}
    assert q.candidates == (events.Item("a"), events.Item("b"), events.Item("\U0001F600"))
    assert events.decode_query(_q(context=b"null")).context == {}
    spaced = b'{ "ts": 1, "candidates": ["a"], "user_id": "u", "request_id": "r", "schema": "eddy.query/1", "x": {} }'
    assert events.decode_query(spaced) == events.Query("r", "u", 1.0, {}, (events.Item("a"),))


def _decision_bytes(**changes) -> bytes:
    d = _decision().to_dict()
    d.update(changes)
    return json.dumps(d).encode()


@pytest.mark.parametrize("changes, reason", [
    ({"chosen_index": 2}, "bad_decision"),
    ({"pmf": [1.0]}, "bad_decision"),
    ({"scores": [0.1, 0.2, 0.3]}, "bad_decision"),
    ({"propensity": 1.5}, "bad_decision"),
    ({"seed": 2**63}, "bad_decision"),
    ({"candidates": [{"id": "a"}, {"id": "a"}]}, "bad_decision"),
    ({"ts": "noon"}, "bad_decision"),
    ({"schema": "eddy.decision/9"}, "unknown_schema_version"),
])
def test_malformed_decisions(changes, reason):
    with pytest.raises(events.EventError) as err:
        events.decode_decision(_decision_bytes(**changes))
    assert err.value.reason == reason
    if reason == "bad_decision":
        with pytest.raises(events.EventError):
            events.decision_from_dict(json.loads(_decision_bytes(**changes)))


def test_malformed_outcome_decision_is_bad_outcome():
    o = json.loads(events.encode(events.Outcome(_decision(), "b", 1.0, 3.0)))
    o["decision"]["chosen_index"] = 9
    with pytest.raises(events.EventError) as err:
        events.decode_outcome(json.dumps(o).encode())
    assert err.value.reason == "bad_outcome"


def test_decision_null_context_and_features_read_as_empty():
    d = events.decode_decision(_decision_bytes(context=None, candidates=[{"id": "a", "features": None}, {"id": "b"}]))
    assert d.context == {} and d.candidates == (events.Item("a"), events.Item("b")) and d.chosen_item == "b"


def test_wire_forms_are_the_documented_dicts():
    d = _decision()
    assert d.to_dict() == {
        "schema": "eddy.decision/1", "request_id": "r1", "user_id": "u1", "ts": 100.0,
        "context": {"device": "tv", "hour": 3.0},
        "candidates": [{"id": "a", "features": {"genre": "doc"}}, {"id": "b"}], "scores": [0.1, 0.2],
        "pmf": [0.5, 0.5], "chosen_index": 1, "propensity": 0.5, "policy": "epsilon_greedy",
        "policy_version": "epsilon_greedy/1", "seed": 7, "feature_net_version": "v1", "user_weights_version": 3}
    assert events.decision_from_dict(d.to_dict()) == d
    p = events.Prediction("r1", "u1", (events.RankedItem("b", 0.2, 0.5), events.RankedItem("a", 0.1, 0.5)), ("b",),
                          feature_net_version="v1", user_weights_version=3, policy="eg/1", latency_ms=1.5, ts=5.0)
    assert json.loads(events.encode(p)) == p.to_dict() == {
        "schema": "eddy.prediction/1", "request_id": "r1", "user_id": "u1",
        "ranked": [{"item_id": "b", "score": 0.2, "probability": 0.5}, {"item_id": "a", "score": 0.1, "probability": 0.5}],
        "chosen": ["b"], "versions": {"feature_net": "v1", "user_weights": 3, "policy": "eg/1"},
        "latency_ms": 1.5, "ts": 5.0}
    assert p.versions == events.Versions("v1", 3, "eg/1")
    assert events.decode_prediction(events.encode(p)) == p
    fb = events.Feedback("r1", "u1", "a", 1.0, 2.0)
    assert fb.to_dict() == {"schema": "eddy.feedback/1", "request_id": "r1", "user_id": "u1", "item_id": "a",
                            "reward": 1.0, "ts": 2.0}
    update = events.ModelUpdate("feature_net", "v2", "v2", None, None, {"replaced": 1.0}, 6.0)
    assert json.loads(events.encode(update)) == {"schema": "eddy.model_update/1", "kind": "feature_net",
                                                 "feature_net_version": "v2", "version": "v2", "user_id": None,
                                                 "request_id": None, "summary": {"replaced": 1.0}, "ts": 6.0}
    for cls in (events.Query, events.Feedback, events.Prediction, events.Decision, events.Outcome, events.ModelUpdate):
        assert cls.__struct_config__.tag == cls.SCHEMA


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_encode_refuses_non_finite_numbers(bad):
    with pytest.raises(events.EventError) as err:
        events.encode(_decision(scores=(0.1, bad)))
    assert err.value.reason == "non_finite_number" and "scores[1]" in err.value.detail


def test_encode_refuses_lone_surrogates():
    with pytest.raises(events.EventError) as err:
        events.encode(events.Feedback("r\ud800", "u", "a", 1.0, 2.0))
    assert err.value.reason == "bad_value"


@pytest.mark.parametrize("raw, reason", [
    (None, "empty"), (b"{", "not_json"), (b"[]", "not_object"), (b"{\"a\":" + DEEP + b"}", "bad_value"),
    (b'{"a":' + HUGE + b"}", "bad_value"), (b'{"a":"\\ud800"}', "not_json"),
])
def test_decode_json_errors(raw, reason):
    with pytest.raises(events.EventError) as err:
        events.decode_json(raw)
    assert err.value.reason == reason


def test_join_record_keeps_decision_and_float32_embeddings():
    d = _decision()
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    record = JoinRecord.unpack(JoinRecord(events.encode(d), b'{"p":1}', emb).pack())
    assert record.decision == d and record.prediction_bytes == b'{"p":1}' and np.array_equal(record.embeddings, emb)


SRC = Source("t.feedback", 0, 10)


@pytest.mark.parametrize("fb, decision, marker, expected", [
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), None, ("apply", "")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), {"source": ["t.feedback", 0, 10]}, ("redelivered", "")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), {"source": ["t.feedback", 0, 9]}, ("dead_letter", "duplicate_feedback")),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), None, None, ("dead_letter", "unknown_request")),
    # the decision expired (twice the join window) but the marker lives for days: still redelivered
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), None, {"source": ["t.feedback", 0, 10]}, ("redelivered", "")),
    (events.Feedback("r1", "u2", "b", 1.0, 110.0), _decision(), None, ("dead_letter", "user_mismatch")),
    (events.Feedback("r1", "u1", "zz", 1.0, 110.0), _decision(), None, ("dead_letter", "unknown_item")),
    (events.Feedback("r1", "u1", "b", 1.0, 100.0 + 61), _decision(), None, ("dead_letter", "late_feedback")),
])
def test_feedback_join_rules(fb, decision, marker, expected):
    v = classify(fb, SRC, decision, marker, join_window_s=60)
    assert (v.action, v.reason) == expected
    if v.action == "apply":
        assert v.item_index == 1


@pytest.mark.parametrize("fb, decision, marker, detail", [
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), _decision(), {"source": ["t.feedback", 0, 9]},
     "request 'r1' already applied from ['t.feedback', 0, 9]"),
    (events.Feedback("r1", "u1", "b", 1.0, 110.0), None, None,
     "no decision for request 'r1' (never made, or expired)"),
    (events.Feedback("r1", "u2", "b", 1.0, 110.0), _decision(), None, "request 'r1' was for user 'u1', not 'u2'"),
    (events.Feedback("r1", "u1", "zz", 1.0, 110.0), _decision(), None, "item 'zz' was not a candidate of request 'r1'"),
    (events.Feedback("r1", "u1", "b", 1.0, 161.25), _decision(), None,
     "feedback came 61.2s after its decision; join window is 60s"),
])
def test_a_dead_letter_says_why_with_the_ids_an_operator_needs(fb, decision, marker, detail):
    """The detail is what an operator reads in the dead-letter topic: it names the request
    and, for a duplicate, the record that was applied first."""
    assert classify(fb, SRC, decision, marker, join_window_s=60).detail == detail


def test_a_join_record_of_another_format_is_refused_by_name():
    """A worker must not read a join record laid out by another version as if it were its own."""
    packed = bytearray(JoinRecord(events.encode(_decision()), b"{}", np.zeros((1, 2), np.float32)).pack())
    packed[0] = 1
    with pytest.raises(ValueError, match=r"^join record format 1; this worker reads 2$"):
        JoinRecord.unpack(bytes(packed))
