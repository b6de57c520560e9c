"""``eddy demo`` and ``eddy retrain``: bad arguments give one clear line and exit 2, before any I/O."""

from __future__ import annotations

import pytest

from stream import cli

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv, message", [
    (["demo", "--limit", "5"], "--limit must be >= 100, got 5"),
    (["demo", "--train-fraction", "1.5"], "--train-fraction must be in [0.05, 0.95], got 1.5"),
    (["demo", "--candidates", "0"], "--candidates must be >= 1, got 0"),
    (["demo", "--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["demo", "--retrains", "-1"], "--retrains must be >= 0, got -1"),
    (["demo", "--window", "0"], "--window must be >= 1, got 0"),
    (["demo", "--learner", "sgd"], "learner must be river, bayes or rls"),
    (["demo", "--policy", "greedy:epsilon=0.1"], "unknown parameter 'epsilon' for policy 'greedy'"),
    (["retrain", "--watch", "--threshold", "0.8"], "threshold must be a number >= 1.0"),
    (["retrain", "--watch", "--window", "0"], "--window must be >= 1, got 0"),
    (["retrain", "--watch", "--every-minutes", "0"], "--every-minutes must be > 0, got 0.0"),
    (["retrain", "--watch", "--max-retrains", "-2"], "--max-retrains must be > 0, got -2"),
    (["retrain", "--max-seconds", "10"], "need --watch"),
    (["retrain", "--watch", "--epochs", "0"], "--epochs must be >= 1, got 0"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"eddy {argv[0]}: ") and message in err[0], err


def test_demo_without_a_broker_says_how_to_start_it(capsys, monkeypatch):
    monkeypatch.setenv("EDDY_BOOTSTRAP", "127.0.0.1:1")
    assert cli.main(["demo", "--quick", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()], "one line, no librdkafka retry noise"
    assert "no Kafka broker at 127.0.0.1:1" in err and "deploy/stack up" in err


def test_models_flags_work_after_the_action():
    args = cli.build_parser().parse_args(["models", "--redis-url", "redis://x:1/0", "show", "v3",
                                          "--topic-prefix", "p."])
    assert (args.action, args.version, args.topic_prefix, args.redis_url) == ("show", "v3", "p.", "redis://x:1/0")


@pytest.mark.parametrize("argv, env, expected", [
    ([], {}, ("rls", 1e9, "greedy")),
    (["--learner", "river", "--prior-refresh-s", "5"], {}, ("river", 5.0, "greedy")),
    ([], {"EDDY_LEARNER": "bayes", "EDDY_PRIOR_REFRESH_S": "2"}, ("bayes", 2.0, "greedy")),
])
def test_demo_worker_defaults_and_their_overrides(argv, env, expected, monkeypatch):
    """The demo's learner and prior refresh (docs/demo.md, "The learner"); a flag or EDDY_* wins."""
    from stream.commands import demo_cmd

    for name in ("EDDY_LEARNER", "EDDY_PRIOR_REFRESH_S", "EDDY_POLICY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser().parse_args(["demo", *argv])
    s, _ = demo_cmd._settings(args, "test")
    assert (s.learner, s.prior_refresh_s, s.policy) == expected
