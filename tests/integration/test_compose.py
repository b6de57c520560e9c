"""docker-compose.yml loads with compose-go, the loader `docker compose` uses (schema, interpolation),
through deploy/compose-check; no Docker needed. Needs Go (>= 1.24) and the Go module proxy once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose_check(tmp_path_factory) -> Path:
    go = shutil.which("go")
    if go is None:  # Go is not one of the stack's parts (deploy/setup installs no Go); say so, loudly
        pytest.skip("go is not installed: deploy/compose-check needs Go >= 1.24 to run compose's own loader")
    checker = tmp_path_factory.mktemp("compose-check") / "compose-check"
    build = subprocess.run([go, "build", "-o", str(checker), "."], cwd=ROOT / "deploy/compose-check",
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    return checker


def _services(checker: Path, *files: str) -> set[str]:
    out = subprocess.run([str(checker), *(str(ROOT / f) for f in files)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_compose_file_loads_with_compose_go(compose_check):
    assert _services(compose_check, "docker-compose.yml") >= {"kafka", "redis", "worker", "prometheus", "grafana"}


def test_the_authenticated_override_loads_and_only_changes_existing_services(compose_check):
    # a service name the base file does not have would add a half-defined service instead
    assert _services(compose_check, "docker-compose.yml", "deploy/compose.secure.yml") == \
        _services(compose_check, "docker-compose.yml")
