"""The hybrid prediction and online-learning loop, on the real broker and Redis."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learners import load_user_model
from stream import events
from stream.client import EddyClient, drain, reader
from stream.kafka_io import headers_dict
from stream.simulator import SimulatedWorld
from stream.store import RedisStore

from .helpers import query_and_reward, read_dead_letters, read_json, wait_for

pytestmark = pytest.mark.integration


def _query(world: SimulatedWorld, n: int, user: int = 0, ts: float | None = None) -> events.Query:
    return world.query(n, ts=time.time() if ts is None else ts, user=user, prefix="req")


def _user_state(settings, fn: str, user: str):
    store = RedisStore.from_settings(settings)
    raw = store.load_users(fn, store.partitions_of_users(fn, [user], settings.partitions)).get(user)
    return None if raw is None else load_user_model(raw)


def test_query_yields_prediction_and_decision_with_versions(settings, live_model, worker_thread):
    world = SimulatedWorld(n_users=5, n_items=20, seed=1)
    client = EddyClient(settings)
    with worker_thread(settings):
        q = _query(world, 1)
        client.send(q)
        client.flush()
        [pred] = read_json(settings, "predictions", n=1)
        [dec] = read_json(settings, "decisions", n=1)
    assert pred["request_id"] == q.request_id and pred["user_id"] == q.user_id
    assert pred["versions"]["feature_net"] == live_model.version
    assert pred["versions"]["user_weights"] == 0
    assert pred["chosen"][0] in {c.id for c in q.candidates}
    assert len(pred["ranked"]) == len(q.candidates)
    assert dec["request_id"] == q.request_id
    assert abs(sum(dec["pmf"]) - 1) < 1e-6
    assert dec["propensity"] == pytest.approx(dec["pmf"][dec["chosen_index"]])
    assert dec["candidates"][dec["chosen_index"]]["id"] == pred["chosen"][0]


def test_feedback_changes_weights_and_the_next_prediction(settings, live_model, worker_thread):
    world = SimulatedWorld(n_users=5, n_items=20, seed=2)
    client = EddyClient(settings)
    with worker_thread(settings):
        q1 = _query(world, 1)
        p1, update = query_and_reward(settings, client, q1)
        q2 = events.Query("req2", q1.user_id, time.time(), q1.context, q1.candidates, 1)
        client.send(q2)
        client.flush()
        preds = read_json(settings, "predictions", n=2)
    assert update["kind"] == "user_weights" and update["user_id"] == q1.user_id
    assert update["version"] == 1 and update["summary"]["delta_norm"] > 0
    p2 = next(p for p in preds if p["request_id"] == "req2")
    assert p2["versions"]["user_weights"] == 1
    s1 = {r["item_id"]: r["score"] for r in p1["ranked"]}
    s2 = {r["item_id"]: r["score"] for r in p2["ranked"]}
    assert s2[p1["chosen"][0]] > s1[p1["chosen"][0]]  # reward 1 pulled the clicked item's score up
    assert _user_state(settings, live_model.version, q1.user_id).n_obs == 1
    [outcome] = read_json(settings, "outcomes", n=1)
    assert outcome["decision"]["request_id"] == q1.request_id and outcome["reward"] == 1.0


def test_duplicate_and_late_feedback_are_dead_lettered_and_unknown_is_held(settings, live_model, worker_thread):
    world = SimulatedWorld(n_users=5, n_items=20, seed=3)
    client = EddyClient(settings)
    with worker_thread(settings) as w:
        old = _query(world, 1, user=1, ts=time.time() - 2 * settings.join_window_s + 30)
        fresh = _query(world, 2, user=1)
        client.send(old)
        client.send(fresh)
        client.flush()
        read_json(settings, "predictions", n=2)
        item = fresh.candidates[0].id
        good = events.Feedback(fresh.request_id, fresh.user_id, item, 1.0, time.time())
        client.send(good)
        client.send(good)  # the same feedback twice
        client.send(events.Feedback("never-asked", fresh.user_id, item, 1.0, time.time()))
        client.send(events.Feedback(old.request_id, old.user_id, old.candidates[0].id, 1.0, time.time()))
        client.send(events.Feedback(fresh.request_id + "x", "u2", item, 1.0, time.time()))
        client.flush()
        dead = read_dead_letters(settings, n=2)
        updates = read_json(settings, "model-updates", n=1, idle_s=2)
        time.sleep(1.5)  # let the worker publish its counters
        stats = dict(w.worker.stats)
    reasons = sorted(headers_dict(m)["eddy.reason"] for m in dead)
    assert reasons == ["duplicate_feedback", "late_feedback"]
    assert [u["request_id"] for u in updates] == [fresh.request_id]
    assert _user_state(settings, live_model.version, fresh.user_id).n_obs == 1
    assert stats["feedback_held"] == 2  # no decision yet: held for the join window (test_held_feedback.py)
    assert stats["consumed"] == (stats["predictions"] + stats["feedback_applied"] + stats["feedback_held"]
                                 + stats["dead_lettered"])


MALFORMED = [
    ("queries", b"not json at all", "not_json"),
    ("queries", b"[1, 2, 3]", "not_object"),
    ("queries", b'{"schema": "eddy.query/1", "user_id": "u1", "ts": 1, "candidates": ["a"]}', "missing_field"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": 5, "user_id": "u1", "ts": 1, "candidates": ["a"]}', "bad_type"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": "r", "user_id": "u1", "ts": NaN, "candidates": ["a"]}', "non_finite_number"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": "r", "user_id": "u1", "ts": 1, "context": {"x": Infinity}, "candidates": ["a"]}', "non_finite_number"),
    ("queries", b'{"schema": "eddy.query/9", "request_id": "r", "user_id": "u1", "ts": 1, "candidates": ["a"]}', "unknown_schema_version"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": "r", "user_id": "u1", "ts": 1, "candidates": []}', "bad_type"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": "r", "user_id": "u1", "ts": 1, "candidates": ["a"], "k": 3}', "bad_value"),
    ("queries", b'{"schema": "eddy.query/1", "request_id": "r", "user_id": "u1", "ts": 1, "candidates": ["' + b"a" * 300_000 + b'"]}', "oversized"),
    ("queries", None, "empty"),
    ("feedback", b'{"schema": "eddy.feedback/1", "request_id": "r", "user_id": "u1", "item_id": "a", "reward": "high", "ts": 1}', "bad_type"),
    ("feedback", b'{"schema": "eddy.feedback/1", "request_id": "r", "user_id": "u1", "item_id": "a", "ts": 1}', "missing_field"),
    ("feedback", b'{"schema": "eddy.prediction/1"}', "wrong_schema"),
    ("feedback", b"\xff\xfe\x00", "not_json"),
]


def test_malformed_events_are_dead_lettered_with_original_bytes_and_counts_reconcile(settings, live_model, worker_thread):
    world = SimulatedWorld(n_users=5, n_items=20, seed=4)
    client = EddyClient(settings)
    with worker_thread(settings) as w:
        for topic, raw, _ in MALFORMED:
            client.send_raw(settings.topic(topic), b"u1", raw)
        q = _query(world, 1)
        client.send(q)  # the worker keeps going after bad input
        client.flush()
        dead = read_dead_letters(settings, n=len(MALFORMED))
        [pred] = read_json(settings, "predictions", n=1)
        time.sleep(0.5)
        stats = dict(w.worker.stats)
    assert pred["request_id"] == q.request_id
    assert len(dead) == len(MALFORMED)
    by_value = {}
    for m in dead:
        by_value.setdefault(m.value(), []).append(headers_dict(m))
    for topic, raw, reason in MALFORMED:
        hdrs = by_value[raw].pop()
        assert hdrs["eddy.reason"] == reason, (raw[:80], hdrs)
        assert hdrs["eddy.source.topic"] == settings.topic(topic)
        assert int(hdrs["eddy.source.offset"]) >= 0 and hdrs["eddy.error"]
    assert stats["dead_lettered"] == len(MALFORMED)
    assert stats["consumed"] == len(MALFORMED) + 1 == stats["predictions"] + stats["dead_lettered"]


@pytest.mark.parametrize("policy, learner", [
    ("softmax:temperature=0.5", "river"),
    ("thompson:n_samples=32", "bayes"),
    ("ucb:alpha=1,epsilon=0.05", "bayes"),
    ("vw:exploration=squarecb", "river"),
])
def test_every_policy_serves_and_learns_through_the_loop(settings, live_model, worker_thread, policy, learner):
    import dataclasses

    from stream.loop import run_closed_loop

    s = dataclasses.replace(settings, policy=policy, learner=learner)
    with worker_thread(s):
        result = run_closed_loop(s, count=60, rate=200, users=5, items=10, wait_s=30)
        updates = read_json(s, "model-updates", n=60, timeout_s=30)
    assert result["unanswered"] == 0
    decisions = read_json(s, "decisions", n=60)
    assert {d["policy"] for d in decisions} == {policy.split(":")[0]}
    for d in decisions:
        assert abs(sum(d["pmf"]) - 1) < 1e-6 and d["propensity"] > 0
    assert len(updates) == 60


def test_a_retried_request_gets_its_logged_decision_again_through_the_optimistic_commit(
        settings, live_model, worker_thread):
    """Query batches decide without reading for a stored decision; the commit script refuses when one
    is there and the worker decides again with the check. A worker that trusted the optimistic batch
    would log a second decision for the retried request (another item, maybe) and show it."""
    world = SimulatedWorld(n_users=5, n_items=20, seed=3)
    client = EddyClient(settings)
    q = _query(world, 1)
    with worker_thread(settings) as wt:
        client.send(q)
        client.flush()
        [first] = read_json(settings, "predictions", n=1)

        def retried() -> bool:  # retries until one batch went the optimistic way (the held sweep ran)
            client.send(q)
            client.flush()
            time.sleep(0.3)
            return wt.worker.stats["optimistic_retried"] >= 1
        wait_for(retried, timeout_s=60, interval_s=0.2)
        fresh = _query(world, 2)
        client.send(fresh)
        client.flush()
        preds = read_json(settings, "predictions", timeout_s=30, idle_s=2)
        decisions = read_json(settings, "decisions", timeout_s=30, idle_s=2)
    mine = [p for p in preds if p["request_id"] == q.request_id]
    assert len(mine) >= 2 and all(p == first for p in mine)
    logged = [d for d in decisions if d["request_id"] == q.request_id]
    assert len(logged) == len(mine) and all(d == logged[0] for d in logged)
    assert [p["request_id"] for p in preds if p["request_id"] != q.request_id] == [fresh.request_id]
