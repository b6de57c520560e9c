"""Open Bandit Pipeline export: keys, shapes, dtypes, and a file that loads without pickle."""

import numpy as np
import pytest

from stream.replay.dataset import BanditLog
from stream.replay.obp import bandit_feedback, save_bandit_feedback
from stream.replay.synthetic import synthetic_rounds

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def log():
    rounds, _ = synthetic_rounds(120, users=5, items=8, seed=4)
    return BanditLog.from_rounds(rounds)


def test_shapes_and_dtypes(log):
    fb = bandit_feedback(log, context_dim=16)
    n, k = log.n_rounds, log.n_actions
    expected = {
        "n_rounds": ((), np.int64), "n_actions": ((), np.int64),
        "action": ((n,), np.int64), "position": ((n,), np.int64),
        "reward": ((n,), np.float64), "pscore": ((n,), np.float64),
        "context": ((n, 16), np.float64), "action_dist_logging": ((n, k), np.float64),
        "action_mask": ((n, k), np.bool_), "scores": ((n, k), np.float64), "timestamp": ((n,), np.float64),
    }
    for key, (shape, dtype) in expected.items():
        assert np.shape(fb[key]) == shape, key
        assert np.asarray(fb[key]).dtype == dtype, key
    assert fb["item_ids"].shape == (n, k) and fb["item_ids"].dtype.kind == "U"
    assert int(fb["n_rounds"]) == n and int(fb["n_actions"]) == k
    assert not fb["position"].any()
    assert np.allclose(fb["action_dist_logging"].sum(axis=1), 1.0)
    assert np.allclose(fb["pscore"], fb["action_dist_logging"][np.arange(n), fb["action"]])
    assert (fb["action"] < log.n_candidates).all()


def test_padding_columns_are_zero():
    from stream.events import Decision, Item
    from stream.replay.rounds import LoggedRound

    def d(rid, n):
        return Decision(rid, "u", 0.0, {}, tuple(Item(f"i{j}") for j in range(n)), (0.0,) * n, (1.0 / n,) * n, 0,
                        1.0 / n, "epsilon_greedy", "e", 0, "v1", 0)

    fb = bandit_feedback(BanditLog.from_rounds([LoggedRound(d("a", 2), 1.0), LoggedRound(d("b", 5), 0.0)]))
    assert fb["action_dist_logging"][0].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]
    assert fb["item_ids"][0].tolist() == ["i0", "i1", "", "", ""]
    assert fb["action_mask"].sum() == 7


def test_saved_npz_loads_without_pickle(log, tmp_path):
    path = save_bandit_feedback(log, tmp_path / "sub" / "feedback", context_dim=8)
    assert path.name == "feedback.npz" and path.exists()
    with np.load(path, allow_pickle=False) as data:
        loaded = dict(data)
    ref = bandit_feedback(log, context_dim=8)
    assert set(loaded) == set(ref)
    for key in ref:
        assert np.array_equal(loaded[key], ref[key]), key
