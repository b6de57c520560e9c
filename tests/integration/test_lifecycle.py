"""Feature-net lifecycle on the real broker and Redis: promote / rollback hot-swap live workers,
retrain from the logged outcomes, and retrain when the online error degrades."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest
from confluent_kafka import Producer

from features.model import FeatureModel
from stream import cli, events
from stream.client import EddyClient
from stream.loop import run_closed_loop
from stream.registry import Registry
from stream.store import open_registry
from stream.simulator import SimulatedWorld

from .helpers import read_json

pytestmark = pytest.mark.integration

SWAP_S = 3.0  # a promote reaches the worker within its 1 s registry poll + the load; 3 s is the bound we assert


def _flags(s) -> list[str]:
    return ["--bootstrap", s.bootstrap, "--redis-url", s.redis_url, "--topic-prefix", s.topic_prefix,
            "--model-dir", s.model_dir]


def _registry(s) -> Registry:
    return open_registry(s)


def _register_copy(s, trained_model_dir, version: str) -> FeatureModel:
    model = FeatureModel.load(trained_model_dir)
    model.version = version
    _registry(s).register(model, {"source": "test-copy"})
    return model


def test_promote_and_rollback_hot_swap_without_losing_or_duplicating_a_query(settings, live_model, worker_thread,
                                                                          trained_model_dir):
    from features.train import train_feature_net

    examples = SimulatedWorld(n_users=50, n_items=30, seed=11).training_examples(1500)
    v2 = train_feature_net(examples, epochs=1, progress=False, version="v2", seed=1)
    _registry(settings).register(v2, {"source": "test"})
    world = SimulatedWorld(n_users=50, n_items=30, seed=12)
    client = EddyClient(settings)
    n, rate, promote_at, rollback_at = 1100, 100.0, 250, 650
    sent_at: dict[str, float] = {}
    with worker_thread(settings):
        start = time.monotonic()
        for i in range(n):
            while time.monotonic() < start + i / rate:
                time.sleep(0.001)
            # The schedule resumes where it was after each command: a command that took seconds (a slow
            # host) would otherwise be followed by a burst, leaving no query sent inside the window.
            if i == promote_at:
                called = time.monotonic()
                assert cli.main(["models", *_flags(settings), "promote", "v2"]) == 0
                t_promote = time.monotonic()
                start += t_promote - called
            if i == rollback_at:
                called = time.monotonic()
                assert cli.main(["models", "rollback", *_flags(settings)]) == 0
                t_rollback = time.monotonic()
                start += t_rollback - called
            q = world.query(i, ts=time.time(), prefix="swap-")
            sent_at[q.request_id] = time.monotonic()
            client.send(q)
        client.flush()
        read_json(settings, "predictions", n=n, timeout_s=120)
        predictions = read_json(settings, "predictions", timeout_s=60, idle_s=3)  # everything, late duplicates too
    counts = collections.Counter(p["request_id"] for p in predictions)
    assert set(counts) == set(sent_at), "a query was lost"
    assert max(counts.values()) == 1, f"answered twice: {[r for r, c in counts.items() if c > 1][:5]}"
    version = {p["request_id"]: p["versions"]["feature_net"] for p in predictions}
    before = [r for r, t in sent_at.items() if t < t_promote - 1.0]
    during = [r for r, t in sent_at.items() if t_promote + SWAP_S <= t < t_rollback]
    after = [r for r, t in sent_at.items() if t >= t_rollback + SWAP_S]
    assert before and during and after
    assert {version[r] for r in before} == {"v1"}
    assert {version[r] for r in during} == {"v2"}, "promote did not reach the live worker"
    assert {version[r] for r in after} == {"v1"}, "rollback did not reach the live worker"
    swaps = [u for u in read_json(settings, "model-updates", n=2) if u["kind"] == "feature_net"]
    assert [(u["version"], u["summary"]["replaced"]) for u in swaps] == [("v2", "v1"), ("v1", "v2")]


def test_rollback_with_no_earlier_version_is_a_clear_error(settings, live_model, capsys):
    assert cli.main(["models", "rollback", *_flags(settings)]) == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert _registry(settings).live() == "v1"


def test_retrain_from_the_log_records_its_held_out_metric_and_serves_offline_user_weights(
        settings, live_model, worker_thread):
    with worker_thread(settings):
        result = run_closed_loop(settings, count=300, rate=150, users=30, items=20, seed=4)
        assert result["answered"] == 300
        read_json(settings, "outcomes", n=300)
        assert cli.main(["retrain", "--min-examples", "100", "--epochs", "1", "--no-progress",
                         *_flags(settings)]) == 0
        registry = _registry(settings)
        assert registry.live() == "v2"
        entry = registry.show("v2")
        assert entry["source"] == "log" and entry["trigger"] == "manual"
        assert entry["data_range"]["n_examples"] == 300 and entry["data_range"]["from_ts"] <= entry["data_range"]["to_ts"]
        assert entry["metrics"]["n_val"] == 30 and np.isfinite(entry["metrics"]["val_rmse"])
        # The worker hot-swaps; a user's weights under v2 start from v2's offline-trained weights.
        v2 = registry.load("v2", device="cpu")
        user = next(iter(v2.user_weights))
        world = SimulatedWorld(n_users=30, n_items=20, seed=9)
        client = EddyClient(settings)
        deadline, k = time.monotonic() + 30, 0
        while True:  # the swap is asynchronous (1 s registry poll + load): ask until v2 answers
            k += 1
            q = world.query(k, ts=time.time(), user=int(user[1:]), prefix="after-")
            client.send(q)
            client.flush()
            p = next(p for p in read_json(settings, "predictions", n=300 + k) if p["request_id"] == q.request_id)
            if p["versions"]["feature_net"] == "v2" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert p["versions"]["feature_net"] == "v2", "the worker did not swap to the retrained version"
    expected = v2.predict(user, q.context, [c.to_dict() for c in q.candidates])
    got = {r["item_id"]: r["score"] for r in p["ranked"]}
    np.testing.assert_allclose([got[c.id] for c in q.candidates], expected, rtol=1e-4, atol=1e-4)
    assert p["versions"]["user_weights"] == 0


def test_retrain_watch_retrains_when_the_online_error_degrades(settings, live_model, worker_thread,
                                                              trained_model_dir, capsys):
    with worker_thread(settings):
        run_closed_loop(settings, count=200, rate=200, users=20, items=20, seed=5)
        read_json(settings, "outcomes", n=200)
    _register_copy(settings, trained_model_dir, "v2")
    _registry(settings).promote("v2")
    producer = Producer(settings.producer_config())
    for k, err in enumerate([0.5] * 60 + [1.5] * 60):  # one key: one partition, read in this order
        update = events.ModelUpdate(kind="user_weights", feature_net_version="v2", version=k + 1, user_id="u1",
                                    request_id=f"synthetic-{k}", summary={"n_obs": k + 1, "delta_norm": 0.1,
                                                                          "error": err}, ts=time.time())
        producer.produce(settings.topic("model-updates"), key=b"u1", value=events.encode(update))
    producer.flush(10)
    assert cli.main(["retrain", "--watch", "--from-beginning", "--window", "50", "--threshold", "1.2",
                     "--max-retrains", "1", "--max-seconds", "120", "--min-examples", "50", "--epochs", "1",
                     "--no-progress", *_flags(settings)]) == 0
    registry = _registry(settings)
    assert registry.live() == "v3", capsys.readouterr().err
    entry = registry.show("v3")
    assert entry["trigger"].startswith("degraded: rolling RMSE")
    assert entry["baseline_rmse"] == pytest.approx(0.5) and entry["rolling_rmse"] > 1.2 * 0.5
    assert np.isfinite(entry["metrics"]["val_rmse"]) and entry["data_range"]["n_examples"] == 200
    err = capsys.readouterr().err
    assert "retraining from" in err and "degraded" in err and "promoted v3" in err
    swaps = [u for u in read_json(settings, "model-updates", timeout_s=30, idle_s=2) if u["kind"] == "feature_net"]
    assert swaps[-1]["version"] == "v3"
