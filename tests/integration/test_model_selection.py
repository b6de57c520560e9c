"""Model selection live: ``eddy worker --challengers v2 --selection exp3`` on the real broker and Redis.

Two real feature nets (the session's trained MLP, live, and a worse copy of it as the
challenger) answer simulated traffic. The decisions log which version answered and the
propensity over both draws; the selector and the shadow errors persist in Redis across a
worker killed with SIGKILL and restarted, counting each feedback once; ``eddy models
shadow`` shows them and ``eddy models promote`` refuses the worse version unless forced.
"""

from __future__ import annotations

import dataclasses
import signal

import numpy as np
import pytest
import torch

from bandits import make_policy
from features.model import FeatureModel
from stream import cli
from stream.engine.selection import decode_state, merged_errors
from stream.loop import run_closed_loop
from stream.replay.pipeline import ReplayOptions, replay
from stream.replay.slicing import SliceRequest
from stream.replay.targets import parse_target
from stream.store import RedisStore, open_registry

from .helpers import read_json, start_worker, wait_for

pytestmark = pytest.mark.integration

POLICY = "epsilon_greedy:epsilon=0.2"


def worse_copy(model: FeatureModel, version: str) -> FeatureModel:
    """The live MLP with seeded noise on every weight: a real feature net, and a worse one."""
    net = type(model.net)(model.config)
    net.load_state_dict(model.net.state_dict())
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0 * torch.randn(p.shape, generator=g))
    return FeatureModel(net, model.encoder, version=version, user_weights=model.user_weights, meta=model.meta)


def flags(s) -> list[str]:
    return ["--bootstrap", s.bootstrap, "--redis-url", s.redis_url, "--topic-prefix", s.topic_prefix,
            "--partitions", str(s.partitions), "--model-dir", s.model_dir]


def test_exp3_selects_versions_live_and_the_promote_gate_reads_the_shadow_errors(settings, live_model, tmp_path,
                                                                                  capsys):
    s = dataclasses.replace(settings, policy=POLICY)
    registry = open_registry(s)
    registry.register(worse_copy(live_model, "v2"), {"source": "test"})
    knobs = dict(policy=POLICY, challengers="v2", selection="exp3", selection_gamma=0.4, selection_eta=0.05,
                 selection_loss_scale=1.0, metrics_port=0)
    log = tmp_path / "worker.log"
    worker = start_worker(s, log, **knobs)
    try:
        first = run_closed_loop(s, count=200, rate=100, users=20, items=15, seed=1, prefix="a-", wait_s=60)
        assert first["answered"] == 200, log.read_text()[-3000:]
        read_json(s, "outcomes", n=200, timeout_s=60)
        worker.send_signal(signal.SIGKILL)  # the selector's state is in Redis, not in this process
        worker.wait(timeout=30)
        worker = start_worker(s, log, **knobs)
        second = run_closed_loop(s, count=200, rate=100, users=20, items=15, seed=2, prefix="b-", wait_s=60)
        assert second["answered"] == 200, log.read_text()[-3000:]
        outcomes = read_json(s, "outcomes", n=400, timeout_s=60)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert "model selection exp3: serving v2 beside the live version" in log.read_text()

    decisions = {d["request_id"]: d for d in read_json(s, "decisions", n=400, timeout_s=30)}
    assert len(decisions) == 400
    assert {d["feature_net_version"] for d in decisions.values()} == {"v1", "v2"}
    policy = make_policy(POLICY)
    for d in decisions.values():
        q = d["version_weights"]
        assert set(q) == set(d["version_scores"]) == {"v1", "v2"}
        assert d["version_probability"] == q[d["feature_net_version"]] >= 0.4 / 2
        pmf = sum(q[v] * policy.decide_many([np.array(sc)], [d["seed"]])[0].pmf for v, sc in d["version_scores"].items())
        np.testing.assert_allclose(d["pmf"], pmf, atol=1e-12)  # both draws: version, then item
        assert d["propensity"] == d["pmf"][d["chosen_index"]]

    # Every feedback taught the selector and both versions' error once, across the SIGKILL.
    store = RedisStore.from_settings(s)
    try:
        blobs = list(store.selections(s.partitions).values())
        users = {d["user_id"] for d in decisions.values()}
        assert len(store.partitions_of_users("v2", sorted(users), s.partitions)) == len(users)  # v2's own weights
    finally:
        store.close()
    assert sum(decode_state(b).n for b in blobs) == len(outcomes) == 400
    errors = merged_errors(blobs)
    assert {v: n for v, (n, _) in errors.items()} == {"v1": 400, "v2": 400}
    expected = {v: sum((o["reward"] - o["decision"]["version_scores"][v][
        [c["id"] for c in o["decision"]["candidates"]].index(o["item_id"])]) ** 2 for o in outcomes) for v in ("v1", "v2")}
    assert {v: sse for v, (_, sse) in errors.items()} == pytest.approx(expected)
    rmse = {v: (sse / n) ** 0.5 for v, (n, sse) in errors.items()}
    assert rmse["v2"] > rmse["v1"]  # the noisy copy is the worse version

    # One log evaluates each version offline: its logged scores against the propensity over both draws.
    options = ReplayOptions(targets=tuple(parse_target(t) for t in ("logging", f"logged=v1:{POLICY}",
                                                                     f"logged=v2:{POLICY}", "logged=v3:greedy")),
                            estimators=("ips", "snips"), n_bootstrap=50, progress=False, allow_fallback=1.0)
    out = replay(s, SliceRequest(source="kafka", since=None, until=None, start_offsets=None, end_offsets=None,
                                 join="outcomes", missing_reward=None), options)
    by = {r.label: r for r in out.results}
    on_policy = float(np.mean([o["reward"] for o in outcomes]))
    assert by["logging"].estimates["ips"].value == pytest.approx(on_policy)
    for v in ("v1", "v2"):
        r = by[f"logged=v{v[1]}:{POLICY}"]
        assert 0 < r.ess < 400 and np.isfinite(r.estimates["snips"].value)
    assert any("400 of 400 decisions" in n and "no logged scores of version 'v3'" in n
               for n in by["logged=v3:greedy"].notes)

    assert cli.main(["models", "shadow", *flags(s)]) == 0
    out = capsys.readouterr().out
    assert f"{rmse['v1']:.4f}" in out and f"{rmse['v2']:.4f}" in out
    assert cli.main(["models", "promote", "v2", *flags(s)]) == 1
    assert "refused, v2 is worse" in capsys.readouterr().err and registry.live() == "v1"
    assert cli.main(["models", "promote", "v2", "--force", *flags(s)]) == 0
    assert registry.live() == "v2"


def test_shadow_mode_answers_with_the_live_version_and_a_better_challenger_passes_the_gate(settings, live_model,
                                                                                           worker_thread, capsys):
    registry = open_registry(settings)
    registry.register(worse_copy(live_model, "v2"), {"source": "test"})
    s = dataclasses.replace(settings, policy=POLICY, challengers="last:1", selection="shadow", metrics_port=0)
    with worker_thread(s):
        loop = run_closed_loop(s, count=150, rate=100, users=20, items=15, seed=3, wait_s=60)
        assert loop["answered"] == 150
        decisions = read_json(s, "decisions", n=150, timeout_s=30)
        store = RedisStore.from_settings(s)
        try:
            errors = wait_for(lambda: (e := merged_errors(list(store.selections(s.partitions).values()))) and
                              e.get("v1", (0,))[0] == 150 and e)
        finally:
            store.close()
    assert {d["feature_net_version"] for d in decisions} == {"v1"}
    assert all(d["selector"] == "shadow" and set(d["version_scores"]) == {"v1", "v2"} for d in decisions)
    assert errors["v2"][0] == 150
    # The live version is the better one: promoting back to it from v2 passes the gate.
    registry.promote("v2")
    assert cli.main(["models", "promote", "v1", *flags(s)]) == 0
    assert "shadow rmse" in capsys.readouterr().err and registry.live() == "v1"


def test_the_demo_arm_shows_a_shadow_challenger_learning_as_if_it_served_alone(settings, tmp_path):
    """``python -m stream.demo.selection`` at a toy size: the shadow errors equal each version's RMSE alone."""
    import json

    from stream.demo import selection as arm

    assert arm.main(["--out", str(tmp_path), "--strong-train", "400", "--weak-train", "100", "--stream", "300",
                     "--batch", "50", "--redis-url", settings.redis_url, "--topic-prefix", settings.topic_prefix]) == 0
    doc = json.loads((tmp_path / "selection.json").read_text())
    by = {a["arm"]: a for a in doc["arms"]}
    shadow = by["shadow"]["shadow_rmse"]
    assert shadow["weak"][0] == shadow["strong"][0] == 300
    assert shadow["weak"][1] == pytest.approx(by["weak alone"]["rmse"], rel=1e-9) == by["shadow"]["rmse"]
    assert shadow["strong"][1] == pytest.approx(by["strong alone"]["rmse"], rel=1e-9)
    assert by["strong alone"]["strong_answered"] == 1.0 and 0 < by["exp3"]["strong_answered"] < 1
    assert (tmp_path / "selection.png").stat().st_size > 0


def test_challengers_set_at_runtime_are_served_by_a_running_worker_within_seconds(settings, live_model,
                                                                                   worker_thread, capsys):
    """``eddy models challengers set v2 --selection exp4`` while a worker runs without challengers: its next
    queries are scored by both versions (Exp4); ``clear`` goes back to the live version alone."""
    import time

    from stream.client import EddyClient
    from stream.events import Item, Query

    registry = open_registry(settings)
    registry.register(worse_copy(live_model, "v2"), {"source": "test"})

    def send(prefix: str) -> None:
        client = EddyClient(settings)
        for k in range(5):
            client.send(Query(request_id=f"{prefix}{k}", user_id=f"u{k}", ts=time.time(),
                              context={"hour": float(k), "device": "ios"}, candidates=(Item("i1"), Item("i2"))))
        client.flush()

    with worker_thread(settings) as w:
        send("before-")
        read_json(settings, "decisions", n=5, timeout_s=60)
        assert w.worker.engine.selection is None
        assert cli.main(["models", "challengers", "set", "v2", "--selection", "exp4", *flags(settings)]) == 0
        wait_for(lambda: w.worker.engine.selection is not None, timeout_s=30)
        assert list(w.worker.engine.selection.challengers) == ["v2"] and w.worker.engine.selection.mode == "exp4"
        send("during-")
        read_json(settings, "decisions", n=10, timeout_s=60)
        assert cli.main(["models", "challengers", "clear", *flags(settings)]) == 0
        wait_for(lambda: w.worker.engine.selection is None, timeout_s=30)
        send("after-")
        decisions = {d["request_id"]: d for d in read_json(settings, "decisions", n=15, timeout_s=60)}
        changes = w.worker.stats["challenger_changes"]
    assert changes == 2
    for rid, d in decisions.items():
        if rid.startswith("during-"):
            assert d["selector"].startswith("exp4") and set(d["version_scores"]) == {"v1", "v2"}
        else:
            assert "selector" not in d and "version_scores" not in d
    assert cli.main(["models", "challengers", "show", *flags(settings)]) == 0
    assert "challengers: none" in capsys.readouterr().out
    assert cli.main(["models", "challengers", "set", "v9", *flags(settings)]) != 0
    assert "unknown model version 'v9'" in capsys.readouterr().err
