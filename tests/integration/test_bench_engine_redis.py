"""The engine-over-Redis benchmark runs the engine against the real Redis, counts the store's commands per
batch, and leaves no key behind."""

from __future__ import annotations

import json

import pytest
import redis

from benchmarks import engine_redis

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("join_memory_mb, mgets", [(0, 1), (64, 0)])
def test_a_batch_of_queries_and_feedback_reads_redis_once_at_most_and_commits_once(stack, tmp_path, capsys,
                                                                                    join_memory_mb, mgets):
    client = redis.Redis.from_url(stack["redis_url"])
    assert engine_redis.main(["--batches", "20", "--pool", "8", "--output-dir", str(tmp_path),  # 8: users in memory
                              "--redis-url", stack["redis_url"], "--join-memory-mb", str(join_memory_mb)]) == 0
    [path] = tmp_path.glob("engine-redis-*.json")
    r = json.loads(path.read_text())
    # Without join memory, one MGET before the commit (stream/engine/prefetch.py): a shell that read
    # each stage's keys on its own would show three here. With it, the feedback is for this engine's own
    # decisions and the batch is optimistic (stream/engine/fresh.py): nothing to read. One commit script.
    assert mgets <= r["commands_per_batch"].get("mget", 0) < mgets + 0.5  # others may share Redis
    assert 1 <= r["commands_per_batch"]["evalsha"] < 2
    assert r["wall_ms_median"] >= r["cpu_ms_median"] * 0.5 > 0
    assert not list(client.scan_iter(match="engine-redis-*", count=1000))  # its keys are gone
    assert "Redis commands per batch: " in capsys.readouterr().out


def test_a_bad_batch_count_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        engine_redis.main(["--batches", "0"])
    assert exc.value.code == 2 and "--batches, --queries and --pool must be at least 1" in capsys.readouterr().err
