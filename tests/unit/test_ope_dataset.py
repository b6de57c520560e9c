"""The pure OPE dataset shape and the cross-fitted reward model, without any log reader."""

import numpy as np
import pytest

from bandits.errors import BanditError
from bandits.ope.dataset import BanditFeedback
from bandits.ope.reward_model import RewardModelSpec, estimated_rewards, fit_reward_model
from bandits.ope.synthetic import make_synthetic_log

pytestmark = pytest.mark.unit


def feedback_from(log, *, k_pad=0):
    """A synthetic log as BanditFeedback, every round with every action, ``k_pad`` padded columns."""
    n, k = log.pi_b.shape
    pad = np.zeros((n, k_pad))
    item_ids = np.array([[f"i{a}" for a in range(k)] + [""] * k_pad] * n)
    mask = np.hstack([np.ones((n, k), bool), np.zeros((n, k_pad), bool)])
    return BanditFeedback(reward=log.reward, action=log.action, pscore=log.pscore, pmf=np.hstack([log.pi_b, pad]),
                          scores=np.hstack([log.expected_reward, pad]), mask=mask, item_ids=item_ids)


def test_defaults_and_derived_arrays():
    data = feedback_from(make_synthetic_log(n_rounds=50, n_actions=3, seed=0), k_pad=1)
    assert (data.n_rounds, data.n_actions) == (50, 4)
    assert data.n_candidates.tolist() == [3] * 50
    assert data.seed.dtype == np.uint64 and not data.imputed.any() and not data.ts.any()
    vocab, index = data.item_index
    assert vocab.tolist() == ["i0", "i1", "i2"] and (index[:, 3] == -1).all()
    half = data.subset(np.arange(50) < 25)
    assert half.n_rounds == 25 and half.n_actions == 4 and np.array_equal(half.reward, data.reward[:25])


@pytest.mark.parametrize("change, message", [
    (dict(reward=np.zeros(0)), "at least one round"),
    (dict(pscore=np.ones(3)), r"pscore must have shape \(2,\)"),
    (dict(mask=np.ones((2, 3), bool)), r"mask must have shape \(2, 2\)"),
    (dict(action=np.array([0, 2])), "outside its 2 candidates"),
    (dict(action=np.array([-1, 0])), "outside its"),
])
def test_inconsistent_arrays_are_named(change, message):
    arrays = dict(reward=np.ones(2), action=np.array([0, 1]), pscore=np.full(2, 0.5), pmf=np.full((2, 2), 0.5),
                  scores=np.zeros((2, 2)), mask=np.ones((2, 2), bool), item_ids=np.array([["a", "b"]] * 2))
    with pytest.raises(BanditError, match=message):
        BanditFeedback(**{**arrays, **change})


def test_empty_subset_is_refused():
    data = feedback_from(make_synthetic_log(n_rounds=5, n_actions=2, seed=0))
    with pytest.raises(BanditError, match="empty"):
        data.subset(np.zeros(5, bool))


def test_cross_fitted_model_beats_the_mean_and_respects_padding():
    log = make_synthetic_log(n_rounds=4000, n_actions=4, dim=5, seed=3)
    data = feedback_from(log, k_pad=1)
    q = estimated_rewards(data, log.context, RewardModelSpec(kind="ridge", seed=0))
    assert q.shape == (4000, 5) and not q[:, 4].any()
    assert q[:, :4].min() > 0.0 and q[:, :4].max() < 1.0  # the link keeps it strictly inside the reward range
    err = np.abs(q[:, :4] - log.expected_reward).mean()
    base = np.abs(log.reward.mean() - log.expected_reward).mean()
    assert err < 0.8 * base


def test_cross_fitting_never_predicts_a_round_from_its_own_reward():
    """One round per item: out of fold, each item is unseen, so every prediction is the other folds' mean."""
    x = np.eye(4)
    data = BanditFeedback(reward=np.array([1.0, 0.0, 1.0, 0.0]), action=np.zeros(4, dtype=int), pscore=np.ones(4),
                          pmf=np.ones((4, 1)), scores=np.zeros((4, 1)), mask=np.ones((4, 1), bool),
                          item_ids=np.array([["a"], ["b"], ["c"], ["d"]]))
    q = estimated_rewards(data, x, RewardModelSpec(kind="ridge", n_folds=4, seed=0))
    assert q[:, 0].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 3, 2 / 3])


def test_context_rows_must_match_the_rounds():
    data = feedback_from(make_synthetic_log(n_rounds=10, n_actions=2, seed=0))
    with pytest.raises(BanditError, match=r"context must have shape \(10, d\)"):
        estimated_rewards(data, np.zeros((9, 3)))


def test_ridge_per_item_recovers_separate_items():
    x = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
    model = fit_reward_model("ridge", x, np.array([0, 1] * 50), np.array([1.0, 0.0] * 50), n_items=2, l2=1.0,
                             reward_range=(0.0, 1.0))
    q = model.predict(x[:2], np.array([[0, 1, -1], [0, 1, -1]]))
    assert q[0, 0] > 0.8 and q[1, 1] < 0.2
    assert q[0, 2] == q[1, 2] == pytest.approx(0.5)  # -1: the unknown item predicts the mean
