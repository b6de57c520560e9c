"""The engine with a feature cache: the decision a query gets does not depend on the cache (it caches the
feature, not the decision), a swap serves the new version's features, and the counts move."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import make_policy
from features.cache import FeatureCaches
from features.model import FeatureModel
from stream.engine import Engine
from stream.events import Item
from tests.unit.test_engine import T0, Log, MemoryState, query, run

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


def _engine(model, caches):
    return Engine(model, make_policy("softmax:temperature=0.5"), learner="river", join_window_s=60.0, seed=7,
                  clock=lambda: T0, feature_caches=caches)


def _decisions(engine, requests):
    """Each request in a fresh state (so nothing is re-emitted), the engine (and its cache) shared."""
    out = []
    for rid, context in requests:
        batch = run(engine, MemoryState(), [Log().rec(query(rid, **context))])
        out.append(batch.outputs.records[0][2])  # the decision record's bytes
    return out


REQUESTS = [("r1", {"hour": 3.0}), ("r2", {"hour": 9.0}), ("r1", {"hour": 3.0}), ("r3", {"hour": 3.0})]


def test_a_cached_feature_never_changes_the_decision_record(model):
    caches = FeatureCaches(capacity=1000)
    plain = _decisions(_engine(model, None), REQUESTS)
    cached = _decisions(_engine(model, caches), REQUESTS)
    assert cached == plain  # byte for byte: scores, pmf, propensity, chosen index
    figures = caches.figures()
    assert figures["hits"] > 0 and figures["misses"] > 0  # the repeats were served from the cache


def test_coarsened_keys_still_log_the_propensity_of_the_features_used(model):
    import msgspec

    caches = FeatureCaches(capacity=1000, lsh_bits=1)
    engine = _engine(model, caches)
    for raw in _decisions(engine, REQUESTS):
        d = msgspec.json.decode(raw)
        assert d["propensity"] == d["pmf"][d["chosen_index"]] and abs(sum(d["pmf"]) - 1) < 1e-9
    assert caches.figures()["hits"] >= 4


def test_install_with_a_warmed_cache_serves_the_new_version_from_it(model, trained_model_dir):
    caches = FeatureCaches(capacity=1000, warm=100)
    engine = _engine(model, caches)
    _decisions(engine, REQUESTS)
    v2 = FeatureModel.load(trained_model_dir)
    v2.version = "v2"
    warm = caches.warmed(v2, caches.warm_sources())
    engine.install(v2, warm)
    misses = warm.misses
    _decisions(engine, REQUESTS)
    assert caches.live("v2") is warm and warm.misses == misses and warm.hits > 0


@pytest.mark.parametrize("override, name", [({"lsh_bits": 65}, "lsh_bits"), ({"feature_cache_size": -1}, "feature_cache_size"),
                                            ({"feature_cache_kinds": "text,cnn"}, "feature_cache_kinds")])
def test_bad_feature_cache_settings_are_named(override, name):
    from stream.config import ConfigError, from_env

    with pytest.raises(ConfigError, match=name):
        from_env({}, **override)


NEAR = [("n1", {"hour": 3.0}), ("n2", {"hour": 3.001}), ("n3", {"hour": 3.0})]


def test_a_decision_served_from_a_coarsened_entry_says_so_and_logs_the_features_used(model):
    import msgspec

    from stream.engine.joins import JoinRecord
    from stream.events import decode_decision, decode_prediction

    caches = FeatureCaches(capacity=1000, lsh_bits=8, kinds=("mlp",))
    engine, state, log = _engine(model, caches), MemoryState(), Log()
    first, second, third = (run(engine, state, [log.rec(query(rid, **ctx))]) for rid, ctx in NEAR)
    d1, d2, d3 = (decode_decision(b.outputs.records[0][2]) for b in (first, second, third))
    assert d1.coarsened == () and d3.coarsened == ()  # computed; then the very same input again: exact hits
    assert d2.coarsened == (0, 1, 2, 3)  # every candidate's row was computed for hour 3.0, not 3.001
    assert decode_prediction(second.outputs.predictions[0][1]).coarsened == ("i1", "i2", "i3", "i4")
    assert "coarsened" not in msgspec.json.decode(first.outputs.records[0][2])  # absent when empty
    assert second.counts["queries_coarsened"] == 1 and second.counts["candidates_coarsened"] == 4
    # the join record keeps the (coarsened) rows the policy scored, and the propensity is of those scores
    joined = JoinRecord.unpack(state.decisions["n2"])
    np.testing.assert_array_equal(joined.embeddings, JoinRecord.unpack(state.decisions["n1"]).embeddings)
    assert d2.scores == d1.scores and d2.propensity == d2.pmf[d2.chosen_index]


def test_coarsened_is_flagged_under_a_deadline_too(model):
    from stream.engine.anytime import Anytime
    from stream.events import decode_decision

    caches = FeatureCaches(capacity=1000, lsh_bits=8, kinds=("mlp",))
    engine = Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, clock=lambda: T0,
                    feature_caches=caches, anytime=Anytime(deadline_ms=60_000, clock=lambda: T0))
    state, log = MemoryState(), Log()
    batches = [run(engine, state, [log.rec(query(rid, **ctx))]) for rid, ctx in NEAR[:2]]
    d1, d2 = (decode_decision(b.outputs.records[0][2]) for b in batches)
    assert d1.approximated == d2.approximated == () and d1.coarsened == () and d2.coarsened == (0, 1, 2, 3)


def test_a_decision_record_without_coarsened_still_decodes():
    from stream.events import Decision, decode_decision, encode

    d = Decision(request_id="r", user_id="u", ts=T0, context={}, candidates=(Item("a"),), scores=(0.0,), pmf=(1.0,),
                 chosen_index=0, propensity=1.0, policy="greedy", policy_version="greedy", seed=1,
                 feature_net_version="v1", user_weights_version=0)
    raw = encode(d)
    assert b"coarsened" not in raw and decode_decision(raw).coarsened == ()
    with pytest.raises(Exception, match="coarsened"):
        decode_decision(raw.replace(b'"user_weights_version":0', b'"user_weights_version":0,"coarsened":[3]'))
