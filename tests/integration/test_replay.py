"""Replay on the real broker: live epsilon-greedy traffic through the worker, then off-policy estimates of it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from stream import cli
from stream.loop import run_closed_loop
from stream.replay.dsjson import read_dsjson
from stream.replay.pipeline import ReplayOptions, replay
from stream.replay.slicing import SliceRequest
from stream.replay.targets import parse_target

from .helpers import read_json

pytestmark = pytest.mark.integration

LOGGING_POLICY = "epsilon_greedy:epsilon=0.3"


def kafka_slice(join: str = "outcomes", **kw) -> SliceRequest:
    base = dict(source="kafka", since=None, until=None, start_offsets=None, end_offsets=None, join=join,
                missing_reward=None)
    base.update(kw)
    return SliceRequest(**base)


def settings_flags(s) -> list[str]:
    return ["--bootstrap-servers", s.bootstrap, "--redis-url", s.redis_url, "--topic-prefix", s.topic_prefix,
            "--model-dir", s.model_dir]


def test_replay_of_live_epsilon_greedy_traffic(settings, live_model, worker_thread, tmp_path, capsys):
    s = dataclasses.replace(settings, policy=LOGGING_POLICY)
    with worker_thread(s):
        loop = run_closed_loop(s, count=1500, rate=300, users=30, items=20, feedback_ratio=1.0, seed=11)
        assert loop["answered"] == 1500
        outcomes = read_json(s, "outcomes", n=loop["answered"], timeout_s=30)
    on_policy = float(np.mean([o["reward"] for o in outcomes]))
    assert {o["decision"]["policy_version"] for o in outcomes} == {"epsilon_greedy/1?epsilon=0.3"}

    targets = ("logging", "greedy", "uniform", LOGGING_POLICY, f"fn={live_model.version}:greedy")
    options = ReplayOptions(targets=tuple(parse_target(t) for t in targets), n_bootstrap=500, progress=False)
    out = replay(s, kafka_slice(), options)
    by = {r.label: r for r in out.results}
    assert out.log.n_rounds == len(outcomes) == 1500
    assert out.report["join"]["dropped"] == 0 and out.report["on_policy_value"] == pytest.approx(on_policy)

    # The logging policy's IPS and SNIPS estimates are its on-policy average, inside their 95% intervals.
    for name in ("ips", "snips"):
        e = by["logging"].estimates[name]
        assert e.value == pytest.approx(on_policy, abs=1e-9)
        assert e.lower <= on_policy <= e.upper
    # Its spec over the logged scores reproduces the logged pmf: every importance weight is 1.
    assert by[LOGGING_POLICY].ess == pytest.approx(1500)
    assert by[LOGGING_POLICY].estimates["ips"].value == pytest.approx(on_policy)
    # Other targets: finite estimates with intervals around them.
    for label in ("greedy", "uniform", f"fn={live_model.version}:greedy"):
        r = by[label]
        assert 0 < r.ess < 1500
        for name, e in r.estimates.items():
            assert e.error is None and np.isfinite([e.value, e.lower, e.upper]).all(), (label, name)
            assert e.lower <= e.value <= e.upper, (label, name)
    assert any("CURRENT weights" in n for n in by[f"fn={live_model.version}:greedy"].notes)

    # Joining decisions + raw feedback with the worker's rules gives the same rounds.
    raw = replay(s, kafka_slice("raw"), dataclasses.replace(options, targets=(parse_target("logging"),),
                                                           estimators=("ips",), n_bootstrap=50))
    assert raw.log.n_rounds == 1500 and raw.report["join"]["rejected_feedback"] == {}
    assert raw.report["on_policy_value"] == pytest.approx(on_policy)

    # An offset slice: offsets [0, 100) of partition 0 only (transaction markers take a few offsets).
    part = replay(s, kafka_slice(start_offsets={0: 0}, end_offsets={0: 100, 1: 0, 2: 0, 3: 0}),
                  dataclasses.replace(options, targets=(parse_target("logging"),), estimators=("ips",), n_bootstrap=50))
    # Each transaction adds a commit marker to each partition it wrote: with one feedback per
    # transaction at worst, half the offsets are markers.
    assert 50 <= part.log.n_rounds <= 100
    [(p, span)] = part.report["provenance"]["decision_offsets"].items()
    assert p == 0 and span["from"] == 0 and span["to"] <= 100
    assert {r.decision.request_id for r in part.log.rounds} <= {r.decision.request_id for r in out.log.rounds}

    # The CLI, in-process: table on stdout, JSON and PNG written, exit code 0.
    png, report = tmp_path / "replay.png", tmp_path / "replay.json"
    rc = cli.main(["replay", *settings_flags(s), "--policy", "logging", "--policy", "greedy",
                   "--policy", "softmax:temperature=0.2", "--bootstrap", "300",
                   "--estimators", "ips,snips,dm,dr,sndr,switch-dr:lambda=inf,dros:lambda=100",
                   "--reward-model", "per-action", "--fit", "in-sample",
                   "--plot", str(png), "--output-json", str(report)])
    shown = capsys.readouterr()
    print(shown.out)  # the table, for the test log
    assert rc == 0, shown.err
    assert png.read_bytes()[:4] == b"\x89PNG"
    written = json.loads(report.read_text())
    assert written["n_rounds"] == 1500 and [p["policy"] for p in written["policies"]][:2] == ["logging", "greedy"]
    assert written["reward_model"]["kind"] == "per-action" and written["reward_model"]["fit"] == "in-sample"
    greedy = written["policies"][1]["estimates"]
    assert greedy["switch-dr:lambda=inf"]["value"] == pytest.approx(greedy["dr"]["value"])
    assert np.isfinite(greedy["dros:lambda=100"]["value"]) and written["policies"][1]["fallbacks"] == 0

    # Export: one DSJSON line per joined decision, read back to the same rewards.
    dsjson = tmp_path / "log.dsjson"
    assert cli.main(["export", "--bootstrap", s.bootstrap, "--topic-prefix", s.topic_prefix,
                     "--format", "dsjson", "--output", str(dsjson)]) == 0
    rounds = read_dsjson(dsjson)
    assert len(rounds) == 1500 and np.mean([r.reward for r in rounds]) == pytest.approx(on_policy)

    # A table whose keys match no decision of the exported file: one line naming the first one's file line.
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"_key": ["user_id"], "user_id=nobody": {"x": 1.0}}))
    capsys.readouterr()
    assert cli.main(["replay", "--source", str(dsjson), "--policy", f"table={table}", "--estimators", "ips",
                     "--bootstrap", "10", "--output-json", str(tmp_path / "t.json.out"),
                     "--plot", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err
    assert "1500 of 1500 decisions (100%) fell back to uniform" in err and f"first: {dsjson}:" in err
