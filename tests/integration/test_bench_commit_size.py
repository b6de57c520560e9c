"""The commit-size benchmark commits real batches to the real Redis, both ways, and leaves no key behind."""

from __future__ import annotations

import json

import pytest
import redis

from benchmarks import commit_size

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_the_commit_size_benchmark_times_both_records_at_every_batch_size(stack, tmp_path, capsys):
    client = redis.Redis.from_url(stack["redis_url"])
    before = set(client.scan_iter(match="commit-size-*", count=1000))
    assert commit_size.main(["--repeat", "2", "--output-dir", str(tmp_path), "--redis-url", stack["redis_url"]]) == 0
    [path] = tmp_path.glob("commit-size-*.json")
    r = json.loads(path.read_text())
    assert list(r["batches"]) == [str(b) for b in commit_size.BATCHES]
    for row in r["batches"].values():
        stored, lean = row["as stored"], row["no prediction"]
        assert stored["record_bytes"] - lean["record_bytes"] > 500  # the prediction is most of a kilobyte
        assert stored["wall_ms"] > 0 and lean["wall_ms"] > 0
    assert set(client.scan_iter(match="commit-size-*", count=1000)) == before  # its keys are gone
    assert "| queries per batch | record bytes |" in capsys.readouterr().out


def test_a_bad_repeat_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        commit_size.main(["--repeat", "0"])
    assert "--repeat must be at least 1" in capsys.readouterr().err
