"""eddy export / eddy replay without a broker: file sources, outputs, and one-line errors for mistakes."""

import argparse
import json

import numpy as np
import pytest

from stream import cli
from stream.config import ConfigError
from stream.replay.dsjson import write_dsjson
from stream.replay.slicing import add_slice_arguments, slice_request
from stream.replay.synthetic import synthetic_rounds

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    rounds, _ = synthetic_rounds(800, users=10, items=12, seed=5)
    path = tmp_path_factory.mktemp("log") / "log.dsjson"
    write_dsjson(rounds, path)
    return path, rounds


def parse(*argv):
    p = argparse.ArgumentParser()
    add_slice_arguments(p)
    return slice_request(p.parse_args(list(argv)), now=1000.0)


def test_slice_options():
    req = parse("--since-minutes", "2", "--from-offsets", "0:5,1:7", "--to-offsets", "0:9")
    assert req.since == 880.0 and req.start_offsets == {0: 5, 1: 7} and req.end_offsets == {0: 9}
    assert parse().since is None and parse().source == "kafka" and parse().join == "outcomes"
    assert parse("--source", "x.dsjson").from_file


@pytest.mark.parametrize("argv, message", [
    (["--since-minutes", "5", "--since", "3"], "not both"),
    (["--since-minutes", "0"], "must be > 0"),
    (["--since", "10", "--until", "5"], "must be later"),
    (["--from-offsets", "0-1"], "--from-offsets: '0-1' is not partition:offset"),
    (["--from-offsets", "0:1,0:2"], "given twice"),
    (["--to-offsets", "0:-1"], "is not partition:offset|must be >= 0"),
    (["--from-offsets", "0:9", "--to-offsets", "0:3"], "is before"),
    (["--source", "f.dsjson", "--from-offsets", "0:1"], "apply to Kafka"),
    (["--source", "f.dsjson", "--join", "raw"], "needs --source kafka"),
    (["--missing-reward", "inf"], "finite"),
])
def test_bad_slice_options_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


def test_replay_from_a_file_writes_table_json_and_plot(log_file, tmp_path, capsys):
    path, rounds = log_file
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    rc = cli.main(["replay", "--source", str(path), "--policy", "logging", "--policy", "greedy",
                   "--policy", "softmax:temperature=0.2", "--bootstrap", "200",
                   "--output-json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "logging" in shown and "snips" in shown and "on-policy average reward" in shown
    report = json.loads(out_json.read_text())
    assert report["n_rounds"] == len(rounds)
    assert [p["policy"] for p in report["policies"]] == ["logging", "greedy", "softmax:temperature=0.2"]
    on_policy = float(np.mean([r.reward for r in rounds]))
    assert report["on_policy_value"] == pytest.approx(on_policy)
    logging = report["policies"][0]
    assert logging["estimates"]["ips"]["value"] == pytest.approx(on_policy)
    assert set(logging["estimates"]) == {"ips", "snips", "dm", "dr", "sndr"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learn_saves_a_model_that_replays_as_a_target(log_file, tmp_path, capsys):
    path, _ = log_file
    model = tmp_path / "m.vw"
    rc = cli.main(["replay", "--source", str(path), "--learn", "--train-until", "0.6", "--cb-type", "ips",
                   "--save-model", str(model), "--bootstrap", "50", "--estimators", "ips,snips",
                   "--output-json", str(tmp_path / "l.json"), "--plot", str(tmp_path / "l.png")])
    assert rc == 0 and model.exists()
    report = json.loads((tmp_path / "l.json").read_text())
    assert report["learn"]["train_rounds"] == 480 and report["learn"]["eval_rounds"] == 320
    assert [p["policy"] for p in report["policies"]] == ["vw-learned(cb_type=ips)", "logging", "greedy"]
    rc = cli.main(["replay", "--source", str(path), "--policy", f"vw={model}", "--bootstrap", "50",
                   "--output-json", str(tmp_path / "v.json"), "--plot", str(tmp_path / "v.png")])
    assert rc == 0


@pytest.mark.parametrize("kind", ["constant", "per-action", "ridge", "logistic"])
@pytest.mark.parametrize("fit", ["cross", "in-sample"])
def test_reward_model_and_fit_are_chosen_and_recorded(log_file, tmp_path, kind, fit):
    path, _ = log_file
    out = tmp_path / "r.json"
    rc = cli.main(["replay", "--source", str(path), "--policy", "greedy", "--estimators", "dm,dr", "--bootstrap", "20",
                   "--reward-model", kind, "--fit", fit, "--output-json", str(out), "--plot", str(tmp_path / "r.png")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["reward_model"]["kind"] == kind and report["reward_model"]["fit"] == fit
    dm = report["policies"][0]["estimates"]["dm"]["value"]
    assert 0.0 < dm < 1.0


def test_new_estimators_with_their_hyperparameters_run_and_are_reported(log_file, tmp_path):
    path, _ = log_file
    out = tmp_path / "e.json"
    specs = "dr,switch-dr:lambda=inf,dros:lambda=inf,sg-ips:lambda=0,ips,sg-dr:lambda=0.1"
    rc = cli.main(["replay", "--source", str(path), "--policy", "greedy", "--estimators", specs, "--bootstrap", "30",
                   "--output-json", str(out), "--plot", str(tmp_path / "e.png")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["estimators"] == specs.split(",")
    est = report["policies"][0]["estimates"]
    assert est["switch-dr:lambda=inf"]["value"] == pytest.approx(est["dr"]["value"])
    assert est["dros:lambda=inf"]["value"] == pytest.approx(est["dr"]["value"])
    assert est["sg-ips:lambda=0"]["value"] == pytest.approx(est["ips"]["value"])
    assert est["sg-dr:lambda=0.1"]["lower"] <= est["sg-dr:lambda=0.1"]["value"] <= est["sg-dr:lambda=0.1"]["upper"]


def test_a_table_that_falls_back_fails_with_one_line_unless_allowed(log_file, tmp_path, capsys):
    path, rounds = log_file
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"_key": ["user_id"], "user_id=nobody": {"x": 1.0}}))
    argv = ["replay", "--source", str(path), "--policy", f"table={table}", "--estimators", "ips", "--bootstrap", "10",
            "--output-json", str(tmp_path / "f.json"), "--plot", str(tmp_path / "f.png")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{len(rounds)} of {len(rounds)} decisions (100%) fell back to uniform" in err
    assert f"first: {path}:" in err and "--allow-fallback" in err and "Traceback" not in err
    assert cli.main(argv + ["--allow-fallback"]) == 0
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["policies"][0]["fallbacks"] == len(rounds) and report["allow_fallback"] == 1.0


def test_export_obp_from_a_file(log_file, tmp_path):
    path, rounds = log_file
    rc = cli.main(["export", "--source", str(path), "--format", "obp", "--output", str(tmp_path / "fb.npz")])
    assert rc == 0
    with np.load(tmp_path / "fb.npz") as data:
        assert int(data["n_rounds"]) == len(rounds)


@pytest.mark.parametrize("argv, message", [
    (["replay", "--source", "SRC", "--policy", "softmax:temp=1"], "eddy replay: --policy 'softmax:temp=1'"),
    (["replay", "--source", "SRC", "--estimators", "ips,magic"], "eddy replay: --estimators"),
    (["replay", "--source", "SRC", "--learn", "--train-until", "1"], "eddy replay: --train-until"),
    (["replay", "--source", "SRC", "--bootstrap", "-1"], "eddy replay: --bootstrap"),
    (["replay", "--source", "/no/such/file.dsjson"], "eddy replay: cannot read '/no/such/file.dsjson'"),
    (["replay", "--source", "SRC", "--since", "1", "--until", "2"], "eddy replay: no joined decisions"),
    (["replay", "--source", "SRC", "--learn", "--vw-args=--no_such_vw_option"], "eddy replay: VW refused"),
    (["replay", "--source", "SRC", "--learn", "--learn-passes", "0"], "eddy replay: --learn-passes"),
    (["replay", "--source", "SRC", "--learn", "--cb-type", "dr", "--learn-epsilon", "2"], "eddy replay: --learn-epsilon"),
    (["replay", "--source", "SRC", "--estimators", "dros"], "eddy replay: --estimators 'dros': dros needs lambda"),
    (["replay", "--source", "SRC", "--reward-l2", "0"], "eddy replay: --reward-l2"),
    (["replay", "--source", "SRC", "--folds", "1"], "eddy replay: --folds"),
    (["export", "--source", "SRC", "--context-dim", "0"], "eddy export: --context-dim"),
])
def test_user_mistakes_are_one_line_errors(log_file, tmp_path, capsys, argv, message):
    path, _ = log_file
    argv = [str(path) if a == "SRC" else a for a in argv]
    argv += ["--output-json", str(tmp_path / "x.json"), "--plot", str(tmp_path / "x.png")] if argv[0] == "replay" else []
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
