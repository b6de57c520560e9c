"""Slates through the real worker: a query with k = 3 logs three decisions, feedback on positions 1 and 2 joins
its own position's decision, and the position-aware log survives export (DSJSON, OBP) and replay."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

from stream import cli
from stream.client import EddyClient
from stream.events import Feedback, Item, Query
from stream.replay.dsjson import read_dsjson
from stream.replay.pipeline import ReplayOptions, replay
from stream.replay.targets import parse_target

from .helpers import read_json
from .test_replay import kafka_slice

pytestmark = pytest.mark.integration

N = 20
ITEMS = tuple(Item(x) for x in "abcdef")


def test_a_position_aware_log_survives_the_worker_export_and_replay(settings, live_model, worker_thread, tmp_path,
                                                                     capsys):
    s = dataclasses.replace(settings, policy="softmax:temperature=0.5")
    client = EddyClient(s)
    with worker_thread(s):
        now = time.time()
        for i in range(N):
            client.send(Query(f"s{i}", f"u{i % 3}", now, {"hour": 3.0}, ITEMS, k=3))
        client.flush()
        decisions = read_json(s, "decisions", n=3 * N, timeout_s=60)
        by = {(d["request_id"], d.get("position", 0)): d for d in decisions}
        for i in range(N):
            for j in (1, 2):
                d = by[(f"s{i}", j)]
                client.send(Feedback(f"s{i}", d["user_id"], d["candidates"][d["chosen_index"]]["id"], float(j),
                                     time.time(), position=j))
        client.flush()
        outcomes = read_json(s, "outcomes", n=2 * N, timeout_s=60)
        predictions = read_json(s, "predictions", n=N, timeout_s=30)

    # Three decisions per query, three different items, the prediction showing them in position order.
    assert len(decisions) == 3 * N and set(by) == {(f"s{i}", j) for i in range(N) for j in range(3)}
    for p in predictions:
        slate = [by[(p["request_id"], j)] for j in range(3)]
        items = [d["candidates"][d["chosen_index"]]["id"] for d in slate]
        assert p["chosen"] == items and len(set(items)) == 3
        assert [d.get("taken", []) for d in slate] == [[], [slate[0]["chosen_index"]],
                                                        [slate[0]["chosen_index"], slate[1]["chosen_index"]]]
        assert all(d["pmf"][t] == 0 for d in slate for t in d.get("taken", []))
    # Each feedback joined its own position's decision.
    assert len(outcomes) == 2 * N
    for o in outcomes:
        d = o["decision"]
        assert o["reward"] == float(d["position"]) and d["position"] in (1, 2)
        assert o["item_id"] == by[(d["request_id"], d["position"])]["candidates"][d["chosen_index"]]["id"]

    # Replay from Kafka: positions 1 and 2 joined; the logging policy's IPS is its on-policy mean.
    options = ReplayOptions(targets=(parse_target("logging"), parse_target("greedy")), estimators=("ips", "snips"),
                            n_bootstrap=0, progress=False)
    out = replay(s, kafka_slice(), options)
    assert out.log.n_rounds == 2 * N and sorted(set(out.log.positions.tolist())) == [1, 2]
    assert out.report["positions"]["rounds_per_position"] == [0, N, N]
    assert out.report["positions"]["slate_estimates"]["slates"] == 0  # position 0 has no outcome: no full slate
    logging = {r.label: r for r in out.results}["logging"]
    assert logging.estimates["ips"].value == pytest.approx(1.5)
    greedy = {r.label: r for r in out.results}["greedy"]
    assert np.isfinite(greedy.estimates["snips"].value)

    # Export with every position (position 0 given reward 0), then replay the file: positions read back.
    dsjson, npz, report = tmp_path / "slates.dsjson", tmp_path / "slates.npz", tmp_path / "r.json"
    flags = ["--bootstrap", s.bootstrap, "--topic-prefix", s.topic_prefix, "--missing-reward", "0"]
    assert cli.main(["export", *flags, "--format", "dsjson", "--output", str(dsjson)]) == 0
    rounds = read_dsjson(dsjson)
    assert sorted((r.decision.request_id, r.decision.position) for r in rounds) == sorted(by)
    assert all(r.reward == float(r.decision.position) for r in rounds)
    assert cli.main(["export", *flags, "--format", "obp", "--output", str(npz)]) == 0
    fb = dict(np.load(npz))
    assert int(fb["len_list"]) == 3 and np.bincount(fb["position"]).tolist() == [N, N, N]
    capsys.readouterr()
    assert cli.main(["replay", "--source", str(dsjson), "--len-list", "2", "--policy", "logging",
                     "--estimators", "ips", "--bootstrap", "0", "--output-json", str(report),
                     "--plot", str(tmp_path / "r.png")]) == 0
    assert "positions: 2" in capsys.readouterr().out
    written = json.loads(report.read_text())
    assert written["n_rounds"] == 2 * N and written["positions"]["rounds_per_position"] == [N, N]
    assert written["policies"][0]["estimates"]["ips"]["value"] == pytest.approx(0.5)
    slate = written["positions"]["slate_estimates"]  # slates of 2 positions: rewards 0 and 1, total 1
    assert slate["slates"] == N and slate["incomplete_slates_dropped"] == 0
    assert slate["policies"]["logging"]["slate-ips"]["value"] == pytest.approx(1.0)
    assert slate["policies"]["logging"]["slate-rips"]["value"] == pytest.approx(1.0)


def test_each_position_without_a_reward_gets_its_own_default_reward(settings, live_model, worker_thread):
    s = dataclasses.replace(settings, policy="softmax:temperature=0.5", reward_wait_s=2.0, default_reward=-0.5)
    client = EddyClient(s)
    with worker_thread(s):
        client.send(Query("w1", "u1", time.time(), {"hour": 3.0}, ITEMS, k=3))
        client.flush()
        decisions = {d.get("position", 0): d for d in read_json(s, "decisions", n=3, timeout_s=60)}
        second = decisions[1]["candidates"][decisions[1]["chosen_index"]]["id"]
        client.send(Feedback("w1", "u1", second, 1.0, time.time(), position=1))
        client.flush()
        outcomes = read_json(s, "outcomes", n=3, timeout_s=60)
    got = sorted((o["decision"].get("position", 0), o["item_id"], o["reward"],
                  o.get("default", False)) for o in outcomes)
    chosen = {j: d["candidates"][d["chosen_index"]]["id"] for j, d in decisions.items()}
    assert got == [(0, chosen[0], -0.5, True), (1, second, 1.0, False), (2, chosen[2], -0.5, True)]
