"""BayesianLinearUserModel: Sherman-Morrison against closed-form batch ridge, and the posterior."""

from __future__ import annotations

import numpy as np
import pytest

from learners import BayesianLinearUserModel, LearnerError, _codec
from learners._codec import Kind

pytestmark = pytest.mark.unit


def fitted(dim=6, n=200, lam=2.0, sigma2=0.5, seed=0):
    rng = np.random.default_rng(seed)
    m0 = rng.normal(size=dim + 1)
    X = rng.normal(size=(n, dim))
    y = X @ rng.normal(size=dim) + 0.3 + rng.normal(scale=0.5, size=n)
    model = BayesianLinearUserModel(dim, prior_mean=m0, prior_precision=lam, noise_variance=sigma2)
    for x, t in zip(X, y):
        model.learn_one(x, t)
    Xt = np.column_stack([X, np.ones(n)])
    A = lam * np.eye(dim + 1) + Xt.T @ Xt
    return model, A, lam * m0 + Xt.T @ y


def test_posterior_mean_is_the_batch_ridge_solution():
    model, A, rhs = fitted()
    mean, _ = model.posterior()
    np.testing.assert_allclose(mean, np.linalg.solve(A, rhs), rtol=0, atol=1e-6)
    w, b = model.weights
    np.testing.assert_allclose(np.append(w, b), mean, rtol=0, atol=1e-12)


def test_sherman_morrison_tracks_the_inverse():
    model, A, _ = fitted()
    _, cov = model.posterior()
    np.testing.assert_allclose(cov / model.noise_variance, np.linalg.inv(A), rtol=0, atol=1e-6)


def test_inverse_stays_exactly_symmetric_and_accurate_over_long_runs():
    dim, lam = 16, 1.0
    rng = np.random.default_rng(1)
    model = BayesianLinearUserModel(dim, prior_precision=lam)
    X = rng.normal(size=(5_000, dim)) * rng.uniform(0.01, 10.0, size=dim)  # badly scaled features
    for x in X:
        model.learn_one(x, 1.0)
    P = model.posterior()[1]
    assert np.array_equal(P, P.T)
    Xt = np.column_stack([X, np.ones(len(X))])
    P_exact = np.linalg.inv(lam * np.eye(dim + 1) + Xt.T @ Xt)
    np.testing.assert_allclose(P, P_exact, rtol=1e-6, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(P) > 0)


def test_posterior_covariance_scales_with_noise_variance():
    a, _, _ = fitted(sigma2=1.0)
    b, _, _ = fitted(sigma2=4.0)
    np.testing.assert_allclose(b.posterior()[1], 4.0 * a.posterior()[1], rtol=1e-12)
    np.testing.assert_array_equal(a.posterior()[0], b.posterior()[0])


def test_posterior_returns_copies():
    model, _, _ = fitted()
    mean, cov = model.posterior()
    mean[:] = 0.0
    cov[:] = 0.0
    assert np.any(model.posterior()[0] != 0.0) and np.any(model.posterior()[1] != 0.0)


def test_predict_var_many_is_the_quadratic_form():
    model, _, _ = fitted()
    X = np.random.default_rng(2).normal(size=(20, model.dim))
    Xt = np.column_stack([X, np.ones(len(X))])
    cov = model.posterior()[1]
    np.testing.assert_allclose(model.predict_var_many(X), np.einsum("ij,jk,ik->i", Xt, cov, Xt), rtol=1e-10)
    assert model.predict_var_many(np.empty((0, model.dim))).shape == (0,)


def test_prior_variance_before_data():
    model = BayesianLinearUserModel(3, prior_precision=2.0, noise_variance=0.5)
    # cov = 0.5 / 2 * I, so x~' cov x~ = 0.25 * (|x|^2 + 1)
    np.testing.assert_allclose(model.predict_var_many(np.array([[1.0, 2.0, 2.0]])), [0.25 * 10])


def test_variance_shrinks_with_data():
    rng = np.random.default_rng(3)
    model = BayesianLinearUserModel(4)
    X = rng.normal(size=(10, 4))
    before = model.predict_var_many(X)
    for x in rng.normal(size=(100, 4)):
        model.learn_one(x, 0.0)
    assert np.all(model.predict_var_many(X) < before)


def test_thompson_samples_follow_the_posterior():
    model, _, _ = fitted(dim=3, n=20)
    mean, cov = model.posterior()
    rng = np.random.default_rng(4)
    draws = np.array([np.append(*model.sample_weights(rng)) for _ in range(20_000)])
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=4 * np.sqrt(np.diag(cov).max() / 20_000))
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.05 * np.abs(cov).max())


def stored_model(P, b, noise_variance):
    """The model that bytes holding exactly this P and b decode to (state written after a long run)."""
    rows, cols = _codec.triu_indices(P.shape[0])
    payload = np.concatenate(([1.0, noise_variance], b, P[rows, cols]))
    return BayesianLinearUserModel.from_bytes(_codec.encode(Kind.BAYES, P.shape[0] - 1, 50, payload))


def test_thompson_samples_follow_the_posterior_when_cholesky_fails():
    # A rank-2 P in 3-D, nudged slightly indefinite as drift in rank-one updates can leave
    # it: Cholesky fails, so sample_weights takes its eigendecomposition fallback.
    a, c = np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0])
    P = np.outer(a, a) + np.outer(c, c) - 1e-6 * np.eye(3)
    model = stored_model(P, b=np.array([1.0, -1.0, 0.5]), noise_variance=2.0)
    mean, cov = model.posterior()
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(cov)
    n = 20_000
    rng = np.random.default_rng(5)
    draws = np.array([np.append(*model.sample_weights(rng)) for _ in range(n)])
    # Gaussian draws: a sample covariance entry has standard error sqrt((C_ij^2 + C_ii C_jj) / n),
    # so 5 of them bound each entry with a false-failure rate below 1e-5 for the 6 entries. A
    # transposed factor would give covariance diag(eigenvalues), off by 2 and more here.
    entry_se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    np.testing.assert_array_less(np.abs(np.cov(draws.T) - cov), 5 * entry_se)
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - mean), 5 * np.sqrt(np.diag(cov) / n))
    # nothing moves along the null vector a x c: its eigenvalue (-2e-6) is clipped to 0, not flipped
    null = np.cross(a, c) / np.linalg.norm(np.cross(a, c))
    assert np.abs((draws - mean) @ null).max() < 1e-5


def test_thompson_sampling_is_seeded():
    model, _, _ = fitted()
    a = model.sample_weights(np.random.default_rng(7))
    b = model.sample_weights(np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    model.learn_one(np.ones(model.dim), 100.0)  # the cached Cholesky factor is refreshed
    c = model.sample_weights(np.random.default_rng(7))
    assert not np.array_equal(a[0], c[0])


def test_sample_weights_rejects_legacy_random_state():
    with pytest.raises(LearnerError, match="^rng "):
        BayesianLinearUserModel(2).sample_weights(np.random.RandomState(0))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"prior_precision": -1.0}, "prior_precision"),
        ({"prior_precision": float("inf")}, "prior_precision"),
        ({"noise_variance": 0.0}, "noise_variance"),
        ({"noise_variance": float("nan")}, "noise_variance"),
        ({"noise_variance": "1"}, "noise_variance"),
    ],
)
def test_invalid_hyperparameters(kwargs, name):
    with pytest.raises(LearnerError, match=f"^{name} "):
        BayesianLinearUserModel(4, **kwargs)


def test_round_trip_keeps_the_posterior_exactly():
    model, _, _ = fitted()
    clone = BayesianLinearUserModel.from_bytes(model.to_bytes())
    for a, b in zip(model.posterior(), clone.posterior()):
        np.testing.assert_array_equal(a, b)
    assert clone.prior_mean is None
    assert (clone.prior_precision, clone.noise_variance) == (model.prior_precision, model.noise_variance)


def test_defaults_and_hyperparameters_read_back():
    m0 = np.arange(4.0)
    model = BayesianLinearUserModel(3, prior_mean=m0)
    assert model.prior_mean is m0
    assert (model.prior_precision, model.noise_variance) == (1.0, 1.0)
    assert repr(model) == "BayesianLinearUserModel(dim=3, n_obs=0)"


def test_n_obs_counts_every_observation():
    model = BayesianLinearUserModel(2)
    for _ in range(3):
        model.learn_one(np.ones(2), 1.0)
    assert model.n_obs == 3
    assert BayesianLinearUserModel.from_bytes(model.to_bytes()).n_obs == 3


def bayes_bytes(prior_precision=1.0, noise_variance=1.0, diagonal=1.0, extra=0):
    """Bytes of a dim-2 Bayesian model with chosen hyperparameters and P = diagonal * I."""
    n = 3
    P = diagonal * np.eye(n)
    rows, cols = _codec.triu_indices(n)
    payload = np.concatenate(([prior_precision, noise_variance], np.zeros(n), P[rows, cols], np.zeros(extra)))
    return _codec.encode(Kind.BAYES, 2, 0, payload)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bayes_bytes(prior_precision=0.0), "data holds prior_precision=0.0, noise_variance=1.0; both must be > 0"),
        (bayes_bytes(noise_variance=0.0), "data holds prior_precision=1.0, noise_variance=0.0; both must be > 0"),
        (bayes_bytes(diagonal=0.0), "data holds a posterior covariance with a non-positive diagonal"),
        (bayes_bytes(extra=1), "data holds 12 float64 values, a bayes model of dim 2 needs 11"),
    ],
)
def test_from_bytes_rejects_impossible_states(data, message):
    with pytest.raises(LearnerError) as info:
        BayesianLinearUserModel.from_bytes(data)
    assert str(info.value) == message


def test_from_bytes_accepts_small_positive_hyperparameters():
    model = BayesianLinearUserModel.from_bytes(bayes_bytes(prior_precision=0.5, noise_variance=0.25, diagonal=0.1))
    assert (model.prior_precision, model.noise_variance) == (0.5, 0.25)
