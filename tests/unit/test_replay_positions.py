"""Slate logs in replay: outcomes join their (request, position), positions survive DSJSON and the OBP export,
``--len-list`` keeps the first positions, and targets choose only among what earlier positions left."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import make_policy
from bandits.base import Candidates
from stream.engine.slates import fill, slate_records
from stream.events import Decision, Item, Outcome, Prediction, RankedItem
from stream.replay.dataset import BanditLog
from stream.replay.dsjson import iter_dsjson, read_dsjson_columns, write_dsjson
from stream.replay.errors import ReplayError
from stream.replay.evaluate import evaluate, resolve_target
from stream.replay.obp import bandit_feedback
from stream.replay.positions import keep_positions, position_summary, restrict_to_free, slate_estimates
from stream.replay.rounds import join_outcomes
from stream.replay.targets import parse_target

pytestmark = pytest.mark.unit

ITEMS = ("a", "b", "c", "d", "e")
SCORES = np.array([0.9, 0.5, 0.3, 0.2, 0.1])
CLICK = np.array([0.5, 0.4, 0.3, 0.2, 0.1])  # an item's click probability at position 0
BIAS = np.array([1.0, 0.6, 0.3])  # position bias


def slate_log(n: int = 300, k: int = 3, seed: int = 0, temperature: float = 0.5):
    """n slates of k positions decided as the engine decides them (softmax, then slates.fill), every position
    with an outcome (a click drawn from CLICK[item] * BIAS[position])."""
    rng = np.random.default_rng(seed)
    policy = make_policy(f"softmax:temperature={temperature}")
    decisions, outcomes = [], []
    for i in range(n):
        cands = Candidates(scores=SCORES, embeddings=np.zeros((5, 1)), action_ids=ITEMS)
        d = policy.decide(cands, np.random.default_rng(i))
        first = Decision(f"r{i}", f"u{i % 7}", 1000.0 + i, {"hour": float(i % 24)}, tuple(Item(x) for x in ITEMS),
                         tuple(SCORES.tolist()), tuple(d.pmf.tolist()), d.chosen, d.propensity, d.policy,
                         d.policy_version, i, "v1", 0)
        ranked = tuple(RankedItem(c.id, s, p) for c, s, p in zip(first.candidates, first.scores, first.pmf))
        prediction = Prediction(f"r{i}", first.user_id, ranked, (), "v1", 0, d.policy_version, 1.0, first.ts)
        slate, _ = slate_records(first, prediction, fill(d, SCORES, k, seed=i))
        for x in slate:
            decisions.append(x)
            click = float(rng.random() < CLICK[x.chosen_index] * BIAS[x.position])
            outcomes.append(Outcome(x, x.chosen_item, click, x.ts + 1))
    return decisions, outcomes


def test_outcomes_join_the_decision_of_their_position():
    decisions, outcomes = slate_log(n=20)
    rounds, stats = join_outcomes(decisions, outcomes[::-1], missing_reward=None)
    assert stats.joined == 60 and stats.other_item == 0 and stats.duplicate_decisions == 0
    by_key = {(o.decision.request_id, o.decision.position): o.reward for o in outcomes}
    assert all(r.reward == by_key[(r.decision.request_id, r.decision.position)] for r in rounds)
    log = BanditLog.from_rounds(rounds)
    assert sorted(log.positions.tolist()) == [0] * 20 + [1] * 20 + [2] * 20
    for j, r in enumerate(rounds):  # taken: exactly the earlier positions' choices
        assert np.flatnonzero(log.taken[j]).tolist() == sorted(r.decision.taken)


def test_feedback_on_one_position_only_leaves_the_others_without_outcome():
    decisions, outcomes = slate_log(n=10)
    only_second = [o for o in outcomes if o.decision.position == 1]
    rounds, stats = join_outcomes(decisions, only_second, missing_reward=None)
    assert stats.joined == 10 and stats.dropped == 20 and {r.decision.position for r in rounds} == {1}


def test_positions_survive_a_dsjson_round_trip(tmp_path):
    decisions, outcomes = slate_log(n=30)
    rounds, _ = join_outcomes(decisions, outcomes, missing_reward=None)
    path = tmp_path / "slates.dsjson"
    write_dsjson(rounds, path)
    back = list(iter_dsjson(path))
    assert [r.decision for r in back] == [r.decision for r in rounds]
    cols = read_dsjson_columns(path)
    assert cols.decisions.position.tolist() == [r.decision.position for r in rounds]
    assert [tuple(t) for t in cols.decisions.taken.tolist()] == [r.decision.taken for r in rounds]
    log = BanditLog.from_columns(cols.decisions, np.arange(cols.decisions.n), reward=cols.reward,
                                 feedback_ts=cols.feedback_ts, imputed=cols.imputed)
    assert np.array_equal(log.taken, BanditLog.from_rounds(rounds).taken)


def test_a_dsjson_line_with_an_impossible_slate_names_its_line(tmp_path):
    decisions, outcomes = slate_log(n=2)
    rounds, _ = join_outcomes(decisions, outcomes, missing_reward=None)
    path = tmp_path / "bad.dsjson"
    write_dsjson(rounds, path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"taken":[', '"taken":[0,')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReplayError, match=r"bad\.dsjson:3: .*taken"):
        read_dsjson_columns(path)


def test_the_obp_export_keeps_positions():
    decisions, outcomes = slate_log(n=10)
    rounds, _ = join_outcomes(decisions, outcomes, missing_reward=None)
    fb = bandit_feedback(BanditLog.from_rounds(rounds), context_dim=8)
    assert fb["len_list"] == 3 and sorted(set(fb["position"].tolist())) == [0, 1, 2]
    assert fb["taken"].sum() == 10 * (0 + 1 + 2)
    assert np.allclose(fb["action_dist_logging"][np.arange(30), fb["action"]], fb["pscore"])


def test_len_list_keeps_the_first_positions_and_the_report_says_what_the_value_is():
    decisions, outcomes = slate_log(n=10)
    log = BanditLog.from_rounds(join_outcomes(decisions, outcomes, missing_reward=None)[0])
    assert set(keep_positions(log, 2).positions.tolist()) == {0, 1}
    assert keep_positions(log, None) is log
    with pytest.raises(ReplayError, match="len-list"):
        keep_positions(log, 0)
    summary = position_summary(log)
    assert summary["len_list"] == 3 and summary["rounds_per_position"] == [10, 10, 10]


def test_targets_choose_only_among_the_candidates_left_to_their_position():
    decisions, outcomes = slate_log(n=50)
    log = BanditLog.from_rounds(join_outcomes(decisions, outcomes, missing_reward=None)[0])
    greedy = resolve_target(parse_target("greedy"), log).action_dist
    assert np.allclose(greedy.sum(axis=1), 1.0) and not (greedy[log.taken] > 0).any()
    # greedy by score over what is left: position j gets the j-th best item whenever the prefix was greedy too
    best = np.argsort(-SCORES)
    for j in range(log.n_rounds):
        free = [a for a in best if not log.taken[j, a]]
        assert greedy[j, free[0]] == 1.0
    logging = resolve_target(parse_target("logging"), log)
    [result] = evaluate(log, [logging], estimators=("ips",), n_bootstrap=0)
    assert result.estimates["ips"].value == pytest.approx(log.reward.mean())  # weights of 1, position-wise


def test_restrict_to_free_leaves_rows_without_slates_alone():
    dist = np.array([[0.2, 0.8], [0.5, 0.5]])
    out = restrict_to_free(dist, np.zeros((2, 2), dtype=bool), np.zeros((2, 2)), np.ones((2, 2), dtype=bool))
    assert out is dist


def test_slate_estimates_use_complete_slates_and_give_the_logging_policy_its_mean_slate_total():
    decisions, outcomes = slate_log(n=40)
    dropped = {"r0", "r1"}  # two slates lose their last position's outcome
    kept = [o for o in outcomes if not (o.decision.request_id in dropped and o.decision.position == 2)]
    log = BanditLog.from_rounds(join_outcomes(decisions, kept, missing_reward=None)[0])
    logging = resolve_target(parse_target("logging"), log)
    greedy = resolve_target(parse_target("greedy"), log)
    out = slate_estimates(log, [("logging", logging.action_dist), ("greedy", greedy.action_dist)],
                          n_bootstrap=100, alpha=0.05, seed=0)
    assert out["len_list"] == 3 and out["slates"] == 38 and out["incomplete_slates_dropped"] == 2
    full = np.isin(log.request_ids.astype(str), sorted(dropped), invert=True)
    mean_total = log.reward[full].sum() / 38
    for name in ("slate-ips", "slate-rips"):
        v = out["policies"]["logging"][name]
        assert v["value"] == pytest.approx(mean_total) and v["lower"] <= mean_total <= v["upper"]
        assert np.isfinite(out["policies"]["greedy"][name]["value"])
