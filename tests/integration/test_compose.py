"""docker-compose.yml loads with compose-go, the loader `docker compose` uses (schema, interpolation),
through deploy/compose-check; no Docker needed. Needs Go (>= 1.24) and the Go module proxy once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_loads_with_compose_go(tmp_path):
    go = shutil.which("go")
    if go is None:  # Go is not one of the stack's parts (deploy/setup installs no Go); say so, loudly
        pytest.skip("go is not installed: deploy/compose-check needs Go >= 1.24 to run compose's own loader")
    checker = tmp_path / "compose-check"
    build = subprocess.run([go, "build", "-o", str(checker), "."], cwd=ROOT / "deploy/compose-check",
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    out = subprocess.run([str(checker), str(ROOT / "docker-compose.yml")], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {"kafka", "redis", "worker", "prometheus", "grafana"}
