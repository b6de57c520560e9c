"""Each setting's rule (``metadata["rule"]``) and the checks between settings, without the CLI."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from stream import config
from stream.config import ConfigError, Settings

INVALID = [
    ({"EDDY_LEARNER": "sgd"}, "EDDY_LEARNER must be river, bayes or rls, got 'sgd'"),
    ({"EDDY_POLICY_LEARNER": "both"}, "EDDY_POLICY_LEARNER must be worker or role, got 'both'"),
    ({"EDDY_REWARD_AGGREGATION": "max"}, "EDDY_REWARD_AGGREGATION must be earliest or sum, got 'max'"),
    ({"EDDY_SELECTION": "exp5"}, "EDDY_SELECTION must be shadow, exp3 or exp4, got 'exp5'"),
    ({"EDDY_SELECTION_ETA": "0"}, "EDDY_SELECTION_ETA must be a finite number > 0, got 0.0"),
    ({"EDDY_GC_FREEZE_S": "-1"}, "EDDY_GC_FREEZE_S must be a finite number >= 0, got -1.0"),
    ({"EDDY_COMMIT_INTERVAL_MS": "5001"}, "EDDY_COMMIT_INTERVAL_MS must be in [0, 5000], got 5001.0"),
    ({"EDDY_MONITOR_HOP_S": "0"}, "EDDY_MONITOR_HOP_S must be whole seconds in [1, 604800], got 0"),
    ({"EDDY_MONITOR_PORT": "65536"}, "EDDY_MONITOR_PORT must be a TCP port in [0, 65535] (0: no metrics endpoint)"),
    ({"EDDY_ANYTIME_ITEMS": "0"}, "EDDY_ANYTIME_ITEMS must be >= 1, got 0"),
    ({"EDDY_FEATURE_CACHE_WARM": "-1"}, "EDDY_FEATURE_CACHE_WARM must be >= 0, got -1"),
    ({"EDDY_GROUP": " "}, "EDDY_GROUP must be non-empty"),
    ({"EDDY_CHALLENGERS": "v2,,v3"}, "EDDY_CHALLENGERS must be a comma-separated list of versions"),
    # between settings
    ({"EDDY_MONITOR_HOP_S": "400"}, "EDDY_MONITOR_HOP_S must be <= monitor_hopping_s (300), got 400"),
    ({"EDDY_REWARD_AGGREGATION": "sum"}, "EDDY_REWARD_AGGREGATION=sum needs reward_wait_s > 0"),
    ({"EDDY_JOIN_WINDOW_S": "10", "EDDY_REWARD_WAIT_S": "11"}, "EDDY_REWARD_WAIT_S must be in [0, join_window_s=10]"),
    # markers must outlive join records (kept twice the join window), or a feedback read again is learned twice
    ({"EDDY_APPLIED_TTL_S": "1199", "EDDY_JOIN_WINDOW_S": "600"},
     "EDDY_APPLIED_TTL_S must be at least twice join_window_s (1200), got 1199"),
]


@pytest.mark.parametrize("env,message", INVALID, ids=[next(iter(e)) for e, _ in INVALID])
def test_a_bad_value_is_named_with_its_variable(env, message):
    with pytest.raises(ConfigError) as err:
        config.from_env(env)
    assert str(err.value).startswith(message)


def test_every_default_keeps_its_rule():
    s = Settings()
    for f in fields(Settings):
        rule = f.metadata.get("rule")
        assert rule is None or rule.ok(getattr(s, f.name)), f.name


@pytest.mark.parametrize("env", [{"EDDY_LEARNER": "ridge"}, {"EDDY_CHALLENGERS": "last:2"},
                                 {"EDDY_CHALLENGERS": "v2, v3"}, {"EDDY_FEATURE_CACHE_KINDS": "text,mlp"},
                                 {"EDDY_BOOTSTRAP": "[::1]:9092,b:9093"}, {"EDDY_LSH_BITS": "64"},
                                 {"EDDY_APPLIED_TTL_S": "1200", "EDDY_JOIN_WINDOW_S": "600"}])
def test_the_edges_of_a_rule_are_accepted(env):
    config.from_env(env)


def test_a_verbs_settings_work_before_and_after_its_action():
    only = ("topic_prefix", "partitions")
    p = argparse.ArgumentParser(prog="eddy models")
    p.add_subparsers(dest="action", required=True).add_parser("list", parents=[config.settings_parent(only)])
    config.add_arguments(p, only=only)
    s = config.from_args(p.parse_args(["--topic-prefix", "x.", "list", "--partitions", "3"]))
    assert (s.topic_prefix, s.partitions) == ("x.", 3)  # the flag left unset after the action kept its value
