"""Replay's bulk readers: the columns of a DSJSON file or of Kafka records equal what the per-record decoders give."""

import json
import typing
from collections import Counter

import msgspec
import numpy as np
import pytest

from stream.events import Decision, Outcome, decode_decision, encode
from stream.replay.columns import DecisionColumns
from stream.replay.dataset import BanditLog
from stream.replay.dsjson import read_dsjson, read_dsjson_columns, to_dsjson, write_dsjson
from stream.replay.dsjson_schema import DSJsonLine, DSJsonRead, EddyBlock, EddyRead, SharedContext, SharedContextRead
from stream.replay.errors import ReplayError
from stream.replay.records import DecisionRead, OutcomeColumns, OutcomeRead, decision_columns, outcome_columns
from stream.replay.rounds import join_outcome_columns, join_outcomes
from stream.replay.synthetic import synthetic_rounds

pytestmark = pytest.mark.unit

ARRAYS = ("reward", "action", "pscore", "pmf", "scores", "mask", "item_ids", "ts", "seed", "imputed", "feedback_ts")


def same_log(a: BanditLog, b: BanditLog) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.request_ids.tolist() == b.request_ids.tolist() and a.users.tolist() == b.users.tolist()
    assert a.contexts.tolist() == b.contexts.tolist()
    assert [v.tolist() for v in a.item_index] == [v.tolist() for v in b.item_index]


@pytest.fixture(scope="module")
def rounds():
    return synthetic_rounds(120, seed=3)[0]


def _hints(cls):
    return typing.get_type_hints(cls, include_extras=True)


def _element(t):
    """A sequence type's element type with its bounds (list[X] and tuple[X, ...] read alike)."""
    meta = ()
    args = typing.get_args(t)
    if type(None) in args and len(args) == 2:  # X | None reads as X, optional
        return ("optional",) + _element(next(a for a in args if a is not type(None)))
    if typing.get_origin(t) is typing.Annotated:
        t, *meta = typing.get_args(t)
    if typing.get_origin(t) in (list, tuple):
        t = typing.get_args(t)[0]
    return t, tuple(meta)


@pytest.mark.parametrize("lean, full", [(DecisionRead, Decision), (OutcomeRead, Outcome), (DSJsonRead, DSJsonLine),
                                        (SharedContextRead, SharedContext), (EddyRead, EddyBlock)])
def test_the_lean_views_read_their_fields_with_the_full_types(lean, full):
    lean_hints, full_hints = _hints(lean), _hints(full)
    lean_names = {f.name: f.encode_name for f in msgspec.structs.fields(lean)}
    full_names = {f.name: f.encode_name for f in msgspec.structs.fields(full)}
    for name, hint in lean_hints.items():
        assert lean_names[name] == full_names[name], name
        if name in ("candidates", "multi", "decision", "c", "eddy"):
            continue  # the same JSON, read for fewer of its keys (the nested views are compared on their own)
        assert _element(hint) == _element(full_hints[name]) or hint == full_hints[name], name


def test_dsjson_columns_equal_the_line_by_line_reader(rounds, tmp_path):
    path = tmp_path / "log.dsjson"
    write_dsjson(rounds, path)
    with open(path, "a") as fh:  # a blank line in the middle and a foreign line without _eddy
        obj = to_dsjson(rounds[0])
        del obj["_eddy"]
        obj["EventId"] = "foreign"
        fh.write("\n" + json.dumps(obj) + "\n")
    file = read_dsjson_columns(path)
    slow = read_dsjson(path)
    fast = BanditLog.from_columns(file.decisions, np.arange(file.decisions.n), reward=file.reward,
                                  feedback_ts=file.feedback_ts, imputed=file.imputed)
    same_log(fast, BanditLog.from_rounds(slow))
    assert fast.rounds[5].decision == slow[5].decision  # rebuilt from its line on demand
    assert fast.rounds.where(len(slow) - 1).endswith(f"log.dsjson:{len(slow) + 1}")  # blank lines counted


@pytest.mark.parametrize("line, message", [
    ('{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":5,"a":[1,2],"p":[0.5,0.5],'
     '"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}', "outside the 2 actions"),
    ('{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":0,"a":[1,1],"p":[0.5,0.5],'
     '"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}', "action ids 1..2"),
    ('{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":0,"a":[1,2],"p":[0.5],'
     '"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}', "one 'p' per id"),
    ('{"_label_cost":"x"}', r"Expected `float`, got `str` - at `\$._label_cost`"),
    ("{not json", "not JSON"),
    # A request id the decision log would refuse (stream.events.RequestId): a control character (escaped in
    # the JSON, so the line itself is one line), or longer than an id may be.
    ('{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":0,"EventId":"r1\\nforged","a":[1,2],'
     '"p":[0.5,0.5],"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}', r"at `\$.EventId`"),
    ('{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":0,"EventId":"' + "r" * 257 + '","a":[1,2],'
     '"p":[0.5,0.5],"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}', r"length <= 256 - at `\$.EventId`"),
])
def test_a_bad_line_is_named_by_its_line_number(rounds, tmp_path, line, message):
    path = tmp_path / "bad.dsjson"
    write_dsjson(rounds[:3], path)
    with open(path, "a") as fh:
        fh.write("\n" + line + "\n")
    with pytest.raises(ReplayError, match=message) as info:
        read_dsjson_columns(path)
    assert "bad.dsjson:5" in str(info.value)
    with pytest.raises(ReplayError, match=message) as info:  # the line-by-line reader says the same
        read_dsjson(path)
    assert "bad.dsjson:5" in str(info.value)


def test_kafka_decisions_decode_in_bulk_as_one_by_one(rounds):
    values = [encode(r.decision) for r in rounds]
    bad = {
        3: None,
        7: b"not json",
        11: values[11].replace(b'"propensity":', b'"propensity":-'),
        13: encode(rounds[13].decision).replace(b'"chosen_index":', b'"chosen_index":1', 1),
        17: b'{"schema":"eddy.query/1"}',
    }
    # a repeated candidate id and a missing score: rules across fields, which msgspec's types cannot state
    d = rounds[19].decision
    bad[19] = encode(msgspec.structs.replace(d, candidates=(d.candidates[0],) * len(d.candidates)))
    bad[23] = encode(msgspec.structs.replace(rounds[23].decision, scores=rounds[23].decision.scores[1:]))
    for j, v in bad.items():
        values[j] = v
    expected = Counter()
    kept = []
    for v in values:
        try:
            kept.append(decode_decision(v))
        except Exception as exc:  # noqa: BLE001 - the per-record decoder is the reference
            expected[f"decisions.{exc.reason}"] += 1
    cols, undecodable = decision_columns(values)
    assert undecodable == expected and sum(expected.values()) == len(bad)
    assert cols.request_id.tolist() == [d.request_id for d in kept]
    assert cols.record(4) == kept[4]
    np.testing.assert_array_equal(cols.pmf[:, :10], np.array([d.pmf for d in kept]))
    # reordered keys (another producer's encoder): decoded one by one, kept, in read order
    reordered = json.dumps(dict(reversed(list(json.loads(values[0]).items())))).encode()
    cols2, _ = decision_columns([values[1], reordered, values[2]])
    assert cols2.request_id.tolist() == [rounds[1].decision.request_id, rounds[0].decision.request_id,
                                         rounds[2].decision.request_id]


def test_the_outcome_join_on_columns_matches_the_join_on_objects(rounds):
    decisions = [r.decision for r in rounds] + [rounds[0].decision]  # a re-logged decision
    outcomes = [Outcome(r.decision, r.decision.chosen_item, r.reward, r.feedback_ts) for r in rounds[:100]]
    outcomes.append(outcomes[0])  # a duplicate outcome
    other = rounds[100].decision
    outcomes.append(Outcome(other, next(c.id for c in other.candidates if c.id != other.chosen_item), 1.0, 1.0))
    cols, _ = decision_columns([encode(d) for d in decisions])
    out, undecodable = outcome_columns([encode(o) for o in outcomes])
    assert not undecodable and out.n == len(outcomes)
    joined, stats = join_outcome_columns(cols, out, missing_reward=0.0)
    rounds_obj, stats_obj = join_outcomes(decisions, outcomes, missing_reward=0.0)
    assert stats.to_dict() == stats_obj.to_dict()
    assert (stats.duplicate_decisions, stats.duplicate_outcomes, stats.other_item, stats.imputed) == (1, 1, 1, 20)
    assert cols.request_id[joined.rows].tolist() == [r.decision.request_id for r in rounds_obj]
    assert joined.reward.tolist() == [r.reward for r in rounds_obj]
    assert joined.imputed.tolist() == [r.imputed for r in rounds_obj]
    assert OutcomeColumns.of(outcomes).request_id.tolist() == out.request_id.tolist()


def test_foreign_lines_with_numeric_or_missing_ids_read_as_the_line_reader_reads_them(tmp_path):
    path = tmp_path / "foreign.dsjson"
    lines = ['{"_label_cost":-1,"_label_probability":0.5,"_label_Action":2,"a":[2,1],"p":[0.5,0.5],'
             '"c":{"_multi":[{"i":{"id":5}},{"f":{"x":1}}]}}',
             '{"_label_cost":0,"_label_probability":0.5,"_labelIndex":0,"a":[1,2],"p":[0.5,0.5],'
             '"c":{"u":{"user_id":"u9"},"x":{"hour":3},"_multi":[{"i":{"id":"5"}},{"i":{"id":"b"}}]}}']
    path.write_text("\n".join(lines) + "\n")
    file = read_dsjson_columns(path)
    fast = BanditLog.from_columns(file.decisions, np.arange(2), reward=file.reward, feedback_ts=file.feedback_ts,
                                  imputed=file.imputed)
    same_log(fast, BanditLog.from_rounds(read_dsjson(path)))
    assert fast.item_ids.tolist() == [["5", "action2"], ["5", "b"]]
    assert fast.request_ids.tolist() == ["foreign.dsjson:1", "foreign.dsjson:2"]
    assert fast.users.tolist() == ["unknown", "u9"] and not fast.has_scores


def same_columns(fast, plain) -> None:
    """Every column of two DecisionColumns equal (a column added later is compared too)."""
    import dataclasses

    for f in dataclasses.fields(fast):
        if f.name in ("record", "origin"):
            continue
        a, b = getattr(fast, f.name), getattr(plain, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype, f.name
            if a.dtype == object:
                assert a.tolist() == b.tolist(), f.name
            else:
                np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def _every_optional_field(rounds):
    """Decisions that set every optional field of eddy.decision/1, and some that leave them out."""
    out = []
    for k, r in enumerate(rounds[:12]):
        d = r.decision
        if k % 2:
            d = msgspec.structs.replace(
                d, approximated=(0, len(d.candidates) - 1), escalated=True, selector="exp3?gamma=0.1",
                version_probability=0.5, version_weights={"v1": 0.5, "v2": 0.5},
                version_scores={"v1": d.scores, "v2": d.scores}, policy_snapshot=k,
                context=None if k % 3 == 0 else d.context,
                candidates=tuple(msgspec.structs.replace(c, features=None) for c in d.candidates))
        if k % 4 == 3:  # a slate's third position: the two candidates the first two took, not the chosen one
            d = msgspec.structs.replace(d, position=2,
                                        taken=tuple(i for i in range(len(d.candidates)) if i != d.chosen_index)[:2])
        out.append(d)
    return out


def test_kafka_fast_columns_equal_the_per_record_decoder_on_every_optional_field(rounds):
    decisions = _every_optional_field(rounds)
    values = [encode(d) for d in decisions]
    fast, undecodable = decision_columns(values)
    assert not undecodable
    same_columns(fast, DecisionColumns.from_decisions([decode_decision(v) for v in values]))
    assert fast.record(1) == decode_decision(values[1])


def test_dsjson_fast_columns_equal_the_line_reader_on_every_optional_key(rounds, tmp_path):
    """Eddy's lines with every optional field, and foreign lines with each optional key there or not."""
    from stream.replay.rounds import LoggedRound

    lines = [to_dsjson(LoggedRound(d, 1.0 if k % 2 else 0.0, None if k % 4 == 1 else 5.0 + k, imputed=k % 4 == 1))
             for k, d in enumerate(_every_optional_field(rounds))]
    foreign = []
    for k, obj in enumerate(lines[:8]):
        obj = dict(obj)
        eddy = obj.pop("_eddy")
        if k % 2:  # only the 1-based label; a user from c.u; the time from Timestamp
            del obj["_labelIndex"]
        if k % 3 == 0:
            del obj["EventId"]
        if k % 4 == 0:
            obj["c"] = {"_multi": obj["c"]["_multi"]}  # no user, no context
        if k == 5:  # part of _eddy: scores of the wrong length are no scores; the reward from it, not the cost
            obj["_eddy"] = {"scores": eddy["scores"][:1], "reward": 0.25, "seed": 9}
        foreign.append(obj)
    path = tmp_path / "every.dsjson"
    path.write_text("\n".join(json.dumps(o) for o in lines + foreign) + "\n")
    file = read_dsjson_columns(path)
    slow = read_dsjson(path)
    same_columns(file.decisions, DecisionColumns.from_decisions([r.decision for r in slow]))
    np.testing.assert_array_equal(file.reward, [r.reward for r in slow])
    np.testing.assert_array_equal(file.feedback_ts, [np.nan if r.feedback_ts is None else r.feedback_ts
                                                     for r in slow])
    np.testing.assert_array_equal(file.imputed, [r.imputed for r in slow])
    assert file.imputed.any() and np.isnan(file.decisions.scores).any() and np.isnan(file.feedback_ts).any()
