"""The benchmark's profiled worker: SIGUSR1 starts cProfile, SIGUSR2 writes the stats, then their wall time."""

from __future__ import annotations

import json
import os
import pstats
import signal

import pytest

from benchmarks.sut import _profile_on_signals

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_the_stats_and_their_wall_time_are_written_whole_once_profiling_stops(tmp_path, restored_signals):
    path = tmp_path / "eddy.prof"
    _profile_on_signals(str(path))
    os.kill(os.getpid(), signal.SIGUSR1)
    sum(i * i for i in range(10_000))
    assert not (tmp_path / "eddy.prof.json").exists()  # the runner waits for this file: not before the stats
    os.kill(os.getpid(), signal.SIGUSR2)
    # The runner reads the file as soon as it exists: it appears whole (renamed), never empty.
    assert json.loads((tmp_path / "eddy.prof.json").read_text())["wall_s"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eddy.prof", "eddy.prof.json"]
    assert pstats.Stats(str(path)).total_calls > 0
