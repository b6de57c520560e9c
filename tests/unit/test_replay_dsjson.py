"""DSJSON export: key order, round trip, and VW (parser and CLI) training on it."""

import json

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from stream.events import Decision, Item
from stream.replay.dsjson import LABEL_KEYS, dsjson_line, from_dsjson, read_dsjson, to_dsjson, write_dsjson
from stream.replay.errors import ReplayError
from stream.replay.rounds import LoggedRound

pytestmark = pytest.mark.unit


def make_round(chosen=2, reward=1.0, n=4, context=None, user="u3", ts=1_700_000_000.25):
    pmf = [0.1] * n
    pmf[chosen] = 1.0 - 0.1 * (n - 1)
    d = Decision("req-1", user, ts, context if context is not None else {"device": "tv", "hour": 3.0},
                 tuple(Item(f"i{k}", {"genre": "drama", "popularity": 0.5 * k}) for k in range(n)),
                 tuple(0.1 * k for k in range(n)), tuple(pmf), chosen, pmf[chosen],
                 "epsilon_greedy", "epsilon_greedy/1?epsilon=0.4", 12345, "v1", 7)
    return LoggedRound(d, reward, ts + 2.0)


def test_label_keys_come_first_and_before_c():
    keys = [k for k, _ in json.loads(dsjson_line(make_round()), object_pairs_hook=lambda pairs: pairs)]
    assert keys[:4] == list(LABEL_KEYS)
    assert all(keys.index(k) < keys.index("c") for k in LABEL_KEYS)
    assert keys.index("a") < keys.index("c") < keys.index("p")


def test_fields_follow_the_decision_service_convention():
    obj = to_dsjson(make_round(chosen=2, reward=1.0))
    assert obj["_label_cost"] == -1.0 and obj["_label_Action"] == 3 and obj["_labelIndex"] == 2
    assert obj["_label_probability"] == pytest.approx(0.7)
    assert obj["a"] == [3, 1, 2, 4]  # chosen first, then the rest in candidate order
    assert obj["p"][0] == obj["_label_probability"] and sum(obj["p"]) == pytest.approx(1.0)
    assert obj["c"]["x"] == {"device": "tv", "hour": 3.0}
    assert obj["c"]["u"] == {"user_id": "u3"}
    assert obj["c"]["_multi"][1] == {"i": {"id": "i1"}, "f": {"genre": "drama", "popularity": 0.5}}
    assert obj["Timestamp"].endswith("Z")
    assert to_dsjson(make_round(reward=0.0))["_label_cost"] == 0.0  # no "-0.0"
    assert "-0.0" not in dsjson_line(make_round(reward=0.0)).split('"_label_probability"')[0]


def test_round_trip_through_a_file(tmp_path):
    rounds = [make_round(chosen=k % 4, reward=float(k % 2)) for k in range(5)]
    path = tmp_path / "out" / "log.dsjson"
    assert write_dsjson(rounds, path) == 5
    back = read_dsjson(path)
    for a, b in zip(rounds, back):
        assert a.decision == b.decision and a.reward == b.reward and a.feedback_ts == b.feedback_ts


def test_foreign_dsjson_without_eddy_block_still_reads():
    obj = to_dsjson(make_round())
    del obj["_eddy"]
    r = from_dsjson(obj)
    assert r.reward == -obj["_label_cost"] and r.decision.chosen_index == 2
    assert r.decision.pmf == pytest.approx((0.1, 0.1, 0.7, 0.1))
    assert all(np.isnan(r.decision.scores))


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.pop("c"), "missing required field `c`"),
    (lambda o: o.__setitem__("a", [1, 1, 2, 3]), "action ids 1..4"),
    (lambda o: o.__setitem__("_labelIndex", 9), "outside the 4 actions"),
    (lambda o: o["c"].__setitem__("_multi", []), r"length >= 1 - at `\$.c._multi`"),
    (lambda o: o.__setitem__("_label_cost", "high"), r"Expected `float`, got `str` - at `\$._label_cost`"),
    (lambda o: o.__setitem__("_label_probability", 0), r"Expected `float` > 0.0 - at `\$._label_probability`"),
    (lambda o: [o.pop("_labelIndex"), o.pop("_label_Action")], "missing key '_labelIndex'"),
])
def test_bad_lines_are_named(tmp_path, mutate, message):
    obj = to_dsjson(make_round())
    mutate(obj)
    path = tmp_path / "bad.dsjson"
    path.write_text(json.dumps(obj) + "\n")
    with pytest.raises(ReplayError, match=message) as info:
        read_dsjson(path)
    assert "bad.dsjson:1" in str(info.value)


def test_missing_file_and_non_json_are_one_line_errors(tmp_path):
    with pytest.raises(ReplayError, match="cannot read"):
        read_dsjson(tmp_path / "nope.dsjson")
    (tmp_path / "x.dsjson").write_text("{not json\n")
    with pytest.raises(ReplayError, match="x.dsjson:1: not JSON"):
        read_dsjson(tmp_path / "x.dsjson")


def synthetic_log(n=1500, seed=0):
    """Uniform logging over 4 items; item 2 is rewarded on tv, item 0 elsewhere."""
    rng = np.random.default_rng(seed)
    rounds = []
    for i in range(n):
        device = "tv" if i % 2 else "mobile"
        chosen = int(rng.integers(4))
        best = 2 if device == "tv" else 0
        d = Decision(f"r{i}", f"u{i % 5}", float(i), {"device": device},
                     tuple(Item(f"i{k}") for k in range(4)), (0.0,) * 4, (0.25,) * 4, chosen, 0.25,
                     "epsilon_greedy", "epsilon_greedy/1?epsilon=1.0", i, "v1", 0)
        rounds.append(LoggedRound(d, 1.0 if chosen == best else 0.0, float(i)))
    return rounds


def test_vw_parser_trains_on_the_export_and_learns_the_rewarded_action():
    rounds = synthetic_log()
    ws = vw.Workspace(["--cb_explore_adf", "--quiet", "--epsilon", "0.1", "--interactions", "xi"])
    parser = vw.DSJsonFormatParser(ws)
    for r in rounds:
        examples = parser.parse_json(dsjson_line(r))
        assert examples[0].get_label().shared and examples[1 + r.decision.chosen_index].get_label().label is not None
        ws.learn_one(examples)
    for r in rounds[-2:]:
        pred = ws.predict_one(parser.parse_json(dsjson_line(r)))
        pmf = np.zeros(len(r.decision.pmf))
        for index, p in pred:
            pmf[index] = p
        assert pmf.shape == np.asarray(r.decision.pmf).shape
        best = 2 if r.decision.context["device"] == "tv" else 0
        assert pmf.argmax() == best and pmf[best] > 0.9


def test_vw_command_line_trains_on_an_exported_file(tmp_path):
    path = tmp_path / "log.dsjson"
    write_dsjson(synthetic_log(600), path)
    model = tmp_path / "m.vw"
    vw.run_cli_driver(["--cb_explore_adf", "--dsjson", "-d", str(path), "-f", str(model), "--quiet",
                       "--interactions", "xi"])
    ws = vw.Workspace(["--quiet"], model_data=model.read_bytes())
    r = synthetic_log(2)[1]  # a tv decision
    pred = dict(ws.predict_one(vw.DSJsonFormatParser(ws).parse_json(dsjson_line(r))))
    assert len(pred) == 4 and max(pred, key=pred.get) == 2


def test_labels_after_c_would_be_dropped_by_vw():
    """Why the key order matters: the same line with labels moved after "c" trains nothing."""
    obj = to_dsjson(make_round())
    labels = {k: obj.pop(k) for k in LABEL_KEYS}
    obj.update(labels)
    ws = vw.Workspace(["--cb_explore_adf", "--quiet"])
    examples = vw.DSJsonFormatParser(ws).parse_json(json.dumps(obj))
    assert all(e.get_label().label is None for e in examples[1:])
