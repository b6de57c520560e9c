"""The forgetting Bayesian learner: what the forgetting factors do, their batch definition, and the
state written before the bias had a rate of its own."""

from __future__ import annotations

import numpy as np
import pytest

from learners import BayesianLinearUserModel, ForgettingBayesUserModel, LearnerError, load_user_model

pytestmark = pytest.mark.unit

DIM = 3


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM))
    return X, X @ np.array([1.0, -0.5, 2.0]) + 0.3 + rng.normal(scale=0.2, size=n)


def test_forgetting_one_is_the_plain_bayesian_model():
    X, y = _data(60)
    prior = np.array([0.1, 0.2, 0.3, 3.0])
    rls = ForgettingBayesUserModel(DIM, prior_mean=prior, prior_precision=4.0, forgetting=1.0, bias_forgetting=None,
                                   bias_precision=None)
    plain = BayesianLinearUserModel(DIM, prior_mean=prior, prior_precision=4.0)
    for x, t in zip(X, y):
        rls.learn_one(x, t)
        plain.learn_one(x, t)
    np.testing.assert_allclose(rls.posterior()[0], plain.posterior()[0], rtol=1e-12)
    np.testing.assert_allclose(rls.posterior()[1], plain.posterior()[1], rtol=1e-12)


def test_matches_the_weighted_ridge_solution():
    """theta = (g^n lam I + sum g^(n-i) x x') ^-1 (g^n lam m0 + sum g^(n-i) x y)."""
    X, y = _data(40, seed=1)
    lam, gamma, m0 = 5.0, 0.9, np.array([0.5, 0.0, -0.5, 3.0])
    model = ForgettingBayesUserModel(DIM, prior_mean=m0, prior_precision=lam, forgetting=gamma, bias_forgetting=gamma,
                                     bias_precision=lam)
    for x, t in zip(X, y):
        model.learn_one(x, t)
    n = len(y)
    Xt = np.hstack([X, np.ones((n, 1))])
    weights = gamma ** (n - 1 - np.arange(n))
    A = gamma**n * lam * np.eye(DIM + 1) + (Xt * weights[:, None]).T @ Xt
    b = gamma**n * lam * m0 + (Xt * (weights * y)[:, None]).sum(0)
    np.testing.assert_allclose(model.posterior()[0], np.linalg.solve(A, b), rtol=1e-8)


def test_recent_observations_win_after_a_change_of_taste():
    X, y = _data(300, seed=2)
    y2 = -y  # the same user, taste reversed
    tracking = ForgettingBayesUserModel(DIM, forgetting=0.95, bias_forgetting=None)
    plain = ForgettingBayesUserModel(DIM, forgetting=1.0, bias_forgetting=None)
    for x, t in zip(np.vstack([X, X]), np.concatenate([y, y2])):
        tracking.learn_one(x, t)
        plain.learn_one(x, t)
    X_new, y_new = _data(100, seed=3)
    err_tracking = np.abs(tracking.predict_many(X_new) + y_new).mean()
    err_plain = np.abs(plain.predict_many(X_new) + y_new).mean()
    assert err_tracking < 0.3 < err_plain


@pytest.mark.parametrize("value", [0.0, -0.5, 1.01, float("nan"), "0.9"])
def test_forgetting_out_of_range_is_named(value):
    with pytest.raises(LearnerError, match="^forgetting "):
        ForgettingBayesUserModel(DIM, forgetting=value)


def test_bytes_carry_the_forgetting_factor_and_reject_a_bad_one():
    model = ForgettingBayesUserModel(DIM, forgetting=0.97)
    model.learn_one(np.ones(DIM), 4.0)
    clone = load_user_model(model.to_bytes())
    assert isinstance(clone, ForgettingBayesUserModel) and clone.forgetting == 0.97
    model.forgetting = 1.5  # corrupt the state the way a foreign writer could
    with pytest.raises(LearnerError, match="forgetting"):
        load_user_model(model.to_bytes())


def test_defaults_are_the_documented_two_rates_and_two_strengths():
    """The documented defaults (mutmut: ``prior_precision`` 4 -> 5): weights 4 and 0.995, bias 8 and 0.97
    (docs/demo.md, "The learner")."""
    model = ForgettingBayesUserModel(DIM)
    assert (model.prior_precision, model.noise_variance, model.forgetting, model.bias_forgetting,
            model.bias_precision) == (4.0, 1.0, 0.995, 0.97, 8.0)


def test_n_obs_counts_every_observation_through_bytes():
    """mutmut ``_n_obs = 1``: the update's version number is n_obs; it must count."""
    X, y = _data(5)
    model = ForgettingBayesUserModel(DIM)
    for x, t in zip(X, y):
        model.learn_one(x, t)
    assert model.n_obs == 5 and load_user_model(model.to_bytes()).n_obs == 5


def test_samples_after_learning_follow_the_new_posterior():
    """mutmut ``_chol = ""`` after learning: the sampler must refactor the new covariance, not reuse a
    stale (or bogus) factor. 4,000 draws: their mean within 5 standard errors of the posterior mean."""
    X, y = _data(30)
    model = ForgettingBayesUserModel(DIM, forgetting=0.9)
    rng = np.random.default_rng(0)
    model.learn_one(X[0], y[0])
    model.sample_weights(rng)  # factor the one-observation posterior
    for x, t in zip(X[1:], y[1:]):
        model.learn_one(x, t)
    mean, cov = model.posterior()
    draws = np.array([np.append(*model.sample_weights(rng)) for _ in range(4000)])
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / 4000))


def test_forgetting_one_round_trips_through_bytes():
    """mutmut ``0 < forgetting < 1``: gamma = 1 (no forgetting) is valid state."""
    model = ForgettingBayesUserModel(DIM, forgetting=1.0)
    model.learn_one(np.ones(DIM), 1.0)
    assert load_user_model(model.to_bytes()).forgetting == 1.0


@pytest.mark.parametrize("gamma", [0.0, 1.5])
def test_a_stored_forgetting_out_of_range_is_named_with_its_value(gamma):
    """mutmut ``0 <=``, ``<= 2`` and the message's index: the stored value, named, in the store's terms."""
    model = ForgettingBayesUserModel(DIM, forgetting=0.5)
    model.forgetting = gamma
    with pytest.raises(LearnerError) as err:
        load_user_model(model.to_bytes())
    assert str(err.value) == f"data holds forgetting={gamma}, must be in (0, 1]"


def test_a_payload_of_the_wrong_length_names_the_kind_dim_and_length():
    """mutmut: the message's dim dropped, or the expected length a float (``/ 2``)."""
    from learners import _codec

    blob = _codec.encode(_codec.Kind.RLS, DIM, 0, np.ones(16))  # a valid frame around a short payload
    with pytest.raises(LearnerError) as err:
        load_user_model(blob)
    assert str(err.value) == "data holds 16 float64 values, a rls model of dim 3 needs 19"


def test_the_bias_forgets_at_its_own_rate_and_starts_from_its_own_prior_strength():
    """With D = diag(sqrt(g), .., sqrt(g_b)): A_n = D^n Lambda D^n + sum_i D^(n-i) x~_i x~_i' D^(n-i), and
    A_n theta_n = D^n Lambda D^n m0 + sum_i D^(n-i) x~_i y_i... only when the mean is kept through each decay,
    so compare with the recursion written out in the information form instead."""
    X, y = _data(50, seed=4)
    m0 = np.array([0.2, -0.1, 0.0, 3.0])
    model = ForgettingBayesUserModel(DIM, prior_mean=m0, prior_precision=3.0, forgetting=0.99,
                                     bias_forgetting=0.9, bias_precision=7.0)
    D = np.sqrt(np.array([0.99, 0.99, 0.99, 0.9]))
    A = np.diag([3.0, 3.0, 3.0, 7.0])
    theta = m0.copy()
    for x, t in zip(X, y):
        xt = np.append(x, 1.0)
        A = D[:, None] * A * D[None, :]
        b = A @ theta + xt * t  # the decay keeps the mean
        A = A + np.outer(xt, xt)
        theta = np.linalg.solve(A, b)
        model.learn_one(x, t)
    mean, cov = model.posterior()
    np.testing.assert_allclose(mean, theta, rtol=1e-9)
    np.testing.assert_allclose(cov, np.linalg.inv(A), rtol=1e-8)


def test_a_state_written_before_the_bias_had_its_own_rate_is_read():
    """[prior_precision, noise_variance, forgetting, b, triu P]: one rate for both, mean = P b."""
    from learners import _codec

    old = ForgettingBayesUserModel(DIM, prior_precision=5.0, forgetting=0.99, bias_forgetting=None, bias_precision=None)
    X, y = _data(20, seed=5)
    for x, t in zip(X, y):
        old.learn_one(x, t)
    P = old._P
    rows, cols = _codec.triu_indices(DIM + 1)
    payload = np.concatenate(([5.0, 1.0, 0.99], np.linalg.solve(P, old._mean), P[rows, cols]))
    clone = load_user_model(_codec.encode(_codec.Kind.RLS, DIM, old.n_obs, payload))
    assert (clone.forgetting, clone.bias_forgetting, clone.bias_precision, clone.n_obs) == (0.99, 0.99, 5.0, 20)
    np.testing.assert_allclose(clone.posterior()[0], old.posterior()[0], rtol=1e-10)
    assert load_user_model(clone.to_bytes()).to_bytes() == clone.to_bytes()
