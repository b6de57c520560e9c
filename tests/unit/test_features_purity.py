"""``features`` is pure computation: no Kafka, Redis, Faust or asyncio imports (house style rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

FORBIDDEN = {"asyncio", "faust", "kafka", "aiokafka", "confluent_kafka", "redis", "stream", "learners", "bandits"}
PACKAGE = Path(__file__).resolve().parents[2] / "features"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_nothing_impure(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    assert not roots & FORBIDDEN, f"{path.name} imports {sorted(roots & FORBIDDEN)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_is_small(path):
    assert len(path.read_text().splitlines()) < 400
