"""``eddy worker --processes 2``: two group members share the partitions, a crashed one is restarted,
and SIGTERM to the parent stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from stream.store import RedisStore

from .helpers import worker_env, wait_for
from .test_recovery import Counting, _check_exactly_once, _loop_in_background, _wait_all_feedback_applied

pytestmark = pytest.mark.integration


def _children(parent: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_two_worker_processes_share_the_partitions_and_survive_a_child_crash(settings, live_model, tmp_path):
    log = tmp_path / "workers.log"
    parent = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--processes", "2"],
                              env=worker_env(settings), stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: log.read_text(errors="replace").count("claimed epochs") >= 2, timeout_s=180)
        updates = Counting(settings, "model-updates")
        t, result = _loop_in_background(settings, count=1200, rate=120, users=30, items=15, wait_s=90)
        wait_for(lambda: updates.poll() >= 100, timeout_s=60, interval_s=0)
        kids = _children(parent)
        assert len(kids) == 2
        os.kill(kids[0], signal.SIGKILL)  # the parent restarts it; its partitions come back
        t.join(timeout=240)
        assert not t.is_alive()
        _wait_all_feedback_applied(settings, updates)
        updates.close()
        assert "restarting it" in log.read_text(errors="replace")
    finally:
        parent.send_signal(signal.SIGTERM)
        rc = parent.wait(timeout=60)
    assert rc == 0, log.read_text(errors="replace")[-3000:]
    _check_exactly_once(settings, live_model.version, result, logs=[log])
    stats = RedisStore.from_settings(settings).read_stats(settings.group)
    assert {"w0-p0", "w0-p1"} <= set(stats), stats.keys()
    assert all(stats[w].get("consumed", 0) > 0 for w in ("w0-p0", "w0-p1")), stats
