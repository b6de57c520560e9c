"""FeatureNetConfig: validation table, JSON round trip, inference of field types."""

from __future__ import annotations

import json

import pytest

from features import FeatureError, FeatureNetConfig

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hash_buckets": 1}, "hash_buckets must be an int >= 2, got 1"),
        ({"hash_buckets": 2.5}, "hash_buckets must be an int >= 2, got 2.5"),
        ({"embedding_dim": 0}, "embedding_dim must be an int >= 1, got 0"),
        ({"item_id_embedding_dim": -1}, "item_id_embedding_dim must be an int >= 0, got -1"),
        ({"output_dim": True}, "output_dim must be an int >= 1, got True"),
        ({"hidden": (64, 0)}, "hidden must be an int >= 1, got 0"),
        ({"hidden": 64}, "hidden must be a tuple of layer sizes, got 64"),
        ({"dropout": 1.0}, "dropout must be a float in [0, 1), got 1.0"),
        ({"dropout": -0.1}, "dropout must be a float in [0, 1), got -0.1"),
        ({"context_numeric": ("a", "a")}, "context_numeric has duplicate field names ['a']"),
        ({"item_numeric": ("",)}, "item_numeric must hold non-empty strings, got ''"),
        ({"item_categorical": "genre"}, "item_categorical must be a tuple of field names, got 'genre'"),
        ({"context_numeric": ("x",), "context_categorical": ("x",)}, "share field names ['x']"),
        ({"item_id_embedding_dim": 0}, "the config has no inputs"),
    ],
)
def test_invalid_configs_name_the_parameter_and_value(kwargs, message):
    with pytest.raises(FeatureError) as info:
        FeatureNetConfig(**kwargs)
    assert message in str(info.value)


def test_same_name_on_context_and_item_is_allowed():
    cfg = FeatureNetConfig(context_numeric=("price",), item_numeric=("price",))
    assert cfg.n_numeric == 2


def test_lists_become_tuples_and_round_trip_through_json():
    cfg = FeatureNetConfig(context_numeric=["a", "b"], item_categorical=["g"], hidden=[32, 16], dropout=0.1)
    assert cfg.context_numeric == ("a", "b") and cfg.hidden == (32, 16)
    assert FeatureNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    hash(cfg)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(FeatureError, match=r"unknown keys \['hiden'\]"):
        FeatureNetConfig.from_dict({"hiden": [8]})


def test_infer_sorts_fields_by_type():
    examples = [
        ("u1", {"hour": 9, "device": "ios", "flag": True}, {"id": "a", "features": {"price": 2.5, "genre": "rock"}}, 1.0),
        ("u2", {"hour": None, "device": 3, "zeta": 1.0}, {"id": "b"}, 0.0),
        ("u3", {"age": float("nan")}, {"id": "c", "features": {"genre": 7, "price": 3}}, 0.5),
    ]
    cfg = FeatureNetConfig.infer(examples, output_dim=4, hidden=(8,))
    assert cfg.context_numeric == ("age", "flag", "hour", "zeta")
    assert cfg.context_categorical == ("device",)
    assert cfg.item_numeric == ("price",)
    assert cfg.item_categorical == ("genre",)
    assert (cfg.output_dim, cfg.hidden) == (4, (8,))


def test_infer_overrides_can_replace_inferred_lists():
    cfg = FeatureNetConfig.infer([("u", {"a": 1, "b": 2}, {"id": "i"}, 0.0)], context_numeric=("a",))
    assert cfg.context_numeric == ("a",)


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([], "at least one example, got 0"),
        ([("u", {}, {"id": "a"})], "examples[0] must be (user_id, context, item, reward)"),
        ([("u", [], {"id": "a"}, 1.0)], "examples[0] context must be a dict, got []"),
        ([("u", {}, "a", 1.0)], "examples[0] item must be a dict, got 'a'"),
        ([("u", {}, {"id": "a", "features": [1]}, 1.0)], "item['features'] must be a dict, got [1]"),
        ([("u", {"x": [1, 2]}, {"id": "a"}, 1.0)], "context field 'x' must be a number or a string, got [1, 2]"),
    ],
)
def test_infer_rejects_bad_examples(examples, message):
    with pytest.raises(FeatureError) as info:
        FeatureNetConfig.infer(examples)
    assert message in str(info.value)


def test_infer_rejects_unknown_overrides():
    with pytest.raises(FeatureError, match=r"unknown overrides \['outputdim'\]"):
        FeatureNetConfig.infer([("u", {}, {"id": "a"}, 1.0)], outputdim=3)
