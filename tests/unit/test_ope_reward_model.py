"""The reward models: each kind's formula, the link that keeps predictions in range, cross versus in-sample fits."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.errors import BanditError
from bandits.ope import DirectMethod
from bandits.ope.dataset import BanditFeedback
from bandits.ope.reward_model import REWARD_MODELS, RewardModelSpec, estimated_rewards, fit_reward_model
from bandits.ope.synthetic import make_synthetic_log, policy_value

pytestmark = pytest.mark.unit


def feedback(reward, action, n_actions, items=None):
    n = len(reward)
    ids = np.array([[f"i{k}" for k in range(n_actions)]] * n) if items is None else items
    return BanditFeedback(reward=np.asarray(reward, float), action=np.asarray(action), pscore=np.full(n, 1 / n_actions),
                          pmf=np.full((n, n_actions), 1 / n_actions), scores=np.zeros((n, n_actions)),
                          mask=np.ones((n, n_actions), bool), item_ids=ids)


def sparse_click_log(seed=0, n=6000, k=20):
    """A log like the issue's: clicks on well under 1% of rounds, so a linear fit predicts below 0 often."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8))
    theta = rng.standard_normal((k, 8))
    truth = 1 / (1 + np.exp(-(x @ theta.T * 0.8 - 6.0)))
    action = rng.integers(0, k, n)
    reward = (rng.random(n) < truth[np.arange(n), action]).astype(float)
    return feedback(reward, action, k), x, truth


@pytest.mark.parametrize("kind", REWARD_MODELS)
@pytest.mark.parametrize("fit", ["cross", "in-sample"])
def test_every_prediction_stays_strictly_inside_the_reward_range_with_no_clip(kind, fit):
    data, x, _ = sparse_click_log()
    q = estimated_rewards(data, x, RewardModelSpec(kind=kind, fit=fit))
    assert q.shape == (data.n_rounds, data.n_actions)
    assert (q > 0).all() and (q < 1).all()


def test_dm_with_a_link_is_not_biased_upwards_on_a_sparse_log():
    data, x, truth = sparse_click_log(n=8000)
    uniform = np.full(truth.shape, 1 / truth.shape[1])
    true_value = policy_value(uniform, truth)
    arrays = dict(reward=data.reward, action=data.action, pscore=data.pscore, action_dist=uniform)
    for kind in ("ridge", "logistic"):
        q = estimated_rewards(data, x, RewardModelSpec(kind=kind))
        dm = DirectMethod().estimate_policy_value(**arrays, estimated_rewards=q)
        assert abs(dm - true_value) < 0.5 * true_value + 0.002, (kind, dm, true_value)


def test_constant_is_the_training_mean_and_per_action_shrinks_towards_it():
    data = feedback([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], 3)
    x = np.zeros((4, 1))
    const = estimated_rewards(data, x, RewardModelSpec(kind="constant", fit="in-sample"))
    assert np.allclose(const, 0.75)
    per = estimated_rewards(data, x, RewardModelSpec(kind="per-action", fit="in-sample", l2=2.0))
    # item 0: (1 + 2 * 0.75) / (2 + 2); item 1: (2 + 1.5) / 4; item 2 never logged: the mean
    assert per[0].tolist() == pytest.approx([0.625, 0.875, 0.75])


def test_cross_fitting_predicts_each_fold_from_the_others_and_in_sample_from_all():
    data = feedback([1.0, 0.0, 1.0, 0.0], [0, 0, 0, 0], 1)
    x = np.zeros((4, 1))
    cross = estimated_rewards(data, x, RewardModelSpec(kind="constant", n_folds=4))
    assert sorted(cross[:, 0].tolist()) == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert cross[:, 0] @ data.reward == pytest.approx(2 / 3)  # a round's own reward pulls its prediction away
    inside = estimated_rewards(data, x, RewardModelSpec(kind="constant", fit="in-sample"))
    assert np.allclose(inside, 0.5)


def test_logistic_fits_the_bernoulli_likelihood_better_than_the_mean():
    log = make_synthetic_log(n_rounds=4000, n_actions=3, dim=4, seed=2)
    data = feedback(log.reward, log.action, 3)
    mean_err = np.abs(log.reward.mean() - log.expected_reward).mean()
    for kind in ("ridge", "logistic"):
        q = estimated_rewards(data, log.context, RewardModelSpec(kind=kind))
        assert np.abs(q - log.expected_reward).mean() < 0.6 * mean_err, kind


def test_rewards_outside_zero_one_are_scaled_into_their_own_range():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 2))
    reward = np.where(x[:, 0] > 0, 5.0, -3.0) + rng.normal(0, 0.1, 500)
    data = feedback(reward, np.zeros(500, int), 1)
    q = estimated_rewards(data, x, RewardModelSpec(kind="ridge", fit="in-sample", l2=0.1))[:, 0]
    assert reward.min() < q.min() and q.max() < reward.max()
    assert np.abs(q - reward).mean() < 0.25 * np.abs(reward.mean() - reward).mean()


def test_a_constant_reward_is_predicted_as_that_constant():
    data = feedback([2.0] * 6, [0, 1, 0, 1, 0, 1], 2)
    for kind in REWARD_MODELS:
        assert np.allclose(estimated_rewards(data, np.ones((6, 2)), RewardModelSpec(kind=kind)), 2.0)


def test_logistic_refuses_non_binary_rewards():
    data = feedback([0.0, 0.5, 1.0], [0, 0, 0], 1)
    with pytest.raises(BanditError, match="logistic reward model needs binary rewards; this log has 3"):
        estimated_rewards(data, np.zeros((3, 1)), RewardModelSpec(kind="logistic"))


def test_unknown_items_and_padding_predict_the_mean():
    model = fit_reward_model("logistic", np.ones((4, 1)), np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 0.0, 1.0]),
                             n_items=2, l2=1.0, reward_range=(0.0, 1.0))
    q = model.predict(np.ones((1, 1)), np.array([[0, 1, -1]]))
    assert q[0, 2] == pytest.approx(0.75) and q[0, 0] > 0.75 > q[0, 1]


@pytest.mark.parametrize("change, message", [
    (dict(kind="tree"), "reward model must be one of"),
    (dict(fit="oob"), "fit must be one of"),
    (dict(n_folds=1), "n_folds must be an integer >= 2"),
    (dict(n_folds=True), "n_folds must be an integer >= 2"),
    (dict(l2=0.0), "l2 must be a finite number > 0"),
    (dict(l2=float("inf")), "l2 must be a finite number > 0"),
    (dict(l2="1"), "l2 must be a finite number > 0"),
])
def test_bad_specs_are_named(change, message):
    with pytest.raises(BanditError, match=message):
        RewardModelSpec(**change)


def test_the_report_records_kind_fit_and_link():
    assert RewardModelSpec(kind="logistic", fit="in-sample").to_dict() == {
        "kind": "logistic", "fit": "in-sample", "n_folds": 1, "l2": 1.0,
        "link": "logistic, scaled to the reward range", "loss": "bernoulli", "seed": 0}
    assert RewardModelSpec(kind="per-action").to_dict()["n_folds"] == 2


@pytest.mark.parametrize("bernoulli", [False, True])
def test_newton_reaches_the_penalised_optimum(bernoulli):
    """First-order optimality of the returned weights: a wrong objective, step or stopping rule leaves a gradient."""
    from bandits.ope.reward_model import _newton, _sigmoid

    rng = np.random.default_rng(5)
    x = np.hstack([rng.standard_normal((400, 3)), np.ones((400, 1))])
    y = (rng.random(400) < _sigmoid(x @ np.array([1.5, -1.0, 0.5, -0.5]))).astype(float)
    offset, l2 = -0.2, 0.7
    w = _newton(x, y, offset, l2, bernoulli)
    p = _sigmoid(offset + x @ w)
    residual = (p - y) if bernoulli else (p - y) * p * (1 - p)
    gradient = x.T @ residual + l2 * w
    assert np.abs(gradient).max() < 1e-6 * (1 + np.abs(x.T @ residual).max())
    assert np.abs(w).max() > 0.3  # and it moved: the data pull the weights away from 0


@pytest.mark.parametrize("kind", REWARD_MODELS)
def test_the_fitted_model_records_what_it_was_fitted_on(kind):
    x = np.hstack([np.eye(4)[[0, 1, 2, 3] * 5], np.ones((20, 1))])
    y = np.array([1.0, 0.0, 0.0, 0.0] * 5)
    model = fit_reward_model(kind, x, np.array([0, 1, 0, 1] * 5), y, n_items=2, l2=1.0, reward_range=(0.0, 1.0))
    assert (model.kind, model.mean, model.lo, model.hi) == (kind, 0.25, 0.0, 1.0)
    assert model.item_means.shape == (3,) and model.item_means[-1] == 0.25
    assert model.offset == (pytest.approx(np.log(0.25 / 0.75)) if kind in ("ridge", "logistic") else 0.0)


def test_folds_follow_the_seed_and_the_output_is_a_float_matrix():
    data, x, _ = sparse_click_log(n=600, k=4)
    a = estimated_rewards(data, x, RewardModelSpec(kind="per-action", seed=1))
    b = estimated_rewards(data, x, RewardModelSpec(kind="per-action", seed=1))
    c = estimated_rewards(data, x, RewardModelSpec(kind="per-action", seed=2))
    assert a.dtype == np.float64 and np.array_equal(a, b) and not np.array_equal(a, c)
    one = estimated_rewards(feedback([1.0], [0], 2), np.zeros((1, 1)), RewardModelSpec(kind="ridge"))
    assert one.dtype == np.float64 and one.tolist() == [[1.0, 1.0]]  # a single round: its own reward, nothing else


def test_a_model_of_equal_rewards_or_of_no_rounds_records_what_it_was_fitted_on():
    m = fit_reward_model("ridge", np.ones((3, 1)), np.array([0, 1, 0]), np.full(3, 2.0), n_items=2, l2=1.0,
                         reward_range=(2.0, 2.0))
    assert (m.kind, m.mean, m.lo, m.hi, m.offset, m.weights) == ("ridge", 2.0, 2.0, 2.0, 0.0, None)
    assert m.item_means.tolist() == [2.0, 2.0, 2.0]
    empty = fit_reward_model("constant", np.zeros((0, 1)), np.zeros(0, dtype=int), np.zeros(0), n_items=2, l2=1.0,
                             reward_range=(0.0, 4.0))
    assert empty.mean == 2.0  # the middle of the range: no round says otherwise


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_each_items_weights_solve_its_own_penalised_loss_even_with_a_column_it_never_uses(kind):
    """``logistic`` minimises the Bernoulli loss, ``ridge`` the squared loss through the link, item by item;
    a context column that is zero in an item's rounds keeps weight 0 there."""
    from bandits.ope.reward_model import _sigmoid

    rng = np.random.default_rng(11)
    n = 300
    x = np.hstack([rng.standard_normal((n, 2)), np.zeros((n, 1)), np.ones((n, 1))])
    item = rng.integers(0, 2, n)
    y = (rng.random(n) < _sigmoid(x[:, 0] - item)).astype(float)
    l2 = 0.5
    m = fit_reward_model(kind, x, item, y, n_items=2, l2=l2, reward_range=(0.0, 1.0))
    for a in range(2):
        xa, ya, w = x[item == a], y[item == a], m.weights[a]
        p = _sigmoid(m.offset + xa @ w)
        residual = (p - ya) if kind == "logistic" else (p - ya) * p * (1 - p)
        gradient = xa.T @ residual + l2 * w
        assert np.abs(gradient).max() < 1e-6 * (1 + np.abs(xa.T @ residual).max()) and w[2] == 0.0


def test_a_training_set_of_only_the_highest_reward_still_predicts_inside_the_range():
    """The link-scale mean is kept off 1: its logit is the offset of every prediction."""
    m = fit_reward_model("logistic", np.ones((4, 1)), np.array([0, 0, 1, 1]), np.ones(4), n_items=2, l2=1.0,
                         reward_range=(0.0, 1.0))
    q = m.predict(np.ones((1, 1)), np.array([[0, 1, -1]]))
    assert np.isfinite(m.offset) and np.isfinite(q).all() and (q < 1).all()
