"""The engine-only benchmark runs and reports every figure (its numbers are for BENCHMARKS.md, not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import engine_ceiling

pytestmark = pytest.mark.unit


def test_the_engine_ceiling_reports_queries_by_batch_size_and_feedback(tmp_path, capsys):
    assert engine_ceiling.main(["--n", "400", "--output-dir", str(tmp_path)]) == 0
    [path] = tmp_path.glob("engine-ceiling-*.json")
    r = json.loads(path.read_text())
    for figure in ("queries_per_cpu_s", "queries_per_cpu_s_median_batch"):
        assert set(r[figure]) == {str(b) for b in engine_ceiling.QUERY_BATCHES}
        assert all(v > 0 for v in r[figure].values())
    assert r["feedback_per_cpu_s"] > 0 and r["feedback_per_cpu_s_median_batch"] > 0
    assert r["feedback_applied"] == 400  # every feedback joined its decision and was learned
    out = capsys.readouterr().out
    assert "| whole run |" in out and "| median batch |" in out


def test_too_few_records_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        engine_ceiling.main(["--n", "10"])
    assert "--n must be at least 400" in capsys.readouterr().err
