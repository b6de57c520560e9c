"""The engine with a feature cache: the decision a query gets does not depend on the cache (it caches the
feature, not the decision), a swap serves the new version's features, and the counts move."""

from __future__ import annotations

import pytest

from bandits import make_policy
from features.cache import FeatureCaches
from features.model import FeatureModel
from stream.engine import Engine
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
