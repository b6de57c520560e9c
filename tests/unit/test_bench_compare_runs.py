"""``benchmarks.compare_runs`` draws one system's runs from several result files and prints their figures."""

from __future__ import annotations

import json

import pytest

from benchmarks import compare_runs

pytestmark = pytest.mark.unit


def result(tmp_path, name, p99s):
    steps = [{"rate": r, "throughput": r * 0.99, "latency_ms": {"p99": p}} for r, p in zip((100.0, 200.0), p99s)]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"systems": {"eddy-eos": {"steps": steps}}}))
    return path


def test_each_run_is_a_line_and_a_row(tmp_path, capsys):
    a, b = result(tmp_path, "a", [5.0, 9.0]), result(tmp_path, "b", [7.0, 30.0])
    out = tmp_path / "cmp.png"
    assert compare_runs.main(["--out", str(out), f"after={a}", f"before={b}"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    rows = capsys.readouterr().out.splitlines()
    assert rows[1] == "| after | a.json | 5.0, 99 | 9.0, 198 |"
    assert rows[2] == "| before | b.json | 7.0, 99 | 30.0, 198 |"


def test_a_run_without_a_label_or_the_system_is_a_one_line_error(tmp_path, capsys):
    a = result(tmp_path, "a", [5.0, 9.0])
    with pytest.raises(SystemExit):
        compare_runs.main(["--out", str(tmp_path / "x.png"), str(a)])
    assert "give LABEL=RESULT.json" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="has no system 'http'"):
        compare_runs.main(["--system", "http", "--out", str(tmp_path / "x.png"), f"a={a}"])
