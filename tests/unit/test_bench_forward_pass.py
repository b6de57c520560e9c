"""The forward-pass benchmark runs, reports each batch size, and finds numpy's pass equal to torch's (figures not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import forward_pass

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(autouse=True)
def blas_threads_restored():
    """The benchmark limits the process's BLAS to one thread, as a worker does; later tests get theirs back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    before = max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)
    yield
    threadpool_limits(limits=before, user_api="blas")


def test_the_forward_pass_benchmark_times_both_passes_at_every_batch_size(tmp_path, capsys):
    assert forward_pass.main(["--repeat", "1", "--output-dir", str(tmp_path)]) == 0
    [path] = tmp_path.glob("forward-pass-*.json")
    r = json.loads(path.read_text())
    assert [b["queries"] for b in r["batches"]] == list(forward_pass.BATCHES)
    for b in r["batches"]:
        assert b["rows"] == 10 * b["queries"]  # the benchmark's queries hold ten candidates
        assert b["torch_us"] > 0 and b["numpy_us"] > 0 and b["embed_many_us"] > 0
        assert b["max_abs_difference"] < 1e-4  # the same function, to float32 rounding
    assert "| queries | rows | torch us | numpy us |" in capsys.readouterr().out


def test_a_bad_repeat_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        forward_pass.main(["--repeat", "0"])
    assert "--repeat must be at least 1" in capsys.readouterr().err
