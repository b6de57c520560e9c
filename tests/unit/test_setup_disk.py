"""deploy/setup refuses to start a new .venv on a disk too full for it, in one line, before pip runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SETUP = Path(__file__).resolve().parents[2] / "deploy" / "setup"


@pytest.mark.skipif(not all(shutil.which(t) for t in ("java", "mvn", "redis-server", "redis-cli", "prometheus",
                                                       "openssl")),
                    reason="deploy/setup would install Debian packages first")
def test_a_disk_without_room_for_the_venv_gets_one_clear_line(tmp_path, monkeypatch):
    (tmp_path / "deploy").mkdir()
    shutil.copy(SETUP, tmp_path / "deploy" / "setup")
    monkeypatch.setenv("EDDY_SETUP_MIN_FREE_GIB", str(10**9))  # more than any disk has
    done = subprocess.run(["bash", str(tmp_path / "deploy" / "setup")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("setup: error: only ") and "free some space" in error[0]
    assert "Traceback" not in done.stderr and not (tmp_path / ".venv").exists()
