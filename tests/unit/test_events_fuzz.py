"""Fuzzing the decoders: every input is a valid event or an EventError, nothing else.

Short by default (CI); ``EDDY_FUZZ_EXAMPLES=200000`` runs the long form
(docs/fuzzing.md). Inputs are arbitrary bytes, and documents built around valid
events with one part swapped for something hostile: deep nesting, integers of
thousands of digits, lone surrogates (escaped, and as raw UTF-8 bytes), 1e308,
1e400, NaN and Infinity literals, wrong types, missing and unknown fields.
An accepted input must also satisfy the contract's bounds when checked by hand
here (not by msgspec), and survive a round trip.
"""

from __future__ import annotations

import json
import math
import os

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import events

LONG = "EDDY_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("EDDY_FUZZ_EXAMPLES", "200"))
pytestmark = [pytest.mark.unit, *([pytest.mark.timeout(0)] if LONG else [])]  # the long form runs for minutes
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])

DECODERS = {
    "query": (events.decode_query, events.Query),
    "feedback": (events.decode_feedback, events.Feedback),
    "decision": (events.decode_decision, events.Decision),
    "outcome": (events.decode_outcome, events.Outcome),
}
REASONS = {"empty", "oversized", "not_json", "not_object", "wrong_schema", "unknown_schema_version", "missing_field",
           "bad_type", "bad_value", "non_finite_number", "bad_decision", "bad_outcome"}

# --------------------------------------------------------------- valid events

ids = st.text(min_size=1, max_size=12)
request_ids = st.text(st.characters(min_codepoint=0x20, codec="utf-8"), min_size=1, max_size=12)  # no control characters, no lone surrogates
timestamps = st.floats(0, events.MAX_TIMESTAMP_S)
numbers = st.floats(-events.MAX_ABS_FEATURE, events.MAX_ABS_FEATURE)
features = st.dictionaries(st.text(max_size=8), numbers | st.text(max_size=8), max_size=4)
probabilities = st.floats(0, 1)


@st.composite
def items(draw, min_size=1, max_size=6) -> tuple[events.Item, ...]:
    names = draw(st.lists(ids, min_size=min_size, max_size=max_size, unique=True))
    return tuple(events.Item(n, draw(features)) for n in names)


@st.composite
def queries(draw) -> events.Query:
    cands = draw(items())
    return events.Query(draw(request_ids), draw(ids), draw(timestamps), draw(features), cands,
                        draw(st.integers(1, len(cands))))


feedbacks = st.builds(events.Feedback, request_ids, ids, ids, st.floats(-events.MAX_ABS_REWARD, events.MAX_ABS_REWARD),
                      timestamps)


@st.composite
def decisions(draw) -> events.Decision:
    cands = draw(items())
    n = len(cands)
    pmf = tuple(draw(st.lists(probabilities, min_size=n, max_size=n)))
    chosen = draw(st.integers(0, n - 1))
    return events.Decision(
        draw(request_ids), draw(ids), draw(timestamps), draw(features), cands,
        tuple(draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n))),
        pmf, chosen, pmf[chosen], draw(st.text(max_size=10)), draw(st.text(max_size=10)),
        draw(st.integers(0, events.MAX_SEED)), draw(st.text(max_size=5)), draw(st.integers(0, events.MAX_COUNT)))


outcomes = st.builds(events.Outcome, decisions(), ids, st.floats(-events.MAX_ABS_REWARD, events.MAX_ABS_REWARD),
                     timestamps)
any_event = st.one_of(queries(), feedbacks, decisions(), outcomes)

# ------------------------------------------------- hostile parts, as raw JSON


def _nested(depth: int, kind: str) -> bytes:
    return b"[" * depth + b"]" * depth if kind == "list" else b'{"a":' * depth + b"1" + b"}" * depth


digits = st.integers(1, 5000).map(lambda n: b"9" * n)
hostile = st.one_of(
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e308", b"-1e308", b"1e400", b"-1e400", b"1e-400",
                     b"1000000000.0000002", b"-0.0", b"0", b"-1", b"true", b"false", b"null", b"{}", b"[]", b'""',
                     b'"\\ud800"', b'"\\udfff"', b'"a\\ud83d"', b'"\\ud83d\\ude00"', b'"\xed\xa0\x80"', b'"\xff"',
                     b'"' + b"x" * (events.MAX_ID_LENGTH + 1) + b'"', b'"eddy.query/1"', b'"eddy.query/2"']),
    st.builds(lambda sign, d, tail: sign + d + tail, st.sampled_from([b"", b"-"]), digits,
              st.sampled_from([b"", b".5", b"e5", b"e400", b"e-400"])),
    st.builds(_nested, st.integers(1, 3000), st.sampled_from(["list", "dict"])),
    st.floats().map(lambda f: json.dumps(f).encode()),
    st.integers().map(lambda i: str(i).encode()),
    st.text(max_size=20, alphabet=st.characters(codec=None)).map(lambda s: json.dumps(s).encode()),
    st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                 lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
)
SENTINEL = "\x00hostile\x00"


def _paths(doc, prefix=()):
    """Every (container, key) in a JSON document, to pick one to damage."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


@st.composite
def damaged(draw) -> bytes:
    """A valid event's wire JSON with one part replaced, removed or added."""
    doc = json.loads(events.encode(draw(any_event)))
    paths = list(_paths(doc))
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap"]))
    path = draw(st.sampled_from(paths)) if paths else ()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "replace" and path:
        parent[path[-1]] = SENTINEL
    elif action == "delete" and path:
        del parent[path[-1]]
    elif action == "add" or not path:
        target = parent[path[-1]] if path and isinstance(parent[path[-1]], dict) else doc
        target[draw(st.sampled_from(["x", "schema", "ts", "k", "features", "id", "decision"]))] = SENTINEL
    else:
        parent[path[-1]] = [parent[path[-1]]]
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    return raw.replace(json.dumps(SENTINEL).encode(), draw(hostile))


# ------------------------------------------------------------------- oracles


def _finite_in(x: float, bound: float) -> bool:
    return isinstance(x, float) and math.isfinite(x) and -bound <= x <= bound


def _valid_id(s) -> bool:
    return isinstance(s, str) and 1 <= len(s) <= events.MAX_ID_LENGTH and _valid_unicode(s)


def _valid_unicode(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_features(f) -> bool:
    return isinstance(f, dict) and all(
        _valid_unicode(k) and (_finite_in(v, events.MAX_ABS_FEATURE) if isinstance(v, float)
                               else isinstance(v, str) and _valid_unicode(v)) for k, v in f.items())


def _valid_ts(t) -> bool:
    return _finite_in(t, events.MAX_TIMESTAMP_S) and t >= 0


def _valid_items(cands) -> bool:
    return (isinstance(cands, tuple) and 1 <= len(cands) <= events.MAX_CANDIDATES
            and all(isinstance(c, events.Item) and _valid_id(c.id) and _valid_features(c.features) for c in cands)
            and len({c.id for c in cands}) == len(cands))


def _valid_decision(d) -> bool:
    n = len(d.candidates)
    return (_valid_id(d.request_id) and _valid_id(d.user_id) and _valid_ts(d.ts) and _valid_features(d.context)
            and _valid_items(d.candidates) and len(d.scores) == len(d.pmf) == n and 0 <= d.chosen_index < n
            and all(math.isfinite(s) for s in d.scores) and all(0 <= p <= 1 + 1e-9 for p in d.pmf)
            and 0 <= d.propensity <= 1 + 1e-9 and 0 <= d.seed <= events.MAX_SEED
            and 0 <= d.user_weights_version <= events.MAX_COUNT and isinstance(d.chosen_item, str))


def _valid(event) -> bool:
    if isinstance(event, events.Query):
        return (_valid_id(event.request_id) and _valid_id(event.user_id) and _valid_ts(event.ts)
                and _valid_features(event.context) and _valid_items(event.candidates)
                and isinstance(event.k, int) and 1 <= event.k <= len(event.candidates))
    if isinstance(event, events.Feedback):
        return (_valid_id(event.request_id) and _valid_id(event.user_id) and _valid_id(event.item_id)
                and _finite_in(event.reward, events.MAX_ABS_REWARD) and _valid_ts(event.ts))
    if isinstance(event, events.Decision):
        return _valid_decision(event)
    if isinstance(event, events.Outcome):
        return (_valid_decision(event.decision) and _valid_id(event.item_id)
                and _finite_in(event.reward, events.MAX_ABS_REWARD) and _valid_ts(event.feedback_ts))
    return False


def _decode_or_event_error(name: str, raw: bytes) -> None:
    if name == "json":  # eddy tail's reader: any object, nothing else
        try:
            assert type(events.decode_json(raw)) is dict
        except events.EventError as exc:
            assert exc.reason in REASONS, exc
        return
    decode, cls = DECODERS[name]
    try:
        event = decode(raw)
    except events.EventError as exc:
        assert exc.reason in REASONS, exc
        hypothesis.event(f"{name}: {exc.reason}")  # --hypothesis-show-statistics tallies them
        return
    hypothesis.event(f"{name}: decoded")
    assert type(event) is cls
    assert _valid(event), event
    assert decode(events.encode(event)) == event


# --------------------------------------------------------------------- tests


@FUZZ
@given(any_event)
def test_valid_events_round_trip(event):
    name = {events.Query: "query", events.Feedback: "feedback", events.Decision: "decision",
            events.Outcome: "outcome"}[type(event)]
    decode, _ = DECODERS[name]
    assert _valid(event)
    wire = events.encode(event)
    assert decode(wire) == event
    assert event.to_dict() == json.loads(wire)  # the hand-written to_dicts say what the encoder says


@FUZZ
@given(outcomes, st.booleans())
def test_an_outcome_spliced_from_its_decisions_bytes_is_byte_for_byte_the_outcome_encoded(outcome, default):
    # The worker writes outcomes with encode_outcome, from the decision bytes its join record kept.
    outcome = events.Outcome(outcome.decision, outcome.item_id, outcome.reward, outcome.feedback_ts, default)
    spliced = events.encode_outcome(events.encode(outcome.decision), outcome.item_id, outcome.reward,
                                    outcome.feedback_ts, default=default)
    assert spliced == events.encode(outcome)
    assert DECODERS["outcome"][0](spliced) == outcome


@pytest.mark.parametrize("reward, ts", [(math.nan, 1.0), (1.0, math.inf)])
def test_a_spliced_outcome_with_a_non_finite_number_is_an_event_error(reward, ts):
    with pytest.raises(events.EventError) as err:
        events.encode_outcome(b"{}", "a", reward, ts)
    assert err.value.reason == "non_finite_number"


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_an_event_or_an_event_error(raw):
    for name in (*DECODERS, "json"):
        _decode_or_event_error(name, raw)


@FUZZ
@given(damaged())
def test_damaged_events_are_an_event_or_an_event_error(raw):
    """Each document goes to every decoder: a damaged query is also a feedback with the wrong schema."""
    for name in (*DECODERS, "json"):
        _decode_or_event_error(name, raw)


def test_a_request_id_with_a_control_character_is_refused_by_name():
    """The unit separator keys a slate's later positions: an application's id may never hold one."""
    with pytest.raises(events.EventError, match="request_id"):
        events.decode_feedback(b'{"schema":"eddy.feedback/1","request_id":"r1\\u001f2","user_id":"u",'
                               b'"item_id":"a","reward":1,"ts":1}')
