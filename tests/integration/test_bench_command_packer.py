"""The command-packer benchmark commits real batches through both packers and leaves no key behind."""

from __future__ import annotations

import json

import pytest
import redis

from benchmarks import command_packer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_the_command_packer_benchmark_times_both_packers_on_every_batch(stack, tmp_path, capsys):
    client = redis.Redis.from_url(stack["redis_url"])
    before = set(client.scan_iter(match="command-packer-*", count=1000))
    assert command_packer.main(["--repeat", "2", "--output-dir", str(tmp_path),
                                "--redis-url", stack["redis_url"]]) == 0
    [path] = tmp_path.glob("command-packer-*.json")
    r = json.loads(path.read_text())
    assert list(r["batches"]) == ["32 queries", "256 queries", "256 feedback"]  # the feedback joined (else it exits)
    for row in r["batches"].values():
        assert all(row[v]["wall_ms"] > 0 for v in command_packer.VARIANTS)
    assert set(client.scan_iter(match="command-packer-*", count=1000)) == before  # its keys are gone
    assert "| batch | commit wall ms | commit CPU ms |" in capsys.readouterr().out


def test_a_bad_repeat_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        command_packer.main(["--repeat", "0"])
    assert "--repeat must be at least 1" in capsys.readouterr().err
