"""The engine-over-Redis benchmark runs the engine against the real Redis, counts the store's commands per
batch, and leaves no key behind."""

from __future__ import annotations

import json

import pytest
import redis

from benchmarks import engine_redis

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_a_batch_of_queries_and_feedback_reads_redis_once_and_commits_once(stack, tmp_path, capsys):
    client = redis.Redis.from_url(stack["redis_url"])
    assert engine_redis.main(["--batches", "20", "--output-dir", str(tmp_path), "--redis-url", stack["redis_url"]]) == 0
    [path] = tmp_path.glob("engine-redis-*.json")
    r = json.loads(path.read_text())
    # One MGET before the commit (stream/engine/prefetch.py), one commit script: a shell that read
    # each stage's keys on its own would show three MGETs here.
    assert 1 <= r["commands_per_batch"]["mget"] < 2 and 1 <= r["commands_per_batch"]["evalsha"] < 2  # others may share Redis
    assert r["wall_ms_median"] >= r["cpu_ms_median"] * 0.5 > 0
    assert not list(client.scan_iter(match="engine-redis-*", count=1000))  # its keys are gone
    assert "Redis commands per batch: " in capsys.readouterr().out


def test_a_bad_batch_count_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        engine_redis.main(["--batches", "0"])
    assert exc.value.code == 2 and "--batches and --queries must be at least 1" in capsys.readouterr().err
