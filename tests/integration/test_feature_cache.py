"""The text feature-net kind and the feature cache, live through a worker on the real broker and Redis:
a worker serving the text kind answers queries from its cache of text encodings, and a hot swap with the
cache on serves each version its own features (the new version's cache warmed before it serves)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from features import FeatureModel, FeatureNetConfig, train_feature_net
from stream.client import EddyClient
from stream.engine.joins import JoinRecord
from stream.events import Item, Query
from stream.store import RedisStore, open_registry

from .helpers import make_live, read_json, wait_for

pytestmark = pytest.mark.integration

TITLES = ["Toy Story (1995) | Animation, Children's, Comedy", "Heat (1995) | Action, Crime, Thriller",
          "Sense and Sensibility (1995) | Drama, Romance", "GoldenEye (1995) | Action, Adventure, Thriller",
          "Casino (1995) | Drama, Crime", "Babe (1995) | Children's, Comedy, Drama"]


def _item(i: int) -> Item:
    return Item(f"m{i}", {"title": TITLES[i], "year": 1995.0})


def _queries(prefix: str, n: int) -> list[Query]:
    return [Query(request_id=f"{prefix}{k}", user_id=f"u{k % 5}", ts=time.time(), context={"age": float(20 + k % 3)},
                  candidates=tuple(_item((k + j) % len(TITLES)) for j in range(3))) for k in range(n)]


@pytest.fixture(scope="module")
def text_model_dir(tmp_path_factory):
    """A small text-kind model (the encoder load and the training take seconds: once per module)."""
    rng = np.random.default_rng(0)
    ex = [(f"u{rng.integers(5)}", {"age": float(rng.integers(20, 23))}, _item(i := int(rng.integers(6))).to_dict(),
           float(i % 3)) for _ in range(300)]
    cfg = FeatureNetConfig.infer(ex, kind="text", item_text="title", output_dim=4, hidden=(8,))
    model = train_feature_net(ex, cfg, epochs=1, batch_size=64, progress=False, version="t1", device="cpu")
    out = tmp_path_factory.mktemp("text-model") / "t1"
    model.save(out)
    return out


def _send(settings, queries: list[Query]) -> None:
    client = EddyClient(settings)
    for q in queries:
        client.send(q)
    client.flush()


def test_a_worker_serving_the_text_kind_answers_from_its_cache_of_text_encodings(settings, worker_thread,
                                                                                  text_model_dir):
    make_live(settings, FeatureModel.load(text_model_dir))
    queries = _queries("t", 30)
    with worker_thread(settings) as w:
        _send(settings, queries)
        predictions = read_json(settings, "predictions", n=len(queries), timeout_s=120)
        figures = w.worker.feature_caches.figures()
    assert {p["request_id"] for p in predictions} == {q.request_id for q in queries}
    assert {p["versions"]["feature_net"] for p in predictions} == {"t1"}
    # six titles: at most one miss each per batch that first met them, every other lookup a hit
    assert figures["version"] == "t1" and figures["entries"] == len(TITLES)
    assert figures["hits"] + figures["misses"] == 3 * len(queries) and figures["hits"] > figures["misses"]


def _embeddings(settings, request_ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
    """(feature-net version, embeddings) of each decision, as the join store holds them."""
    store = RedisStore.from_settings(settings)
    out = {}
    for p in range(settings.partitions):
        for rid, blob in store.load_decisions({r: p for r in request_ids}).items():
            record = JoinRecord.unpack(blob)
            out[rid] = (record.decision.feature_net_version, record.embeddings)
    return out


def test_a_hot_swap_with_the_cache_serves_each_version_its_own_features(settings, worker_thread, live_model,
                                                                         trained_model_dir):
    v2 = train_feature_net([(f"u{k % 5}", {"hour": float(k % 24), "device": "ios"}, {"id": f"i{k % 7}"}, float(k % 2))
                            for k in range(400)], live_model.config, epochs=1, progress=False, version="v2", seed=5)
    open_registry(settings).register(v2, {"source": "test"})
    contexts = [{"hour": float(h), "device": "ios"} for h in range(6)]
    items = [Item(f"i{k}") for k in range(4)]

    def queries(prefix):
        return [Query(request_id=f"{prefix}{k}", user_id=f"u{k}", ts=time.time(), context=c, candidates=tuple(items))
                for k, c in enumerate(contexts)]

    before, after = queries("b"), queries("a")
    settings = dataclasses.replace(settings, feature_cache_kinds="text,mlp")  # the MLP's rows are cached too
    with worker_thread(settings) as w:
        _send(settings, before)
        read_json(settings, "predictions", n=len(before), timeout_s=60)
        open_registry(settings).promote("v2")
        wait_for(lambda: w.worker.engine.model.version == "v2", timeout_s=30)
        warmed = w.worker.feature_caches.figures()
        _send(settings, after)
        read_json(settings, "predictions", n=len(before) + len(after), timeout_s=60)
        figures = w.worker.feature_caches.figures()
    assert warmed["version"] == "v2" and warmed["entries"] == len(contexts) * len(items)  # warmed before serving
    assert figures["misses"] == warmed["misses"]  # every v2 query was served from the warmed cache
    stored = _embeddings(settings, [q.request_id for q in before + after])
    for q in before + after:
        version, emb = stored[q.request_id]
        model = live_model if q in before else v2
        assert version == model.version
        np.testing.assert_allclose(emb, model.embed(q.context, [c.to_dict() for c in q.candidates]),
                                   rtol=1e-5, atol=1e-6)
    one = before[0].context, [c.to_dict() for c in items]
    assert not np.allclose(live_model.embed(*one), v2.embed(*one))  # the versions' features differ


def test_lsh_coarsening_live_flags_the_decision_and_keeps_versions_apart(settings, worker_thread, live_model):
    """``lsh_bits`` set: a query whose context is a hair from an earlier one's reads that one's cached rows
    and its decision and prediction say so; the same input again is an exact hit (not flagged); after a hot
    swap the new version's cache holds its own features (warmed from the inputs, computed by v2)."""
    v2 = train_feature_net([(f"u{k % 5}", {"hour": float(k % 24), "device": "ios"}, {"id": f"i{k % 7}"}, float(k % 2))
                            for k in range(400)], live_model.config, epochs=1, progress=False, version="v2", seed=5)
    open_registry(settings).register(v2, {"source": "test"})
    items = tuple(Item(f"i{k}") for k in range(4))
    near = {"base": {"hour": 3.0, "device": "ios"}, "near": {"hour": 3.001, "device": "ios"},
            "same": {"hour": 3.0, "device": "ios"}}

    def query(rid, name):  # one user: one partition, so the queries are decided in the order sent
        return Query(request_id=rid, user_id="u1", ts=time.time(), context=near[name], candidates=items)

    settings = dataclasses.replace(settings, feature_cache_kinds="mlp", lsh_bits=8)
    first = [query("b1", "base"), query("b2", "near"), query("b3", "same")]
    second = [query("a1", "near"), query("a2", "same")]
    with worker_thread(settings) as w:
        _send(settings, first)
        read_json(settings, "predictions", n=len(first), timeout_s=60)
        open_registry(settings).promote("v2")
        wait_for(lambda: w.worker.engine.model.version == "v2", timeout_s=30)
        _send(settings, second)
        predictions = {p["request_id"]: p for p in read_json(settings, "predictions", n=5, timeout_s=60)}
        decisions = {d["request_id"]: d for d in read_json(settings, "decisions", n=5, timeout_s=60)}
        stats = w.worker.stats
    ids = [c.id for c in items]
    assert [decisions[r].get("coarsened") for r in ("b1", "b2", "b3", "a1", "a2")] == [None, [0, 1, 2, 3], None,
                                                                                      [0, 1, 2, 3], None]
    assert predictions["b2"]["coarsened"] == ids and "coarsened" not in predictions["b3"]
    assert stats.get("queries_coarsened") == 2 and stats.get("candidates_coarsened") == 8
    stored = _embeddings(settings, list(decisions))
    base = [c.to_dict() for c in items]
    for rid, model in (("b1", live_model), ("b2", live_model), ("a1", v2), ("a2", v2)):
        version, emb = stored[rid]  # coarsened rows are the bucket's first input's, under the deciding version
        assert version == model.version
        np.testing.assert_allclose(emb, model.embed(near["base"], base), rtol=1e-5, atol=1e-6)
    assert np.array_equal(stored["b2"][1], stored["b1"][1])  # b1's rows, read again for b2's near input
    assert not np.array_equal(live_model.embed(near["near"], base), live_model.embed(near["base"], base))
    assert not np.allclose(stored["a1"][1], stored["b1"][1])  # v2 served v2's rows, not v1's
    for rid in ("b2", "a1"):  # the propensity is that of the (coarsened) features the policy scored
        d = decisions[rid]
        assert d["propensity"] == d["pmf"][d["chosen_index"]]
