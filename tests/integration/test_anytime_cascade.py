"""Anytime predictions and the IDK cascade through a real worker, on the real broker and Redis."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import msgspec
import pytest

from features.config import FeatureNetConfig
from features.train import train_feature_net
from stream import events
from stream.client import EddyClient
from stream.simulator import SimulatedWorld
from stream.store import RedisStore, open_registry

from .helpers import read_json, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cheap_model():
    """A second real feature net: linear (no hidden layer), trained on the same simulated world."""
    examples = SimulatedWorld(n_users=50, n_items=30, seed=3).training_examples(3000)
    cfg = FeatureNetConfig.infer(examples[:2700], hidden=(), output_dim=16)
    return train_feature_net(examples, cfg, epochs=1, progress=False, version="cheap", seed=0)


def _stored_users(settings, fn: str, users: list[str]) -> set[str]:
    store = RedisStore.from_settings(settings)
    return set(store.load_users(fn, store.partitions_of_users(fn, users, settings.partitions)))


def test_a_late_query_is_answered_with_approximated_features_and_its_feedback_learns(
        settings, live_model, worker_thread):
    world = SimulatedWorld(n_users=5, n_items=20, seed=4)
    client = EddyClient(settings)
    s = dataclasses.replace(settings, deadline_ms=50.0)
    with worker_thread(s):
        warm = world.query(0, ts=time.time(), user=0, prefix="warm")  # no deadline: exact, the means learn
        client.send(msgspec.structs.replace(warm, deadline_ms=0.0))
        client.flush()
        read_json(settings, "predictions", n=1)
        late = msgspec.structs.replace(world.query(1, ts=time.time() - 5, user=1, prefix="late"),
                                   candidates=warm.candidates)  # its 50 ms passed 5 s ago
        client.send(late)
        client.flush()
        preds = {p["request_id"]: p for p in read_json(settings, "predictions", n=2)}
        client.send(events.Feedback(late.request_id, late.user_id, preds[late.request_id]["chosen"][0], 1.0,
                                    time.time()))
        client.flush()
        [outcome] = read_json(settings, "outcomes", n=1)
        [update] = read_json(settings, "model-updates", n=1)
    ids = [c.id for c in late.candidates]
    assert "approximated" not in preds[warm.request_id]
    assert preds[late.request_id]["approximated"] == ids
    decs = {d["request_id"]: d for d in read_json(settings, "decisions", n=2)}
    assert decs[late.request_id]["approximated"] == list(range(len(ids)))
    assert "approximated" not in decs[warm.request_id]
    assert outcome["decision"]["approximated"] == list(range(len(ids)))  # replay reads it from the outcome too
    assert update["user_id"] == late.user_id and update["summary"]["delta_norm"] > 0


def test_the_cascade_answers_cheap_when_sure_escalates_otherwise_and_each_version_learns(
        settings, live_model, cheap_model, worker_thread):
    registry = open_registry(settings)
    registry.register(cheap_model, {"source": "test"})
    world = SimulatedWorld(n_users=5, n_items=20, seed=5)
    client = EddyClient(settings)
    # margin 1e9: every choice is too close to call for the cheap model, so every query with two
    # or more candidates escalates; a single candidate has nothing to decide and stays cheap
    s = dataclasses.replace(settings, cascade_cheap_version="cheap", cascade_margin=1e9)
    with worker_thread(s) as w:
        many = world.query(0, ts=time.time(), user=0, prefix="many")
        one = msgspec.structs.replace(world.query(1, ts=time.time(), user=1, prefix="one"),
                                  candidates=many.candidates[:1])
        client.send(many)
        client.send(one)
        client.flush()
        preds = {p["request_id"]: p for p in read_json(settings, "predictions", n=2)}
        for q in (many, one):
            client.send(events.Feedback(q.request_id, q.user_id, preds[q.request_id]["chosen"][0], 1.0, time.time()))
        client.flush()
        read_json(settings, "model-updates", n=2)
        time.sleep(1.5)  # the worker publishes its counters between batches
        stats = dict(w.worker.stats)
    decs = {d["request_id"]: d for d in read_json(settings, "decisions", n=2)}
    assert decs[many.request_id]["escalated"] is True
    assert decs[many.request_id]["feature_net_version"] == live_model.version
    assert preds[many.request_id]["versions"]["feature_net"] == live_model.version
    assert "escalated" not in decs[one.request_id] and decs[one.request_id]["feature_net_version"] == "cheap"
    assert _stored_users(settings, live_model.version, [many.user_id, one.user_id]) == {many.user_id}
    assert _stored_users(settings, "cheap", [many.user_id, one.user_id]) == {one.user_id}
    assert stats["cascade_escalated"] == 1 and stats["cascade_cheap"] == 1


def test_an_unknown_cheap_version_stops_the_worker_with_one_line(settings, live_model):
    out = subprocess.run([sys.executable, "-m", "stream.cli", "worker"], capture_output=True, text=True, timeout=120,
                         env=worker_env(settings, cascade_cheap_version="nope"))
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == ("eddy worker: cascade_cheap_version 'nope' is not a registered "
                                                   "feature-net version")
