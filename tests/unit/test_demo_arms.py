"""The demo's in-process arms, the live arm's queries and the report, on a small simulated stream."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.demo import arms, data, report
from stream.demo.live import LiveRun
from stream.training import TrainOptions, data_range, train

pytestmark = pytest.mark.unit

OPTS = TrainOptions(epochs=1, batch_size=256, output_dim=4, progress=False)


@pytest.fixture(scope="module")
def setup():
    ds = data.simulated(1200, seed=5)
    tr, stream = ds.records[:800], ds.records[800:]
    model = train(tr, OPTS, version="v1", seed=0)
    return ds, tr, stream, model


def test_training_records_the_data_range_and_a_held_out_metric(setup):
    ds, tr, _, model = setup
    assert model.meta["data_range"] == data_range(tr) == {"from_ts": 0.0, "to_ts": 799.0, "n_examples": 800}
    assert model.metrics["n_val"] == 80 and np.isfinite(model.metrics["val_rmse"])


def test_frozen_arm_is_the_offline_model_prediction(setup):
    _, _, stream, model = setup
    a = arms.frozen_offline(model, stream)
    expected = [float(model.predict(r["user_id"], r["context"], [r["item"]])[0]) for r in stream]
    np.testing.assert_allclose(a.pred, expected, rtol=1e-5, atol=1e-5)
    assert a.cpu_s >= 0 and a.wall_s >= 0


def test_periodic_retrain_without_retrains_is_the_frozen_arm(setup):
    _, tr, stream, model = setup
    frozen = arms.frozen_offline(model, stream)
    none = arms.periodic_retrain(model, tr, stream, OPTS, every=len(stream), progress=False)
    np.testing.assert_array_equal(none.pred, frozen.pred)
    two = arms.periodic_retrain(model, tr, stream, OPTS, every=150, progress=False)
    assert [r["at"] for r in two.extra["retrains"]] == [150, 300]
    assert [r["examples"] for r in two.extra["retrains"]] == [950, 1100]
    # Before the first retrain: the same net, embedded 150 rows at a time instead of all at once (a float32
    # matrix product's last bits depend on its row count, in numpy's BLAS as in torch's: equal to rounding).
    np.testing.assert_allclose(two.pred[:150], frozen.pred[:150], rtol=1e-6, atol=0)
    assert not np.allclose(two.pred[150:], frozen.pred[150:])


def test_the_online_arm_starts_each_user_where_the_worker_does_and_then_learns(setup):
    _, _, stream, model = setup
    frozen = arms.frozen_offline(model, stream)
    online = arms.online_hybrid(model, stream)
    first = np.array([i == next(j for j, q in enumerate(stream) if q["user_id"] == r["user_id"])
                      for i, r in enumerate(stream)])
    # a user's first rating: their offline weights or the population prior, as the worker's fresh model
    np.testing.assert_allclose(online.pred[first], frozen.pred[first], rtol=1e-5, atol=1e-5)
    assert not np.allclose(online.pred[~first], frozen.pred[~first], atol=1e-3)  # then it has learned


OUTSIDE = {
    "biased_mf": lambda tr, stream: arms.river_biased_mf(tr, stream, seed=1),
    "baseline": arms.river_baseline,
    "funk_mf": lambda tr, stream: arms.river_funk_mf(tr, stream, seed=1),
    "user_mean": arms.user_mean,
}


@pytest.mark.parametrize("key", sorted(OUTSIDE))
def test_outside_references_predict_before_they_learn(setup, key):
    _, tr, stream, _ = setup
    base = OUTSIDE[key](tr, stream)
    assert base.key == key and len(base.pred) == len(stream) and np.isfinite(base.pred).all()
    changed = [dict(r) for r in stream]
    changed[100] = {**changed[100], "reward": changed[100]["reward"] + 5.0}
    other = OUTSIDE[key](tr, changed)
    np.testing.assert_array_equal(base.pred[:101], other.pred[:101])  # rating 100's own label is unseen
    assert not np.array_equal(base.pred[101:], other.pred[101:])


def test_user_mean_is_the_mean_of_the_users_earlier_ratings():
    rec = lambda u, y: {"user_id": u, "reward": y}  # noqa: E731
    a = arms.user_mean([rec("u", 4.0), rec("v", 2.0)], [rec("u", 1.0), rec("w", 5.0), rec("u", 3.0), rec("w", 1.0)])
    np.testing.assert_allclose(a.pred, [4.0, (4 + 2 + 1) / 3, 2.5, 5.0])


def test_live_queries_hold_the_rated_item_and_sampled_others(setup):
    ds, _, stream, _ = setup
    run = LiveRun(settings=None, stream=stream, catalog=ds.catalog, run_id="r", n_candidates=5, seed=3)
    q = run.query(7, ts=1.0)
    ids = [c.id for c in q.candidates]
    assert q.request_id == "r-7" and q.user_id == stream[7]["user_id"] and q.context == stream[7]["context"]
    assert len(ids) == 5 == len(set(ids)) and ids.count(stream[7]["item"]["id"]) == 1
    assert run.query(7, ts=2.0).candidates == q.candidates  # seeded per rating
    assert {len(run.query(i, ts=1.0).candidates) for i in range(50)} == {5}
    one = LiveRun(settings=None, stream=stream, catalog=ds.catalog, run_id="r", n_candidates=1)
    assert [c.id for c in one.query(3, ts=1.0).candidates] == [stream[3]["item"]["id"]]


def test_report_has_one_row_per_arm_and_strict_json(setup, tmp_path):
    _, tr, stream, model = setup
    y = np.array([r["reward"] for r in stream])
    result = [arms.frozen_offline(model, stream), arms.river_biased_mf(tr, stream)]
    dicts = [{"key": a.key, "label": a.label, "pred": a.pred, "cpu_s": a.cpu_s, "wall_s": a.wall_s, "note": a.note}
             for a in result]
    dicts[1]["pred"] = dicts[1]["pred"].copy()
    dicts[1]["pred"][:10] = np.nan  # unanswered
    known = np.ones(len(stream), dtype=bool)  # no new users: that column is NaN -> null
    rows = report.arm_rows(dicts, y, known)
    assert rows[1]["answered"] == len(stream) - 10
    text = report.table(rows)
    assert "(a) offline model" in text and "(b) river reco.BiasedMF" in text
    summary = {"title": "t", "data": {"description": "d", "fallback_reason": None}, "split": {"n_train": 1, "n_stream": 2},
               "offline": {"val_rmse": 1.0, "n_val": 1, "cpu_s": 1.0, "wall_s": 1.0},
               "worker": {"learner": "river", "policy": "greedy", "processing": "exactly_once"},
               "live": {"worker": "thread", "ratings_per_s": 1.0, "events_per_s": 6.0,
                        "latency_ms": {"p50": 1.0, "p99": 2.0}, "worker_latency_ms": {"p50": float("nan")}}}
    paths = report.write(tmp_path, rows=rows, arms=dicts, y=y, summary=summary, window=100)
    doc = json.loads(paths["report.json"].read_text())
    assert [a["key"] for a in doc["arms"]] == ["frozen", "biased_mf"]
    assert doc["arms"][0]["rmse_new_users"] is None
    assert paths["prequential.png"].stat().st_size > 1000
    assert "| (a) offline model" in paths["report.md"].read_text()


def test_a_cached_arm_scores_its_first_ratings_like_the_frozen_arm_and_reports_its_hits(setup):
    from features.cache import FeatureCache

    _, _, stream, model = setup
    frozen = arms.frozen_offline(model, stream)
    cached = arms.cached_net("c", "cached", model, stream, n=100, cache=FeatureCache(model.version, capacity=10_000))
    np.testing.assert_allclose(cached.pred[:100], frozen.pred[:100], rtol=1e-5, atol=1e-5)
    assert np.isnan(cached.pred[100:]).all() and cached.extra["scored"] == 100
    assert cached.extra["hits"] + cached.extra["misses"] == 100 and "hit rate" in cached.note


def test_velox_is_online_learning_restarted_from_each_retrain(setup):
    _, tr, stream, model = setup
    kept: list = []
    arms.periodic_retrain(model, tr, stream, OPTS, every=len(stream), progress=False, keep=kept)
    assert [(s, m, cpu) for s, m, cpu, _ in kept] == [(0, model, 0.0)]
    np.testing.assert_array_equal(arms.velox(kept, stream).pred, arms.online_hybrid(model, stream).pred)
    kept = []
    arms.periodic_retrain(model, tr, stream, OPTS, every=150, progress=False, keep=kept)
    assert [s for s, *_ in kept] == [0, 150, 300] and all(cpu > 0 for _, _, cpu, _ in kept[1:])
    v = arms.velox(kept, stream)
    for (start, m, _, _), end in zip(kept, [150, 300, len(stream)]):  # each segment: online from that retrain
        np.testing.assert_array_equal(v.pred[start:end], arms.online_hybrid(m, stream[start:end]).pred)
    assert v.cpu_s >= sum(cpu for _, _, cpu, _ in kept) and v.key == "velox"


def test_the_report_shows_answers_on_time_where_an_arm_answers_queries(setup):
    _, _, stream, model = setup
    y = np.array([r["reward"] for r in stream])
    a = arms.frozen_offline(model, stream)
    dicts = [{"key": "x", "label": "bulk", "pred": a.pred, "on_time": None},
             {"key": "y", "label": "served", "pred": a.pred, "on_time": 0.25}]
    rows = report.arm_rows(dicts, y, np.ones(len(stream), dtype=bool))
    lines = report.table(rows).splitlines()
    assert "on time" in lines[0] and "| -" in lines[2] and "| 25.0%" in lines[3]
    assert report._on_time({"serving_layer": {"deadline_ms": 40.0, "deadline_calibrated": True}})[0].startswith(
        "On time: the share of answers within 40 ms")
