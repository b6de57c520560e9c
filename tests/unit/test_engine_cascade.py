"""The IDK cascade in the engine, without a broker: who answers, what the decision says, whose weights learn."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import make_policy
from features.model import FeatureModel
from stream.engine import Engine
from stream.engine.cascade import Cascade, top_two_margin
from stream.engine.joins import JoinRecord

from .test_engine import Log, MemoryState, feedback, outputs, query, reconciles, run

pytestmark = pytest.mark.unit

ITEMS = tuple(f"i{k}" for k in range(6))


@pytest.fixture(scope="module")
def live(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


@pytest.fixture(scope="module")
def cheap(live) -> FeatureModel:
    """Another net of the same shape, whose offline users give new users a non-zero prior."""
    m = FeatureModel.create(live.config, version="cheap", seed=1)
    m.encoder = live.encoder
    m.user_weights = {"offline": (np.random.default_rng(0).normal(size=m.output_dim).astype(np.float32), 0.5)}
    return m


def engine(live, cheap=None, margin: float = 0.0) -> Engine:
    return Engine(live, make_policy("greedy"), learner="bayes", join_window_s=60.0, seed=7,
                  cascade=None if cheap is None else Cascade(cheap, margin))


def queries(n: int = 12):
    return [query(f"r{k}", user=f"u{k % 3}", items=ITEMS, hour=float(k)) for k in range(n)]


def cheap_margins(e: Engine, cheap: FeatureModel, qs) -> dict[str, float]:
    cache = e._caches[cheap.version]
    return {q.request_id: top_two_margin(cache.fresh(q.user_id).predict_many(
        cheap.embed(q.context, [c.to_dict() for c in q.candidates]).astype(np.float64))) for q in qs}


def at_the_median_margin(live, cheap, qs) -> tuple[Engine, dict[str, float], float]:
    """A cascade whose threshold is the median of the cheap model's margins on ``qs`` (about half escalate),
    those margins and the threshold."""
    margins = cheap_margins(engine(live, cheap), cheap, qs)
    threshold = float(np.median(list(margins.values())))
    return engine(live, cheap, threshold), margins, threshold


@pytest.mark.parametrize("seed", range(20))
def test_top_two_margin_is_the_best_score_less_the_runner_up(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=int(rng.integers(2, 9)))
    best, runner_up = np.sort(scores)[::-1][:2]
    assert top_two_margin(scores) == pytest.approx(best - runner_up, abs=1e-12)


def test_two_candidates_have_a_margin_and_a_tie_at_the_threshold_stays_cheap(cheap):
    assert top_two_margin(np.array([0.5, 0.75])) == 0.25 and top_two_margin(np.array([1.0])) == float("inf")
    assert Cascade(cheap, 0.25).unsure(np.array([0.5, 0.74])) and not Cascade(cheap, 0.25).unsure(np.array([0.5, 0.75]))
    # margin 0 never escalates, not even a tie
    assert not Cascade(cheap, 0.0).unsure(np.array([0.5, 0.5]))


def test_margin_zero_always_answers_cheap_and_infinite_always_escalates(live, cheap):
    qs = queries(4)
    never = run(engine(live, cheap, 0.0), MemoryState(), [Log().rec(q) for q in qs])
    always = run(engine(live, cheap, float("inf")), MemoryState(), [Log().rec(q) for q in qs])
    alone = run(engine(live), MemoryState(), [Log().rec(q) for q in qs])
    assert {d["feature_net_version"] for d in outputs(never, "decisions")} == {"cheap"}
    assert not any(d.get("escalated") for d in outputs(never, "decisions"))
    assert never.counts["cascade_cheap"] == 4 and never.counts["cascade_escalated"] == 0
    esc = outputs(always, "decisions")
    assert all(d["escalated"] and d["feature_net_version"] == live.version for d in esc)
    # escalated, the live model decides exactly as it would alone
    for d, plain in zip(esc, outputs(alone, "decisions")):
        assert (d["scores"], d["pmf"], d["chosen_index"]) == (plain["scores"], plain["pmf"], plain["chosen_index"])


def test_the_query_escalates_exactly_when_the_cheap_margin_is_below_the_threshold(live, cheap):
    qs = queries()
    e, margins, threshold = at_the_median_margin(live, cheap, qs)
    state, log = MemoryState(), Log()
    batch = run(e, state, [log.rec(q) for q in qs])
    decs = {d["request_id"]: d for d in outputs(batch, "decisions")}
    preds = {p["request_id"]: p for p in outputs(batch, "predictions")}
    assert [d["request_id"] for d in outputs(batch, "decisions")] == [q.request_id for q in qs]  # order kept
    for q in qs:
        d, unsure = decs[q.request_id], margins[q.request_id] < threshold
        assert d.get("escalated", False) == unsure
        assert d["feature_net_version"] == preds[q.request_id]["versions"]["feature_net"]
        assert d["feature_net_version"] == (live.version if unsure else "cheap")
        used = JoinRecord.unpack(state.decisions[q.request_id]).embeddings
        by = live if unsure else cheap
        assert np.allclose(used, by.embed(q.context, [c.to_dict() for c in q.candidates]), atol=1e-6)
    assert 0 < batch.counts["cascade_escalated"] < len(qs)
    assert reconciles(batch.counts)


def test_feedback_teaches_the_user_weights_of_the_version_that_answered(live, cheap):
    qs = queries()
    e, _, _ = at_the_median_margin(live, cheap, qs)
    state, log = MemoryState(), Log()
    batch = run(e, state, [log.rec(q) for q in qs])
    decs = outputs(batch, "decisions")
    by_cheap = next(d for d in decs if not d.get("escalated"))
    by_live = next(d for d in decs if d.get("escalated"))
    run(e, state, [log.rec(feedback(d["request_id"], ITEMS[0], user=d["user_id"])) for d in (by_cheap, by_live)])
    assert ("cheap", by_cheap["user_id"]) in state.users
    assert (live.version, by_live["user_id"]) in state.users
    if by_cheap["user_id"] != by_live["user_id"]:
        assert (live.version, by_cheap["user_id"]) not in state.users
        assert ("cheap", by_live["user_id"]) not in state.users


def test_a_single_candidate_has_nothing_to_decide_and_stays_cheap(live, cheap):
    batch = run(engine(live, cheap, 1e9), MemoryState(), [Log().rec(query("r1", items=("only",)))])
    (d,) = outputs(batch, "decisions")
    assert d["feature_net_version"] == "cheap" and "escalated" not in d


def test_no_cascade_when_the_cheap_version_is_the_live_one(live):
    batch = run(engine(live, live, 1e9), MemoryState(), [Log().rec(q) for q in queries(3)])
    assert all("escalated" not in d for d in outputs(batch, "decisions"))
    assert batch.counts["cascade_escalated"] == 0


def test_margin_must_not_be_negative(cheap):
    with pytest.raises(ValueError, match="margin"):
        Cascade(cheap, -0.1)


def test_a_reread_batch_re_emits_each_decision_as_made_by_the_model_that_answered(live, cheap):
    qs = queries(6)
    e, _, _ = at_the_median_margin(live, cheap, qs)
    state, log = MemoryState(), Log()
    records = [log.rec(q) for q in qs]
    first = run(e, state, records)
    run(e, state, [log.rec(feedback(q.request_id, ITEMS[0], user=q.user_id)) for q in qs])  # the weights move
    again = run(e, state, records)
    assert again.outputs.predictions == first.outputs.predictions
    assert [r for r in again.outputs.records if r[0] == "decisions"] == \
        [r for r in first.outputs.records if r[0] == "decisions"]
    assert again.counts["predictions_redelivered"] == len(qs) and again.counts["cascade_escalated"] == 0
