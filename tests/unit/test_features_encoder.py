"""FeatureEncoder: missing values, unseen values and ids, wrong types, standardisation, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import FeatureEncoder, FeatureError, FeatureNetConfig
from features.encoder import stable_bucket

pytestmark = pytest.mark.unit

CFG = FeatureNetConfig(
    context_numeric=("hour", "temp"),
    context_categorical=("device",),
    item_numeric=("price",),
    item_categorical=("genre",),
    hash_buckets=1024,
)
GOLDEN = (27892, 28309, 514)


def encoder():
    return FeatureEncoder(CFG)


def test_shapes_and_dtypes():
    b = encoder().encode({"hour": 3, "temp": 1.5, "device": "ios"},
                         [{"id": "a", "features": {"price": 2.0, "genre": "jazz"}}, {"id": "b"}, {"id": "c"}])
    assert len(b) == 3
    assert b.numeric.shape == (3, 3) and b.numeric.dtype == torch.float32
    assert b.categorical.shape == (3, 2) and b.categorical.dtype == torch.int64
    assert b.item_ids.shape == (3,) and b.item_ids.dtype == torch.int64


def test_missing_values_become_zero_and_missing_bucket():
    enc = encoder()
    enc.fit([{"hour": 10.0, "temp": 0.0}, {"hour": 20.0, "temp": 2.0}], [{"id": "a"}, {"id": "b"}])
    b = enc.encode({"hour": None, "temp": float("nan")}, [{"id": "a", "features": {}}, {"id": "b", "features": None}])
    assert b.numeric.abs().sum() == 0  # missing -> the training mean -> 0
    assert b.categorical.tolist() == [[0, 0], [0, 0]]


def test_standardisation_uses_fitted_stats():
    enc = encoder().fit([{"hour": 10}, {"hour": 20}, {}], [{"id": "a", "features": {"price": 5}}] * 3)
    assert enc.mean.tolist() == [15.0, 0.0, 5.0]
    assert enc.std.tolist() == [5.0, 1.0, 1.0]  # absent and constant inputs get std 1
    b = enc.encode({"hour": 25}, [{"id": "a", "features": {"price": 7}}])
    assert b.numeric.tolist() == [[2.0, 0.0, 2.0]]


def test_unseen_values_and_ids_get_stable_nonzero_buckets():
    enc = encoder()
    b = enc.encode({"device": "never-seen"}, [{"id": "brand-new", "features": {"genre": "polka"}}])
    assert b.categorical.tolist() == [[stable_bucket("context.device=never-seen", 1024),
                                       stable_bucket("item.genre=polka", 1024)]]
    assert b.item_ids.tolist() == [stable_bucket("id=brand-new", 1024)]
    assert all(1 <= v < 1024 for v in [*b.categorical.flatten().tolist(), *b.item_ids.tolist()])


def test_hash_is_stable_golden_values():
    """Pinned buckets: a change here silently invalidates every trained artifact."""
    assert stable_bucket("id=x", 2**15) == GOLDEN[0]
    assert stable_bucket("item.genre=jazz", 2**15) == GOLDEN[1]
    assert stable_bucket("context.device=ios", 1000) == GOLDEN[2]
    assert stable_bucket("id=x", 2) == 1


def test_equal_values_share_a_bucket_regardless_of_cache_order():
    enc1, enc2 = encoder(), encoder()
    a = enc1.encode({"device": 1}, [{"id": 1}, {"id": "1"}, {"id": True}])
    b = enc2.encode({"device": "1"}, [{"id": "1"}, {"id": 1.0}, {"id": 1}])
    assert a.categorical.tolist() == b.categorical.tolist()
    assert len(set(a.item_ids.tolist() + b.item_ids.tolist())) == 1


def test_hash_cache_is_bounded():
    enc = FeatureEncoder(CFG, cache_size=10)
    items = [{"id": f"i{k}"} for k in range(100)]
    ids = enc.encode({}, items).item_ids
    assert len(enc._id_cache.table) <= 10
    assert ids.tolist() == [stable_bucket(f"id=i{k}", 1024) for k in range(100)]


@pytest.mark.parametrize(
    ("context", "item", "message"),
    [
        ({"hour": "9"}, {"id": "a"}, "context field 'hour' must be numeric, got '9'"),
        ({"hour": "nine"}, {"id": "a"}, "context field 'hour' must be numeric, got 'nine'"),
        ({}, {"id": "a", "features": {"price": "cheap"}}, "item field 'price' must be numeric, got 'cheap'"),
        ({"temp": float("inf")}, {"id": "a"}, "context field 'temp' must be finite, got inf"),
        ({"hour": [1]}, {"id": "a"}, "context field 'hour' must be numeric, got [1]"),
        ({"device": ["x"]}, {"id": "a"}, "context field 'device' must be a string or a number, got ['x']"),
        ({}, {"id": "a", "features": {"genre": {"x": 1}}}, "item field 'genre' must be a string or a number"),
        ({}, {"features": {}}, "items[0] has no 'id'"),
        ({}, {"id": None}, "item['id'] is missing, got None"),
        ({}, "a", "items[0] must be a dict with an 'id', got 'a'"),
        ({}, {"id": "a", "features": [1]}, "items[0]['features'] must be a dict, got [1]"),
        ([1], {"id": "a"}, "contexts[0] must be a dict, got [1]"),
    ],
)
def test_bad_inputs_raise_feature_error_naming_the_field(context, item, message):
    with pytest.raises(FeatureError) as info:
        encoder().encode(context, [item])
    assert message in str(info.value)


def test_encode_many_equals_encode_per_query():
    enc = encoder()
    queries = [
        ({"hour": 1, "device": "ios"}, [{"id": "a"}, {"id": "b", "features": {"genre": "x", "price": 3}}]),
        ({"temp": 2.0}, []),
        ({"device": "web"}, [{"id": "c"}]),
    ]
    many = enc.encode_many(queries)
    parts = [enc.encode(c, items) for c, items in queries]
    for name in ("numeric", "categorical", "item_ids"):
        assert torch.equal(getattr(many, name), torch.cat([getattr(p, name) for p in parts]))


def test_encode_pairs_matches_encode():
    enc = encoder()
    ctx = [{"hour": 1, "device": "a"}, {"hour": 2}]
    items = [{"id": "x", "features": {"price": 1}}, {"id": "y"}]
    pairs = enc.encode_pairs(ctx, items)
    for k in range(2):
        one = enc.encode(ctx[k], [items[k]])
        assert torch.equal(pairs.numeric[k], one.numeric[0]) and torch.equal(pairs.categorical[k], one.categorical[0])
    with pytest.raises(FeatureError, match="equal lengths, got 2 and 1"):
        enc.encode_pairs(ctx, items[:1])


def test_stats_round_trip_and_rejects_mismatch():
    enc = encoder().fit([{"hour": 1}, {"hour": 3}], [{"id": "a"}, {"id": "b"}])
    again = FeatureEncoder(CFG, stats=enc.stats)
    assert np.array_equal(again.mean, enc.mean) and np.array_equal(again.std, enc.std)
    with pytest.raises(FeatureError, match="numeric_names must be"):
        FeatureEncoder(CFG, stats={**enc.stats, "numeric_names": ["context.hour"]})
    with pytest.raises(FeatureError, match="positive stds"):
        FeatureEncoder(CFG, stats={**enc.stats, "std": [0.0, 1.0, 1.0]})


def test_encoding_does_not_mutate_inputs():
    ctx = {"hour": 3, "device": "ios"}
    items = [{"id": "a", "features": {"price": 1.0}}]
    before = (dict(ctx), [dict(i, features=dict(i["features"])) for i in items])
    encoder().encode(ctx, items)
    assert (ctx, items) == before
