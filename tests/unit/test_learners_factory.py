"""The learners package surface: factory, loader, and purity (no I/O libraries)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import learners
from learners import (
    DEFAULT_KIND,
    BayesianLinearUserModel,
    LearnerError,
    PopulationModel,
    RiverUserModel,
    load_user_model,
    make_user_model,
)
from learners.errors import EddyError

pytestmark = pytest.mark.unit

PACKAGE = pathlib.Path(learners.__file__).parent
FORBIDDEN = {"kafka", "confluent_kafka", "aiokafka", "faust", "mode", "redis", "asyncio", "torch"}


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("river", RiverUserModel), ("bayes", BayesianLinearUserModel), ("ridge", BayesianLinearUserModel)],
)
def test_kinds(kind, cls):
    model = make_user_model(kind, 4)
    assert type(model) is cls and model.dim == 4
    assert type(load_user_model(model.to_bytes())) is cls


def test_default_kind_is_river():
    assert DEFAULT_KIND == "river"
    assert isinstance(make_user_model(DEFAULT_KIND, 3), RiverUserModel)


def test_hyperparameters_are_passed_through():
    assert make_user_model("river", 3, lr=0.2, l2=0.1).lr == 0.2
    model = make_user_model("ridge", 3, prior_mean=np.ones(4), prior_precision=5.0)
    assert model.prior_precision == 5.0
    np.testing.assert_allclose(model.weights[0], 1.0)


@pytest.mark.parametrize("kind", ["sgd", "River", "", None, 1])
def test_unknown_kind(kind):
    with pytest.raises(LearnerError, match=r"^kind must be one of .*" + repr(kind).replace("'", ".")):
        make_user_model(kind, 3)


@pytest.mark.parametrize(("kind", "hyper"), [("river", "prior_precision"), ("bayes", "lr"), ("bayes", "dims")])
def test_unknown_hyperparameter(kind, hyper):
    with pytest.raises(LearnerError, match=f"^hyperparameter '{hyper}'"):
        make_user_model(kind, 3, **{hyper: 1.0})


def test_load_user_model_refuses_a_population_model():
    with pytest.raises(LearnerError, match="^data holds a population model, not a user model"):
        load_user_model(PopulationModel(3).to_bytes())


def test_errors_are_eddy_errors_and_value_errors():
    with pytest.raises(EddyError):
        make_user_model("nope", 3)
    with pytest.raises(ValueError):
        make_user_model("river", 0)


def _imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_sources_import_no_io_library(path):
    assert not _imported_roots(path) & FORBIDDEN


def test_importing_learners_loads_no_io_library():
    """Transitively, through river and numpy. `features` is stubbed to its errors module:
    the project's base exception lives there, and the feature net itself is torch."""
    code = f"""
import sys, types
features = types.ModuleType("features")
features.__path__ = [{str(PACKAGE.parent / "features")!r}]
sys.modules["features"] = features
import learners
loaded = {{name.split(".")[0] for name in sys.modules}}
print(sorted(loaded & {set(FORBIDDEN)!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
