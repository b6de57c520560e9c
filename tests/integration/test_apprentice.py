"""Apprentice mode on the real stack: a worker serves the application's default action and learns from it;
`eddy apprentice evaluate` estimates the learned policy off-policy (DR) on the logged apprentice decisions,
switches to it because the lower bound of its interval beats the default's value (a simulated world where a
random default is clearly worse than the trained model), the worker follows within a second, and
`eddy apprentice revert` brings the default back."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from stream import config
from stream.apprentice import read_switch
from stream.cli import main
from stream.client import EddyClient
from stream.simulator import SimulatedWorld
from stream.store import RedisStore

from .helpers import read_json

pytestmark = pytest.mark.integration


def _eddy(settings, capsys, *args: str) -> str:
    """``eddy apprentice ARGS`` in this process (the CLI's own parsing and errors), its stdout."""
    flags = ["--bootstrap", settings.bootstrap, "--redis-url", settings.redis_url, "--topic-prefix",
             settings.topic_prefix, "--apprentice", str(settings.apprentice), "--policy", settings.policy]
    capsys.readouterr()
    rc = main(["apprentice", *args, *flags])
    out, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    return out


def _serve(settings, world: SimulatedWorld, client: EddyClient, first: int, n: int, seen: int) -> list[dict]:
    """Send queries ``first..first+n`` (every other one names a default action), answer each prediction
    with the world's click, and return the decisions they were logged with."""
    queries = {}
    for k in range(first, first + n):
        q = world.query(k, ts=time.time())
        if k % 2:
            q = msgspec.structs.replace(q, default_action=q.candidates[k % len(q.candidates)].id)
        queries[q.request_id] = q
        client.send(q)
    client.flush()
    preds = [p for p in read_json(settings, "predictions", n=seen + n, timeout_s=180) if p["request_id"] in queries]
    for p in preds:
        q = queries[p["request_id"]]
        client.send(world.feedback(q, p["chosen"][0], ts=time.time()))
    client.flush()
    decisions = [d for d in read_json(settings, "decisions", n=seen + n, timeout_s=180)
                 if d["request_id"] in queries]
    assert len(preds) == len(decisions) == n
    for d in decisions:
        q = queries[d["request_id"]]
        default = q.default_action or q.candidates[0].id
        d["_default"] = default
    return decisions


def test_apprentice_serves_the_default_switches_on_the_estimate_and_reverts(settings, live_model, worker_thread,
                                                                           capsys):
    s = config.replace(settings, apprentice=True, policy="epsilon_greedy:epsilon=0.1")
    world = SimulatedWorld(n_users=50, n_items=30, seed=3)  # the world the session's feature net was trained on
    client = EddyClient(s)
    store = RedisStore.from_settings(s)
    n = 600
    with worker_thread(s):
        logged = _serve(s, world, client, 0, n, 0)
        assert all(d["policy"] == "apprentice" and d["propensity"] == 1.0 for d in logged)
        assert all(d["candidates"][d["chosen_index"]]["id"] == d["_default"] for d in logged)
        read_json(s, "outcomes", n=n, timeout_s=180)  # every default action's reward joined and learned

        dry = json.loads(_eddy(s, capsys, "evaluate", "--dry-run", "--json", "--samples", "300"))
        assert read_switch(store) is None  # a dry run never switches
        done = _eddy(s, capsys, "evaluate", "--samples", "300")
        assert "switched" in done, done
        assert dry["promote"] and dry["n_rounds"] == n and dry["lower"] > dry["default_value"], dry
        switch = read_switch(store)
        assert switch.mode == "learned" and switch.by == "evaluate" and switch.estimate["lower"] == dry["lower"]

        # The worker follows the switch within about a second: the learned policy decides.
        time.sleep(2)
        learned = _serve(s, world, client, n, 100, n)
        assert all(d["policy"] == "epsilon_greedy" for d in learned)
        assert sum(d["propensity"] < 1.0 for d in learned) > 50

        _eddy(s, capsys, "revert", "--reason", "test")
        assert read_switch(store).mode == "default"
        time.sleep(2)
        again = _serve(s, world, client, n + 100, 50, n + 100)
        assert all(d["policy"] == "apprentice" and d["candidates"][d["chosen_index"]]["id"] == d["_default"]
                   for d in again)

    updates = [u for u in read_json(s, "model-updates", timeout_s=10, idle_s=2) if u["kind"] == "apprentice"]
    assert [u["version"] for u in updates] == ["learned", "default"]
    assert updates[0]["summary"]["lower"] == dry["lower"]
    status = _eddy(s, capsys, "status")
    assert "serving the default action" in status and "learned" in status and "revert" in status
    # The learned policy earned more on its own decisions than the default did (what the estimate said).
    outcomes = read_json(s, "outcomes", n=n + 150, timeout_s=120)
    by_policy: dict[str, list[float]] = {}
    for o in outcomes:
        by_policy.setdefault(o["decision"]["policy"], []).append(o["reward"])
    assert len(by_policy["epsilon_greedy"]) == 100
    mean = {k: sum(v) / len(v) for k, v in by_policy.items()}
    assert mean["epsilon_greedy"] > mean["apprentice"], mean
