"""The house's layering, in one table: which part of the code may import which, and no import cycles.

Every module's imports are read from its syntax tree: module-level and
function-local ``import``/``from`` statements, relative imports, and
``importlib.import_module("a.literal")``. Each module belongs to the layer
whose key is its longest dotted prefix in :data:`ALLOWED`; an import from
layer A to layer B must be listed in ``ALLOWED[A]`` (a layer lists itself
when its modules may import each other). Imports under ``if TYPE_CHECKING:``
count too, for arrows and for cycles: a type named is a dependency, even if
the import never runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "learners", "bandits", "stream", "benchmarks", "tests")

PURE = {"features", "learners", "bandits", "bandits.ope", "stream.engine"}
"""Layers that do no I/O: they take and return values, and never import :data:`IO_LIBRARIES`."""
IO_LIBRARIES = {"confluent_kafka", "aiokafka", "kafka", "faust", "redis", "asyncio", "socket", "uvicorn",
                "requests", "urllib3", "httpx", "aiohttp"}

_PURE_CODE = {"features", "learners", "bandits", "bandits.ope"}
# the records, the settings and the flags' value types: what every stream layer shares
_STREAM_BASE = {"stream.events", "stream.config", "stream.argtypes"}
ALLOWED: dict[str, set[str]] = {
    # layer                     the layers it may import
    "features":                 {"features"},
    "learners":                 {"learners", "features"},
    "bandits":                  {"bandits", "features"},
    "bandits.ope":              {"bandits.ope", "bandits", "features"},
    "stream.events":            {"stream.events", "features"},
    "stream.config":            {"stream.argtypes", "features"},
    "stream.argtypes":          set(),
    "stream.engine":            {"stream.engine", "features", "learners", "bandits", *_STREAM_BASE},
    "stream":                   {"stream", "stream.engine", "features", "learners", "bandits", *_STREAM_BASE},
    "stream.replay":            {"stream.replay", "stream", "stream.engine", *_PURE_CODE, *_STREAM_BASE},
    "stream.demo":              {"stream.demo", "stream", "stream.engine", *_PURE_CODE, *_STREAM_BASE},
    # one module per verb, none importing another; only `eddy demo` runs the demo
    "stream.commands":          {"stream", "stream.engine", "stream.replay", *_PURE_CODE, *_STREAM_BASE},
    "stream.commands.demo_cmd": {"stream.demo", "stream", "stream.engine", *_PURE_CODE, *_STREAM_BASE},
    "stream.cli":               {"stream.commands", "features", *_STREAM_BASE},
    # the harness drives the product from outside; nothing in the product imports it
    "benchmarks":               {"benchmarks", "benchmarks.plots", "stream", "stream.engine", "stream.replay",
                                 *_PURE_CODE, *_STREAM_BASE},
    # how every benchmark lays out and saves a figure: a leaf, importing nothing of the project
    "benchmarks.plots":         set(),
    # the feature-cache side benchmarks measure on the demo's data (MovieLens-100K, or the simulator)
    "benchmarks.lsh_coarsening": {"benchmarks.plots", "stream.demo", "stream", *_PURE_CODE, *_STREAM_BASE},
    "benchmarks.feature_cache": {"stream.demo", "stream", *_PURE_CODE, *_STREAM_BASE},
    "benchmarks.cuda_check":    {"stream.demo", "stream", *_PURE_CODE, *_STREAM_BASE},
    # the anytime and cascade side benchmarks drive a live worker with the demo's data
    "benchmarks.serving_load":  {"stream.demo", "stream", *_PURE_CODE, *_STREAM_BASE},
    "benchmarks.anytime":       {"benchmarks.serving_load", "benchmarks.plots", *_PURE_CODE, *_STREAM_BASE},
    "benchmarks.cascade":       {"benchmarks.serving_load", "benchmarks.plots", "stream.engine", *_PURE_CODE,
                                 *_STREAM_BASE},
    "tests":                    {"tests", "benchmarks", "benchmarks.plots", "stream.cli", "stream.commands",
                                 "stream.commands.demo_cmd", "stream.demo", "stream.replay", "stream", "stream.engine", *_PURE_CODE,
                                 *_STREAM_BASE},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def layer(module: str) -> str:
    """The longest key of ALLOWED that is ``module`` or a dotted prefix of it."""
    keys = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    if not keys:
        raise AssertionError(f"{module} belongs to no layer: add it to ALLOWED")
    return max(keys, key=len)


def imports(module: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``module``.

    ``from a.b import c`` names ``a.b.c`` when that is a module of the house, else ``a.b``.
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                found.append((f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source, node.lineno))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"):
            found.append((node.args[0].value, node.lineno))
    return found


def house_imports(module: str) -> list[tuple[str, int]]:
    """The imports of modules of the house (the nearest enclosing module for ``a.b.name``)."""
    out = []
    for name, line in imports(module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            out.append((name, line))
    return out


def test_the_parser_sees_every_kind_of_import(tmp_path, monkeypatch):
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "from . import errors\n"
        "from .base import Policy\n"
        "if TYPE_CHECKING:\n"
        "    from stream.config import Settings\n"
        "def f():\n"
        "    import redis\n"
        "    return importlib.import_module('benchmarks.cli')\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    monkeypatch.setitem(MODULES, "bandits._layering_probe", probe)  # read as if it stood in bandits/
    assert imports("bandits._layering_probe") == [
        ("importlib", 1), ("typing", 2), ("bandits.errors", 3), ("bandits.base", 4), ("stream.config", 6),
        ("redis", 8), ("benchmarks.cli", 9)]


def test_every_layer_in_the_table_holds_code_and_every_module_has_a_layer():
    for module in MODULES:
        layer(module)
    empty = [k for k in ALLOWED if not any(m == k or m.startswith(k + ".") for m in MODULES)]
    assert not empty, f"layers with no module (stale rows of ALLOWED): {empty}"


def test_every_import_runs_in_an_allowed_direction():
    wrong = set()
    for module in MODULES:
        here = layer(module)
        for target, line in house_imports(module):
            there = layer(target)
            if there not in ALLOWED[here]:
                wrong.add(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} ({here}) -> {target} ({there})")
    assert not wrong, "imports against the layering table:\n" + "\n".join(sorted(wrong))


def test_pure_layers_import_no_io_library():
    wrong = []
    for module in MODULES:
        if layer(module) in PURE:
            for target, line in imports(module):
                if target.split(".")[0] in IO_LIBRARIES:
                    wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {target}")
    assert not wrong, "pure code imports I/O:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_loop_and_only_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_no_import_cycle_between_modules():
    """Function-local and TYPE_CHECKING imports count: a loop of them is a loop of knowledge, even if
    it never deadlocks. A package's ``__init__`` handing on names of its own modules is not a loop."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        if layer(module) == "tests":
            continue
        graph[module] = {t for t, _ in house_imports(module) if t != module and not module.startswith(t + ".")}
    cycles = _cycles(graph)
    detail = ["  " + " <-> ".join(c) + ": " + "; ".join(f"{a} -> {b}" for a in c for b in sorted(graph[a]) if b in c)
              for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


@pytest.mark.parametrize("path", sorted((ROOT / "features").glob("*.py")), ids=lambda p: p.name)
def test_feature_modules_are_small(path):
    """House style 11: a module rarely runs past ~400 lines (kept from the features purity test)."""
    assert len(path.read_text().splitlines()) < 400


def test_eddy_bench_hands_over_to_the_harness_without_importing_it():
    """``eddy bench ARGS`` becomes ``python -m benchmarks ARGS``: the harness answers its own --help."""
    code = ("import sys; from stream import cli; rc = cli.build_parser().parse_args(['bench', '--quick', '-h']); "
            "print(rc.bench_args, 'benchmarks' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["['--quick',", "'-h']", "False"], out.stdout + out.stderr
    done = subprocess.run([sys.executable, "-m", "stream.cli", "bench", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m benchmarks"), done.stdout + done.stderr
