"""The shared bootstrap computes each estimator's own percentile interval."""

import numpy as np
import pytest

from bandits.ope import ESTIMATORS
from bandits.ope.base import Terms
from bandits.ope.synthetic import make_synthetic_log
from bandits.ope.bootstrap import shared_intervals

pytestmark = pytest.mark.unit


def test_matches_each_estimators_own_interval():
    log = make_synthetic_log(n_rounds=3000, n_actions=4, seed=2)
    rng = np.random.default_rng(0)
    target = rng.dirichlet(np.ones(4), size=3000)
    q = np.clip(log.expected_reward + rng.normal(0, 0.1, log.expected_reward.shape), 0, 1)
    arrays = dict(reward=log.reward, action=log.action, pscore=log.pscore, action_dist=target)
    terms, own = [], []
    for name, cls in ESTIMATORS.items():
        est = cls()
        er = q if est.requires_estimated_rewards else None
        terms.append(est._prepare(log.reward, log.action, log.pscore, target, er))
        own.append(est.estimate_interval(**arrays, estimated_rewards=er, n_bootstrap_samples=4000, random_state=1))
    shared = shared_intervals(terms, n_bootstrap=4000, alpha=0.05, seed=3)
    for (lo, hi), ref in zip(shared, own):
        width = ref["upper"] - ref["lower"]
        assert abs(lo - ref["lower"]) < 0.1 * width and abs(hi - ref["upper"]) < 0.1 * width


def test_chunks_give_the_same_answer_as_one_pass(monkeypatch):
    import bandits.ope.bootstrap as b

    t = [Terms(direct=None, weighted=np.arange(50.0), norm=np.ones(50))]
    whole = b.shared_intervals(t, n_bootstrap=300, alpha=0.05, seed=0)
    monkeypatch.setattr(b, "CHUNK_ELEMENTS", 50 * 7)  # 7 resamples per chunk
    assert b.shared_intervals(t, n_bootstrap=300, alpha=0.05, seed=0) == whole


def test_undefined_resamples_are_left_out_and_all_undefined_is_nan():
    w = np.array([0.0, 0.0, 0.0, 2.0])
    [(lo, hi)] = shared_intervals([Terms(None, w * 1.0, norm=w)], n_bootstrap=500, alpha=0.05, seed=0)
    assert lo == hi == 1.0  # defined resamples all give 1; the rest are skipped
    [(lo, hi)] = shared_intervals([Terms(None, np.zeros(3), norm=np.zeros(3))], n_bootstrap=20, alpha=0.05, seed=0)
    assert np.isnan(lo) and np.isnan(hi)
