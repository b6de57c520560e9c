"""One VW learner for many workers (policy_learner=role), on the real broker and Redis: two workers decide,
one ``eddy learner`` trains from the outcomes topic. Its example count equals the joined outcomes, none lost
and none counted twice across a crash of the learner before a commit and a SIGKILL; workers swap in its snapshots and their decisions
name the snapshot that decided."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from stream.client import EddyClient
from stream.events import Feedback, Item, Query
from stream.store import RedisStore

from .helpers import read_json, wait_for, worker_env

pytestmark = pytest.mark.integration

ROLE = {"policy": "vw:exploration=epsilon,epsilon=0.2", "policy_learner": "role", "learner_snapshot_s": 0.5}


def _start(settings, verb: str, log, instance: str, fault: str = "") -> subprocess.Popen:
    env = worker_env(settings, instance_id=instance, **ROLE)
    env.pop("EDDY_FAULT", None)
    if fault:
        env["EDDY_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "stream.cli", verb], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)


def _round(settings, tag: str, n: int, asked: int) -> None:
    """``n`` queries (20 users, so every partition), then a reward for each one's chosen item."""
    client = EddyClient(settings)
    for i in range(n):
        client.send(Query(request_id=f"{tag}{i}", user_id=f"u{i % 20}", ts=time.time(), context={"hour": 3.0},
                          candidates=(Item("a"), Item("b"), Item("c"))))
    client.flush()
    predictions = read_json(settings, "predictions", n=asked + n, timeout_s=180)
    chosen = {p["request_id"]: (p["user_id"], p["chosen"][0]) for p in predictions}
    for i in range(n):
        user, item = chosen[f"{tag}{i}"]
        client.send(Feedback(f"{tag}{i}", user, item, 1.0 if item == "b" else 0.0, time.time()))
    client.flush()


def _learner(settings) -> dict:
    saved = RedisStore.from_settings(settings).load_learner(settings.group, "vw")
    return {"version": int(saved.get("version", 0)), "counts": json.loads(saved.get("counts", b"{}"))}


def test_two_workers_one_learner_learn_every_outcome_once_across_a_learner_sigkill(settings, live_model, tmp_path):
    log = tmp_path / "processes.log"
    procs = [_start(settings, "worker", log, "w0"), _start(settings, "worker", log, "w1")]
    # The first learner dies just before its first commit, with examples learned.
    learner = _start(settings, "learner", log, "l0", fault="crash_before_learner_commit")
    try:
        wait_for(lambda: log.read_text(errors="replace").count("claimed epochs") >= 2, timeout_s=180)
        _round(settings, "a", 40, asked=0)
        assert learner.wait(timeout=120) == 86
        crashed = _learner(settings)
        learner = _start(settings, "learner", log, "l0")
        wait_for(lambda: len(read_json(settings, "outcomes", timeout_s=5, idle_s=1)) == 40, timeout_s=120)
        wait_for(lambda: _learner(settings)["counts"].get("outcomes") == 40, timeout_s=120)
        # Both workers swap in a snapshot before the second round: its decisions name one.
        wait_for(lambda: len(st := RedisStore.from_settings(settings).read_stats(settings.group)) == 2
                 and all(w.get("policy_swaps", 0) >= 1 for w in st.values()), timeout_s=60)
        # The learner is SIGKILLed during (or right after) the second round, whatever it holds uncommitted.
        _round(settings, "b", 40, asked=40)
        wait_for(lambda: _learner(settings)["counts"].get("outcomes", 0) > 40, timeout_s=120)
        learner.send_signal(signal.SIGKILL)
        learner.wait(timeout=30)
        at_kill = _learner(settings)
        learner = _start(settings, "learner", log, "l0")
        wait_for(lambda: log.read_text(errors="replace").count("learner of policy vw") == 3, timeout_s=120)
        outcomes = wait_for(lambda: (o := read_json(settings, "outcomes", timeout_s=5, idle_s=1)) and len(o) == 80
                            and o, timeout_s=120)
        wait_for(lambda: _learner(settings)["counts"].get("outcomes") == 80, timeout_s=120)
        decisions = read_json(settings, "decisions", n=80, timeout_s=60)
        time.sleep(2)  # anything counted twice would show now
        final = _learner(settings)
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=30) == 0
        updates = read_json(settings, "model-updates", timeout_s=10, idle_s=2)
    finally:
        for p in procs + [learner]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        exits = [p.wait(timeout=60) for p in procs + [learner]]
    assert exits == [0, 0, 0], log.read_text(errors="replace")[-3000:]
    assert len({o["decision"]["request_id"] for o in outcomes}) == 80
    counts = final["counts"]
    assert counts["outcomes"] == 80 and counts["learned"] == 80, (counts, log.read_text(errors="replace")[-3000:])
    assert sum(v for k, v in counts.items() if k != "outcomes") == 80
    assert crashed == {"version": 0, "counts": {}}
    assert at_kill["counts"]["learned"] > 40 and final["version"] >= at_kill["version"] >= 2
    # Both workers decided, and the second round's decisions came from swapped-in snapshots.
    snapshots = [d.get("policy_snapshot") for d in decisions if d["request_id"].startswith("b")]
    assert all(s is not None and s >= 1 for s in snapshots), snapshots
    policy_updates = [u for u in updates if u["kind"] == "policy"]
    assert policy_updates and max(u["version"] for u in policy_updates) == final["version"]
    stats = RedisStore.from_settings(settings).read_stats(settings.group)
    assert sum(s.get("policy_learned", 0) for s in stats.values()) == 0  # the workers did not learn the policy
    assert sum(1 for s in stats.values() if s.get("predictions", 0) > 0) == 2


def test_a_second_learner_of_the_policy_fences_the_first(settings):
    from confluent_kafka import Producer

    from stream.config import replace
    from stream.learner import LearnerFenced, PolicyLearner

    s = replace(settings, policy=ROLE["policy"])
    announcer = Producer(s.producer_config())
    first = PolicyLearner(s)
    first.publish(announcer)
    second = PolicyLearner(s)  # resumes from the first's commit, and takes the epoch
    assert (second.version, second.epoch) == (1, first.epoch + 1)
    with pytest.raises(LearnerFenced, match="another learner of policy 'vw'"):
        first.publish(announcer)
    second.publish(announcer)
    assert _learner(s)["version"] == 2
    assert RedisStore.from_settings(s).learners(s.group) == {"vw": {"snapshot": 2}}  # what eddy stats prints
    announcer.flush(10)
