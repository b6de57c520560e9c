"""RiverUserModel: it is river's SGD linear regression, started from the prior."""

from __future__ import annotations

import numpy as np
import pytest
from river import linear_model, optim

from learners import LearnerError, RiverUserModel, _codec

pytestmark = pytest.mark.unit


def test_matches_a_plain_river_model_step_for_step():
    dim, lr, l2 = 5, 0.03, 0.01
    rng = np.random.default_rng(0)
    prior = rng.normal(size=dim + 1)
    ours = RiverUserModel(dim, prior_mean=prior, lr=lr, l2=l2, normalized=False)
    theirs = linear_model.LinearRegression(optimizer=optim.SGD(lr), l2=l2, intercept_init=prior[-1], intercept_lr=lr)
    for i in range(dim):
        theirs._weights[i] = prior[i]
    for _ in range(100):
        x, y = rng.normal(size=dim), float(rng.normal())
        ours.learn_one(x, y)
        theirs.learn_one(dict(enumerate(x)), y)
    w, b = ours.weights
    np.testing.assert_array_equal(w, [theirs.weights[i] for i in range(dim)])
    assert b == theirs.intercept
    x = rng.normal(size=dim)
    assert ours.predict_one(x) == pytest.approx(theirs.predict_one(dict(enumerate(x))), rel=1e-12)


@pytest.mark.parametrize("normalized,want_w,want_b", [
    # river's squared loss has gradient 2 (y_hat - y): one step moves w by 2 lr (y - y_hat) x
    (False, [1.3, 0.6], 0.8),
    # normalised LMS weights the step by 1 / (1 + |x|^2) = 1/6 here: a sixth of the plain step
    (True, [1.05, 0.1], 0.55),
])
def test_one_step_by_hand(normalized, want_w, want_b):
    model = RiverUserModel(2, prior_mean=np.array([1.0, 0.0, 0.5]), lr=0.1, normalized=normalized)
    model.learn_one(np.array([1.0, 2.0]), 3.0)
    w, b = model.weights
    np.testing.assert_allclose(w, want_w)
    assert b == pytest.approx(want_b)


def test_intercept_lr_defaults_to_lr_and_can_be_set_apart():
    x = np.array([1.0])
    same, frozen = RiverUserModel(1, lr=0.1, normalized=False), RiverUserModel(1, lr=0.1, intercept_lr=0.0, normalized=False)
    same.learn_one(x, 1.0)
    frozen.learn_one(x, 1.0)
    assert same.weights[1] == pytest.approx(0.2)
    assert frozen.weights[1] == 0.0
    assert RiverUserModel.from_bytes(frozen.to_bytes()).intercept_lr == 0.0


def test_optimizer_iteration_count_survives_round_trip():
    model = RiverUserModel(3)
    for _ in range(7):
        model.learn_one(np.ones(3), 1.0)
    clone = RiverUserModel.from_bytes(model.to_bytes())
    assert clone._model.optimizer.n_iterations == model._model.optimizer.n_iterations == 7


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"l2": -1.0}, "l2"),
        ({"intercept_lr": -0.5}, "intercept_lr"),
    ],
)
def test_invalid_hyperparameters(kwargs, name):
    with pytest.raises(LearnerError, match=f"^{name} "):
        RiverUserModel(4, **kwargs)



def test_divergence_is_bounded_by_rivers_gradient_clipping():
    """lr * (|x|^2 + 1) > 1 overshoots every step; river clips gradients at 1e12, so the weights
    blow up to huge but finite values (no inf): the only symptom is absurd predictions."""
    model = RiverUserModel(4, lr=1.0, normalized=False)
    for _ in range(200):
        model.learn_one(np.full(4, 3.0), 1.0)
    assert 1e9 < abs(model.predict_one(np.ones(4))) < np.inf


def test_non_finite_state_refuses_to_serialise():
    with pytest.raises(LearnerError, match="^model state is not finite"):
        _codec.encode(_codec.Kind.RIVER, 1, 0, np.array([0.05, 0.05, 0.0, np.inf, 0.0]))


def test_normalized_steps_stay_stable_where_plain_sgd_diverges():
    rng = np.random.default_rng(0)
    true_w = rng.normal(size=16)
    plain, nlms = RiverUserModel(16, normalized=False), RiverUserModel(16)
    for _ in range(1000):
        x = rng.normal(scale=3.0, size=16)  # |x|^2 ~ 144: plain lr=0.05 overshoots every step
        y = float(true_w @ x)
        plain.learn_one(x, y)
        nlms.learn_one(x, y)
    X = rng.normal(scale=3.0, size=(50, 16))
    assert np.mean(np.abs(nlms.predict_many(X) - X @ true_w)) < 0.1 * np.mean(np.abs(X @ true_w))
    assert np.mean(np.abs(plain.predict_many(X))) > 1e6


def test_hyperparameters_read_back_and_survive_round_trip():
    m0 = np.array([1.0, 2.0, 3.0])
    model = RiverUserModel(2, prior_mean=m0, lr=0.2, l2=0.1, intercept_lr=0.3, normalized=False)
    assert model.prior_mean is m0
    clone = RiverUserModel.from_bytes(model.to_bytes())
    assert (clone.lr, clone.l2, clone.intercept_lr, clone.normalized) == (0.2, 0.1, 0.3, False)


def river_bytes(lr=0.1, intercept_lr=0.1, l2=0.0, extra=0):
    payload = np.concatenate(([lr, intercept_lr, l2, 1.0], np.zeros(3 + extra)))
    return _codec.encode(_codec.Kind.RIVER, 2, 0, payload)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (river_bytes(lr=0.0), "data holds lr=0.0, intercept_lr=0.1, l2=0.0; need lr > 0, others >= 0"),
        (river_bytes(intercept_lr=-1.0), "data holds lr=0.1, intercept_lr=-1.0, l2=0.0; need lr > 0, others >= 0"),
        (river_bytes(l2=-1.0), "data holds lr=0.1, intercept_lr=0.1, l2=-1.0; need lr > 0, others >= 0"),
        (river_bytes(extra=1), "data holds 8 float64 values, a river model of dim 2 needs 7"),
    ],
)
def test_from_bytes_rejects_impossible_hyperparameters(data, message):
    with pytest.raises(LearnerError) as info:
        RiverUserModel.from_bytes(data)
    assert str(info.value) == message
