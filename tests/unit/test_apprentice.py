"""Apprentice mode without a broker: the engine serves the query's default action with propensity 1 and
learns from its feedback; the switch back to the policy is a flag between batches; queries name their
default action or get the first candidate; and the promote rule on a synthetic apprentice log."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from bandits import make_policy
from stream import config, events
from stream.engine import Engine
from stream.engine.apprentice import default_decision, default_index
from stream.events import EventError, Item, Query
from stream.replay.apprentice import decide
from stream.replay.dataset import BanditLog
from stream.replay.rounds import LoggedRound

from .test_engine import T0, Log, MemoryState, feedback, model, outputs, query, reconciles, run  # noqa: F401

pytestmark = pytest.mark.unit


@pytest.fixture
def engine(model) -> Engine:
    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="bayes", join_window_s=60.0, seed=7,
               clock=lambda: T0)
    e.serve_default = True
    return e


def test_apprentice_mode_serves_the_default_action_with_propensity_1_and_learns_from_it(engine):
    state, log = MemoryState(), Log()
    q = msgspec.structs.replace(query("r1"), default_action="i3")
    batch = run(engine, state, [log.rec(q), log.rec(query("r2"))])
    preds, decs = outputs(batch, "predictions"), outputs(batch, "decisions")
    assert [p["chosen"][0] for p in preds] == ["i3", "i1"]  # named, else the first candidate
    assert [(d["chosen_index"], d["propensity"], d["pmf"], d["policy"]) for d in decs] == [
        (2, 1.0, [0.0, 0.0, 1.0, 0.0], "apprentice"), (0, 1.0, [1.0, 0.0, 0.0, 0.0], "apprentice")]
    assert len(set(decs[0]["scores"])) > 1  # the learned model's scores are logged for the estimate
    batch = run(engine, state, [log.rec(feedback("r1", "i3", reward=1.0))])
    assert batch.counts["feedback_applied"] == 1 and len(outputs(batch, "outcomes")) == 1
    assert reconciles(batch.counts)


def test_the_switch_takes_effect_at_the_next_batch(engine):
    state, log = MemoryState(), Log()
    engine.serve_default = False
    (dec,) = outputs(run(engine, state, [log.rec(query("r1"))]), "decisions")
    assert dec["policy"] == "epsilon_greedy" and dec["propensity"] < 1.0
    engine.serve_default = True
    (dec,) = outputs(run(engine, state, [log.rec(query("r2"))]), "decisions")
    assert dec["policy"] == "apprentice"


def test_a_query_may_name_its_default_action_and_it_must_be_a_candidate():
    q = Query("r1", "u1", 1.0, {}, (Item("a"), Item("b")), default_action="b")
    assert events.decode_query(events.encode(q)) == q
    assert b"default_action" not in events.encode(msgspec.structs.replace(q, default_action=None))
    raw = b'{"schema":"eddy.query/1","request_id":"r","user_id":"u","ts":1,"candidates":["a"],"default_action":"z"}'
    with pytest.raises(EventError, match="default_action.*'z'"):
        events.decode_query(raw)


def test_the_default_decision_is_frozen_and_a_default_outside_the_candidates_is_refused_by_name():
    """Like every policy's, the decision's pmf is read-only: the decision log and the join record share it."""
    d = default_decision(Query("r1", "u1", 1.0, {}, (Item("a"), Item("b")), default_action="b"))
    assert d.chosen == 1 and d.pmf.tolist() == [0.0, 1.0] and not d.pmf.flags.writeable
    # decoding refuses such a query; a query built in code reaches the engine undecoded
    with pytest.raises(ValueError, match="default_action 'z' is not one of the candidates"):
        default_index(Query("r1", "u1", 1.0, {}, (Item("a"),), default_action="z"))


@pytest.mark.parametrize("raw, value", [("true", True), ("1", True), ("False", False), ("off", False)])
def test_the_apprentice_setting_reads_booleans(raw, value):
    assert config.from_env({"EDDY_APPRENTICE": raw}).apprentice is value


def test_a_bad_apprentice_setting_names_the_variable():
    with pytest.raises(config.ConfigError, match="EDDY_APPRENTICE must be bool, got 'maybe'"):
        config.from_env({"EDDY_APPRENTICE": "maybe"})


def _apprentice_log(n: int, seed: int = 0) -> tuple[BanditLog, np.ndarray]:
    """A default that picks a random item of 5, and a learned policy that knows the best one:
    item ``i<k>`` pays 1 with probability 0.2 + 0.15 k whatever the context."""
    rng = np.random.default_rng(seed)
    rounds = []
    for r in range(n):
        items = tuple(Item(f"i{k}") for k in rng.permutation(5))
        chosen = int(rng.integers(5))
        p = 0.2 + 0.15 * int(items[chosen].id[1:])
        d = events.Decision(f"r{r}", f"u{r % 7}", float(r), {}, items, (0.0,) * 5,
                            tuple(float(i == chosen) for i in range(5)), chosen, 1.0, "apprentice",
                            "apprentice/1", r, "v1", 0)
        rounds.append(LoggedRound(d, float(rng.random() < p), float(r) + 1))
    log = BanditLog.from_rounds(rounds)
    best = np.array([[float(c.id == "i4") for c in r.decision.candidates] for r in rounds])
    return log, best


def test_the_rule_switches_when_the_lower_bound_beats_the_default():
    log, best = _apprentice_log(1500)
    v = decide(log, best, target="best", n_bootstrap=200)
    assert abs(v.default_value - 0.5) < 0.05 and v.lower > v.default_value and v.promote
    assert abs(v.value - 0.8) < 0.07  # DR through the per-item reward model
    # IPS sees only the rounds where the learned policy picked the default (about a fifth)
    assert abs(v.agreement - 0.2) < 0.05


def test_the_rule_stays_with_the_default_when_the_learned_policy_is_worse_or_the_log_is_short():
    log, best = _apprentice_log(1500)
    worst = np.array([[float(c.id == "i0") for c in r.decision.candidates] for r in log.rounds])
    assert not decide(log, worst, target="worst", n_bootstrap=200).promote
    short, best_short = _apprentice_log(100)
    v = decide(short, best_short, target="best", n_bootstrap=200, min_rounds=200)
    assert not v.promote and "only 100" in v.reason


def test_a_query_read_again_after_the_switch_gets_the_decision_it_was_given(engine):
    """A batch re-read after a crash re-emits its stored decision: a request is never answered by both policies."""
    state, log = MemoryState(), Log()
    record = log.rec(query("r1"))
    first = run(engine, state, [record])
    engine.serve_default = False
    again = run(engine, state, [record])
    assert again.counts["predictions_redelivered"] == 1
    (decision,) = outputs(again, "decisions")
    assert outputs(again, "decisions") == outputs(first, "decisions") and decision["policy"] == "apprentice"
