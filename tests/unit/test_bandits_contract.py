"""One contract suite over every policy (like river's checks), plus the package's purity rule."""

import ast
import copy
import pickle
from pathlib import Path

import numpy as np
import pytest

import bandits
from bandits import POLICIES, Candidates, Decision, Policy, make_policy

pytestmark = pytest.mark.unit

SPECS = [
    "epsilon_greedy:epsilon=0.1",
    "greedy",
    "softmax:temperature=0.5",
    "thompson:n_samples=64",
    "ucb:alpha=1,epsilon=0.05",
    "vw:exploration=squarecb,gamma_scale=10",
    "vw:exploration=epsilon,epsilon=0.2",
    "vw:exploration=cover,cover=3,interactions=ai",
]


def frozen_candidates(seed=0, n=6, d=4):
    """Candidates whose arrays are read-only, so any in-place write raises."""
    rng = np.random.default_rng(seed)
    arrays = dict(
        scores=rng.normal(size=n),
        embeddings=rng.normal(size=(n, d)),
        posterior_mean=rng.normal(size=d),
        posterior_cov=0.1 * np.eye(d) + 0.01,
    )
    for a in arrays.values():
        a.flags.writeable = False
    return Candidates(**arrays, action_ids=tuple(f"item-{i}" for i in range(n)))


def trained(policy):
    """VW policies learn a little first, so the contract covers a non-trivial model."""
    if hasattr(policy, "learn"):
        rng = np.random.default_rng(7)
        for i in range(30):
            c = frozen_candidates(seed=i)
            policy.learn(c, chosen=int(rng.integers(c.n)), reward=float(rng.random()), propensity=1 / c.n)
    return policy


@pytest.fixture(params=SPECS)
def policy(request):
    return trained(make_policy(request.param))


def test_every_registered_policy_is_covered():
    assert {s.split(":")[0] for s in SPECS} == set(POLICIES)


def test_pmf_is_valid(policy):
    for seed in range(5):
        c = frozen_candidates(seed)
        pmf = policy.distribution(c, np.random.default_rng(seed))
        assert pmf.shape == (c.n,)
        assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-6)


def test_decide_returns_consistent_decision(policy):
    c = frozen_candidates()
    d = policy.decide(c, np.random.default_rng(11))
    assert isinstance(d, Decision)
    assert 0 <= d.chosen < c.n
    assert d.propensity == d.pmf[d.chosen] > 0
    assert d.policy == policy.name
    assert d.policy_version == policy.version
    assert d.pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert not d.pmf.flags.writeable
    record = d.to_dict()
    assert record["pmf"] == d.pmf.tolist() and record["chosen"] == d.chosen


def test_decide_does_not_mutate_inputs(policy):
    c = frozen_candidates()  # read-only arrays: in-place writes would raise
    before = {k: copy.deepcopy(getattr(c, k)) for k in ("scores", "embeddings", "posterior_mean", "posterior_cov")}
    policy.decide(c, np.random.default_rng(0))
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(c, k), v)


def test_same_seed_same_decision(policy):
    c = frozen_candidates()
    assert policy.decide(c, np.random.default_rng(5)) == policy.decide(c, np.random.default_rng(5))


def test_pickle_round_trip_decides_identically(policy):
    c = frozen_candidates()
    clone = pickle.loads(pickle.dumps(policy))
    assert clone.version == policy.version
    assert clone.decide(c, np.random.default_rng(9)) == policy.decide(c, np.random.default_rng(9))


def test_params_round_trip_through_make_policy(policy):
    rebuilt = make_policy({"name": policy.name, **policy.params()})
    assert type(rebuilt) is type(policy)
    assert rebuilt.params() == policy.params()
    assert policy.version.startswith(f"{policy.name}/")


def test_private_state_is_underscored(policy):
    public = {k for k in vars(policy) if not k.startswith("_")}
    assert public == set(policy.params())


def test_repr_names_class_and_params(policy):
    assert repr(policy).startswith(type(policy).__name__ + "(")


def test_policies_are_policy_subclasses():
    assert all(issubclass(cls, Policy) for cls in POLICIES.values())


FORBIDDEN = {"kafka", "confluent_kafka", "aiokafka", "redis", "faust", "asyncio", "torch", "river", "stream"}


def test_bandits_package_is_pure():
    root = Path(bandits.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
