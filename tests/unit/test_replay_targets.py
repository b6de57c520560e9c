"""Target policies: vectorised pmfs equal the policies' own, tables, VW models, reward model, estimates."""

import dataclasses
import json

import numpy as np
import pytest

from bandits import BanditError, Candidates, make_policy
from bandits.factory import POLICIES
from bandits.ope.reward_model import RewardModelSpec, estimated_rewards
from stream.replay.dataset import BanditLog, context_matrix
from stream.replay.errors import ReplayError
from stream.replay.evaluate import Target, evaluate, parse_estimators, resolve_target
from stream.replay.synthetic import synthetic_rounds, true_value
from stream.replay.targets import parse_target, policy_distribution, table_distribution

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def data():
    rounds, truth = synthetic_rounds(1500, users=20, items=15, seed=7)
    return BanditLog.from_rounds(rounds), truth


def ragged_log():
    from stream.events import Decision, Item
    from stream.replay.rounds import LoggedRound

    rng = np.random.default_rng(3)
    rounds = []
    for i in range(60):
        n = int(rng.integers(1, 7))
        scores = np.round(rng.normal(size=n), 1)  # rounding makes ties
        pmf = np.full(n, 1.0 / n)
        rounds.append(LoggedRound(Decision(f"r{i}", "u", float(i), {}, tuple(Item(f"i{j}") for j in range(n)),
                                           tuple(scores.tolist()), tuple(pmf.tolist()), 0, pmf[0], "e", "e",
                                           int(rng.integers(2**62)), "v1", 0), 1.0))
    return BanditLog.from_rounds(rounds)


@pytest.mark.parametrize("spec", ["greedy", "epsilon_greedy:epsilon=0.2", "epsilon_greedy:epsilon=1.0",
                                  "softmax:temperature=0.3", "softmax:temperature=5"])
def test_vectorised_pmf_equals_the_policy_decision_by_decision(spec):
    log = ragged_log()
    policy = make_policy(spec)
    fast = policy_distribution(policy, log.scores, log.mask, log.seed)
    for i in range(log.n_rounds):
        m = log.n_candidates[i]
        slow = policy.decide(Candidates(scores=log.scores[i, :m]), np.random.default_rng(int(log.seed[i]))).pmf
        assert np.allclose(fast[i, :m], slow, atol=1e-12)
        assert not fast[i, m:].any()


def test_logging_spec_reproduces_the_logged_pmf(data):
    log, _ = data
    again = resolve_target(parse_target("epsilon_greedy:epsilon=0.3"), log).action_dist
    assert np.allclose(again, log.pmf, atol=1e-12)


def test_policies_that_need_more_than_scores_fail_with_a_hint(data):
    log, _ = data
    with pytest.raises(ReplayError, match="fn=<version>"):
        resolve_target(parse_target("thompson"), log)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_each_policy_declares_truthfully_what_it_needs(name):
    """Replay's fn= target hands rich candidates only to policies whose ``needs`` go beyond scores."""
    policy = make_policy(name)
    assert policy.needs <= {f.name for f in dataclasses.fields(Candidates)}
    bare = Candidates(scores=np.array([0.2, 0.9, 0.1]))
    required = policy.needs - {"scores", "action_ids"} - ({"embeddings"} if name == "vw" else set())
    if required:
        with pytest.raises(BanditError, match="needs candidates"):
            policy.decide(bare, np.random.default_rng(0))
    else:  # scores alone are enough: a logged decision can be replayed as it is
        assert policy.decide(bare, np.random.default_rng(0)).pmf.shape == (3,)


def test_uniform_target(data):
    log, _ = data
    dist = resolve_target(parse_target("uniform"), log).action_dist
    assert np.allclose(dist.sum(axis=1), 1.0) and np.allclose(dist[log.mask], np.repeat(1 / log.n_candidates, log.n_candidates))


@pytest.mark.parametrize("text, message", [
    ("", "non-empty"), ("fn=v3", "fn=<version>:<policy spec>"), ("fn=:greedy", "fn=<version>"),
    ("bogus", "unknown policy name"), ("epsilon_greedy:epsilon=2", "epsilon must be in"),
    ("table=/no/such.json", "no such file"),
])
def test_bad_targets_are_named(text, message):
    with pytest.raises(ReplayError, match=message):
        parse_target(text)


def test_table_target_with_key_names_star_row_and_fallbacks(tmp_path):
    log = ragged_log()
    table = {"_key": ["user_id"], "user_id=u": {"i4": 1.0, "i5": 3.0}, "*": {"i1": 1.0}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    dist, notes, fallback = table_distribution(str(path), log)
    assert fallback.count == int((log.n_candidates == 1).sum()) and fallback.total == log.n_rounds
    assert np.allclose(dist.sum(axis=1), 1.0) and not dist[~log.mask].any()
    n = log.n_candidates
    assert np.allclose(dist[n == 6, 4], 0.25) and np.allclose(dist[n == 6, 5], 0.75)
    assert np.allclose(dist[n == 5, 4], 1.0)
    assert np.allclose(dist[(n >= 2) & (n <= 4), 1], 1.0)  # the '*' entry
    assert np.allclose(dist[n == 1, 0], 1.0)  # nothing anywhere: uniform
    assert any("'*'" in s for s in notes) and any("uniform" in s for s in notes)


def test_table_key_defaults_to_every_context_feature(tmp_path):
    from stream.events import Decision, Item
    from stream.replay.rounds import LoggedRound

    d = Decision("r", "u", 0.0, {"hour": 3.0, "device": "tv"}, (Item("a"), Item("b")), (0.0, 0.0), (0.5, 0.5), 0,
                 0.5, "e", "e", 0, "v1", 0)
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"device=tv,hour=3": {"b": 1.0}}))
    dist, notes, fallback = table_distribution(str(path), BanditLog.from_rounds([LoggedRound(d, 1.0)]))
    assert dist.tolist() == [[0.0, 1.0]] and notes == [] and fallback is None


def test_a_table_that_matches_no_decision_is_refused_naming_the_file_line(tmp_path):
    from stream.replay.dsjson import read_dsjson, write_dsjson

    log_path = tmp_path / "log.dsjson"
    write_dsjson(ragged_log().rounds, log_path)
    log = BanditLog.from_rounds(read_dsjson(log_path))
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"_key": ["user_id"], "user_id=nobody": {"i0": 1.0}}))
    spec = parse_target(f"table={path}")
    with pytest.raises(ReplayError, match=rf"{log.n_rounds} of {log.n_rounds} decisions \(100%\) fell back to "
                                          rf"uniform \(no table entry .*; first: {log_path}:1, key 'user_id=u'\)"
                                          r".*--allow-fallback"):
        resolve_target(spec, log)
    target = resolve_target(spec, log, allow_fallback=1.0)
    assert target.fallback.count == log.n_rounds and np.allclose(target.action_dist, log.mask / log.n_candidates[:, None])
    with pytest.raises(ReplayError, match="fell back"):
        resolve_target(spec, log, allow_fallback=0.5)


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "must be a JSON object"), ('{"a": 3}', "must be an object"), ('{"a": {"i0": -1}}', ">= 0"),
    ('{"_key": "device", "a": {}}', "'_key' must be a list"), ("{", "not JSON"), ("{}", "no entries"),
])
def test_bad_tables_are_named(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(ReplayError, match=message):
        table_distribution(str(path), ragged_log())


def test_cross_fitted_reward_model_is_close_to_the_truth_and_padded_with_zero(data):
    log, truth = data
    q = estimated_rewards(log, context_matrix(log), RewardModelSpec(seed=0))
    assert q.shape == log.pmf.shape and not q[~log.mask].any()
    assert q.min() >= log.reward.min() and q.max() <= log.reward.max()
    err = np.abs(q - truth)[log.mask].mean()
    base = np.abs(log.reward.mean() - truth)[log.mask].mean()
    assert err < base  # better than predicting the mean


def test_estimates_bracket_the_true_values(data):
    log, truth = data
    targets = [resolve_target(parse_target(s), log) for s in ("logging", "greedy", "softmax:temperature=0.3")]
    results = evaluate(log, targets, n_bootstrap=300, seed=1)
    for target, result in zip(targets, results):
        truth_value = true_value(target.action_dist, truth)
        for name in ("ips", "snips", "dr", "sndr"):
            e = result.estimates[name]
            assert e.lower <= e.value <= e.upper
            assert abs(e.value - truth_value) < 0.06, (target.label, name, e.value, truth_value)
    logging = results[0]
    assert logging.estimates["ips"].value == pytest.approx(log.on_policy_value())
    assert logging.estimates["snips"].value == pytest.approx(log.on_policy_value())
    assert logging.ess == pytest.approx(log.n_rounds)
    assert results[1].ess < log.n_rounds


def test_no_bootstrap_gives_the_same_point_estimates_and_no_intervals(data):
    log, _ = data
    targets = [resolve_target(parse_target(s), log) for s in ("logging", "greedy")]
    with_intervals = evaluate(log, targets, n_bootstrap=20, seed=1)
    points = evaluate(log, targets, n_bootstrap=0, seed=1)
    for a, b in zip(with_intervals, points):
        assert {k: e.value for k, e in a.estimates.items()} == {k: e.value for k, e in b.estimates.items()}
        assert all(np.isnan(e.lower) and np.isnan(e.upper) for e in b.estimates.values())
    from stream.replay.report import format_table

    assert "none (--bootstrap 0)" in format_table(points, on_policy_value=0.5, n_rounds=log.n_rounds)


def test_undefined_estimates_are_reported_not_raised(data):
    log, _ = data
    never = np.zeros_like(log.pmf)
    rows = np.arange(log.n_rounds)
    other = (log.action + 1) % log.n_candidates  # always a candidate the logger did not choose
    never[rows, other] = 1.0
    [result] = evaluate(log, [Target("never-logged", never)], estimators=["snips", "ips"], n_bootstrap=50)
    assert result.estimates["snips"].error and np.isnan(result.estimates["snips"].value)
    assert result.estimates["ips"].value == 0.0
    from stream.replay.report import format_table

    table = format_table([result], on_policy_value=0.5, n_rounds=log.n_rounds)
    assert "undefined" in table and "snips:" in table


def test_parse_estimators():
    assert parse_estimators("ips, SNIPS,ips") == ["ips", "snips"]
    assert parse_estimators("switch-dr:lambda=inf;ips:max_weight=5") == ["switch-dr:lambda=inf", "ips:max_weight=5"]
    for bad, message in [("ips,switch", "unknown estimator 'switch'"), ("dros", "dros needs lambda"),
                         ("sg-ips:lambda=2", r"lambda must be a number in \[0, 1\]"), (" , ", "at least one"),
                         ("dr:lambda=1", "unknown parameter 'lambda' for estimator 'dr'")]:
        with pytest.raises(ReplayError, match=message):
            parse_estimators(bad)


def test_vw_target_from_a_saved_model(data, tmp_path):
    from stream.replay.vw_target import save_vw, train_vw, vw_args, vw_distribution

    log, truth = data
    ws = train_vw(log.subset(np.arange(1000)), vw_args(cb_type="dr"))
    path = save_vw(ws, tmp_path / "m.vw")
    test = log.subset(np.arange(1000, 1500))
    dist = resolve_target(parse_target(f"vw={path}"), test).action_dist
    assert dist.shape == test.pmf.shape and np.allclose(dist.sum(axis=1), 1.0) and not dist[~test.mask].any()
    assert np.array_equal(dist, vw_distribution(ws, test))


def test_not_a_vw_model_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.vw"
    path.write_bytes(b"not a model")
    with pytest.raises(ReplayError, match="VW"):
        resolve_target(parse_target(f"vw={path}"), ragged_log())


def test_console_shows_significant_digits_and_json_full_precision():
    from stream.replay.evaluate import Estimate, PolicyResult
    from stream.replay.report import format_table

    result = PolicyResult("table", 812.25, {"ips": Estimate(0.0045123456, 0.0031234567, 0.0061234567)})
    table = format_table([result], on_policy_value=0.0038123, n_rounds=10000)
    assert "0.004512" in table and "[0.003123, 0.006123]" in table and "0.003812 over 10000" in table
    assert result.to_dict()["estimates"]["ips"]["value"] == 0.0045123456


def test_each_estimator_gives_what_it_gives_alone_and_a_bad_reward_model_fails_only_its_users(data):
    """evaluate checks a target's arrays once for all its estimators: the values are each estimator's own,
    and when one array is bad (a NaN prediction) only the estimators reading it report an error."""
    from bandits.ope import make_estimator

    log, _ = data
    targets = [resolve_target(parse_target(s), log) for s in ("logging", "greedy")]
    q = estimated_rewards(log, context_matrix(log), RewardModelSpec(seed=0))
    names = ("ips", "snips", "dm", "dr", "sndr", "switch-dr:lambda=5", "dros:lambda=10")
    results = evaluate(log, targets, estimators=names, n_bootstrap=0, estimated_rewards=q)
    for target, result in zip(targets, results):
        for name in names:
            alone = make_estimator(name).estimate_policy_value(
                reward=log.reward, action=log.action, pscore=log.pscore, action_dist=target.action_dist,
                estimated_rewards=q if make_estimator(name).requires_estimated_rewards else None)
            assert result.estimates[name].value == alone, name
    bad = q.copy()
    bad[0, 0] = np.nan
    [result] = evaluate(log, targets[:1], estimators=names, n_bootstrap=0, estimated_rewards=bad)
    assert result.estimates["ips"].value == results[0].estimates["ips"].value
    assert "estimated_rewards" in result.estimates["dr"].error and np.isnan(result.estimates["dm"].value)
