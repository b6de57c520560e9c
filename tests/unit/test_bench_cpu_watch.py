"""Where a step's cores went: each tenant's CPU from /proc, child processes included, and the machine's rest."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks import cpu_watch, report
from benchmarks.summary import targets

pytestmark = pytest.mark.unit

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_process_tree_counts_the_cpu_its_children_burn_and_its_own_figure_does_not():
    # A parent that sleeps while its child burns 0.6 CPU-seconds: the child's time is the tree's.
    parent = _spawn(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN.format(s=0.6)!r}])\n")
    try:
        before_own, before_tree = cpu_watch.cpu_seconds(parent.pid), cpu_watch.tree_cpu_seconds(parent.pid)
        deadline = time.monotonic() + 30
        burnt = 0.0
        while time.monotonic() < deadline and parent.poll() is None:
            tree = cpu_watch.tree_cpu_seconds(parent.pid)
            burnt = max(burnt, (tree or 0.0) - before_tree)
            if burnt >= 0.4:
                break
            time.sleep(0.05)
        own = cpu_watch.cpu_seconds(parent.pid)
    finally:
        parent.wait(30)
    assert burnt >= 0.4  # the child's burn, seen through its parent
    assert own is not None and own - before_own < 0.2  # the parent itself only waited


def test_a_process_that_is_gone_has_no_figure():
    child = _spawn("pass")
    child.wait(30)
    assert cpu_watch.cpu_seconds(child.pid) is None
    assert cpu_watch.tree_cpu_seconds(child.pid) is None
    assert cpu_watch.cpu_seconds(None) is None


def test_a_step_that_burns_one_core_shows_it_and_the_machine_adds_up():
    burner = _spawn(BURN.format(s=30))
    try:
        time.sleep(0.2)  # started
        pids = {"system": burner.pid, "generator": os.getpid(), "broker": None}
        before = cpu_watch.snapshot(pids)
        time.sleep(1.0)
        after = cpu_watch.snapshot(pids)
    finally:
        burner.kill()
        burner.wait(30)
    got = cpu_watch.cores_used(before, after)
    assert got["system"] >= 0.5  # one core, less what the machine's other tenants took from it
    assert got["broker"] is None  # not on this machine
    assert 0.0 <= got["generator"] < 0.3  # this process slept
    total = sum(v for k, v in got.items() if v is not None)
    # every core's time over the same wall clock (at least: the kernel's tick-sampled busy time can overcount)
    assert total >= os.cpu_count() - 0.35
    assert cpu_watch.cores_used(after, cpu_watch.snapshot(pids))["system"] is None  # gone: no figure


def test_cores_used_over_no_time_is_empty_and_a_figure_read_once_is_none():
    t = {"t": 5.0, "tenants": {"system": 1.0}, "machine": None}
    assert cpu_watch.cores_used(t, t) == {}
    later = {"t": 6.0, "tenants": {"system": None}, "machine": None}
    assert cpu_watch.cores_used(t, later) == {"system": None}


def _step(rate: float, p50: float, p99: float, idle: float | None) -> dict:
    s = {"rate": rate, "saturated": False, "throughput": rate, "latency_ms": {"p50": p50, "p99": p99}}
    if idle is not None:
        s["cpu_cores"] = {"system": 0.5, "generator": 0.4, "broker": 0.3, "redis": 0.05, "other": 0.1,
                          "idle": idle, "steal": 0.0}
    return s


def test_the_latency_targets_show_the_idle_cores_of_the_steps_they_missed_only():
    r = {"machine": {"nproc": 2}, "systems": {
        "eddy-eos": {"steps": [_step(100, 5.0, 9.0, 1.2), _step(1000, 9.0, 40.0, 0.04), _step(2000, 9.0, 15.0, 0.5)]},
        "floor-alo": {"steps": [_step(100, 3.5, 6.0, None), _step(1000, 3.0, 8.0, None), _step(2000, 3.0, 8.0, None)]},
    }}
    rows = {t["target"]: t for t in targets(r)}
    p99 = rows["p99 <= max(20 ms, 1.5 x at-least-once floor p99) at every rate up to 2,000/s"]
    assert p99["met"] is False and p99["bound"] == "idle cores in those steps: 1000/s 0.04"
    p50 = rows["p50 minus at-least-once floor p50, every rate up to 1,000/s"]
    assert p50["bound"] == "idle cores in those steps: 1000/s 0.04"
    # no cores read (a result file from before): no bound, as before
    for s in r["systems"]["eddy-eos"]["steps"]:
        s.pop("cpu_cores")
    assert targets(r)[0]["bound"] is None


def test_each_system_table_gains_the_cores_column_only_when_its_steps_have_it():
    sys_ = {"title": "Eddy", "description": "d", "steps": [
        {**_step(100, 5.0, 9.0, 1.2), "sent": 10, "duration_s": 1.0, "feedback_sent": 0, "saturation_reason": None,
         "send_lag_ms": {"p99": 1.0}, "latency_ms": {"answered": 10, "p50": 5.0, "p95": 8.0, "p99": 9.0,
                                                      "p99.9": 9.5}}]}
    lines = report._steps("eddy-eos", sys_)
    head = next(line for line in lines if line.startswith("| offered/s"))
    assert report.CORES_HEAD in head
    row = next(line for line in lines if line.startswith("| 100 "))
    assert "0.50 / 0.40 / 0.30 / 0.05 / 0.10 / 1.20" in row
    sys_["steps"][0].pop("cpu_cores")
    assert report.CORES_HEAD not in "".join(report._steps("eddy-eos", sys_))
