"""The contract every user model keeps (river's `check_estimator` idea), run over every kind."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from learners import KINDS, LearnerError, UserModel, load_user_model, make_user_model

pytestmark = pytest.mark.unit

DIM = 8
USER_KINDS = ["river", "bayes", "rls"]


@pytest.fixture(params=USER_KINDS)
def kind(request):
    return request.param


def trained(kind: str, n: int = 50, seed: int = 0, dim: int = DIM) -> UserModel:
    rng = np.random.default_rng(seed)
    model = make_user_model(kind, dim, prior_mean=rng.normal(size=dim + 1))
    for _ in range(n):
        x = rng.normal(size=dim)
        model.learn_one(x, float(x.sum()) + rng.normal())
    return model


def test_every_registered_class_is_covered():
    assert {cls.__name__ for cls in KINDS.values()} == {
        type(make_user_model(k, DIM)).__name__ for k in USER_KINDS
    }


def test_learn_one_returns_none_and_counts(kind):
    model = make_user_model(kind, DIM)
    assert model.n_obs == 0
    assert model.learn_one(np.ones(DIM), 1.0) is None
    assert model.n_obs == 1


def test_learn_one_does_not_mutate_x(kind):
    model = trained(kind)
    x = np.linspace(-1, 1, DIM)
    before = x.copy()
    model.learn_one(x, 3.0)
    model.predict_one(x)
    model.predict_many(x[None, :])
    np.testing.assert_array_equal(x, before)


def test_accepts_other_numeric_dtypes(kind):
    a, b = make_user_model(kind, DIM), make_user_model(kind, DIM)
    a.learn_one(np.arange(DIM, dtype=np.float32), 1)
    b.learn_one(list(range(DIM)), np.float64(1.0))
    assert a.predict_one(np.ones(DIM, dtype=np.int64)) == b.predict_one(np.ones(DIM))


def test_fresh_model_predicts_the_prior(kind):
    rng = np.random.default_rng(1)
    prior = rng.normal(size=DIM + 1)
    model = make_user_model(kind, DIM, prior_mean=prior)
    X = rng.normal(size=(5, DIM))
    np.testing.assert_allclose(model.predict_many(X), X @ prior[:-1] + prior[-1], rtol=1e-12)
    w, b = model.weights
    np.testing.assert_allclose(np.append(w, b), prior, rtol=1e-12)


def test_default_prior_is_zero(kind):
    model = make_user_model(kind, DIM)
    assert model.predict_one(np.ones(DIM)) == 0.0


def test_prior_mean_is_not_aliased(kind):
    prior = np.zeros(DIM + 1)
    model = make_user_model(kind, DIM, prior_mean=prior)
    model.learn_one(np.ones(DIM), 5.0)
    np.testing.assert_array_equal(prior, 0.0)


def test_weights_are_a_copy(kind):
    model = trained(kind)
    w, b = model.weights
    w[:] = 1e6
    assert not np.allclose(model.weights[0], 1e6)
    assert isinstance(b, float)


def test_predict_many_matches_predict_one(kind):
    model = trained(kind)
    X = np.random.default_rng(2).normal(size=(20, DIM))
    many = model.predict_many(X)
    assert many.shape == (20,)
    np.testing.assert_allclose(many, [model.predict_one(x) for x in X], rtol=1e-12, atol=1e-12)
    assert model.predict_many(np.empty((0, DIM))).shape == (0,)
    assert isinstance(model.predict_one(X[0]), float)


def test_same_data_same_model(kind):
    X = np.random.default_rng(3).normal(size=(5, DIM))
    np.testing.assert_array_equal(trained(kind).predict_many(X), trained(kind).predict_many(X))


def test_bytes_round_trip_is_exact(kind):
    model = trained(kind)
    data = model.to_bytes()
    assert isinstance(data, bytes)
    clone = type(model).from_bytes(data)
    assert type(clone) is type(model)
    assert clone.n_obs == model.n_obs and clone.dim == model.dim
    X = np.random.default_rng(4).normal(size=(10, DIM))
    np.testing.assert_array_equal(clone.predict_many(X), model.predict_many(X))
    assert clone.to_bytes() == data
    assert load_user_model(data).to_bytes() == data
    assert load_user_model(bytearray(data)).to_bytes() == data


def test_learning_after_round_trip_matches_learning_in_memory(kind):
    """A model saved and loaded after every event replays bit-identically to one kept in memory."""
    rng = np.random.default_rng(5)
    kept = make_user_model(kind, DIM)
    cycled = make_user_model(kind, DIM)
    for _ in range(30):
        x, y = rng.normal(size=DIM), float(rng.normal())
        kept.learn_one(x, y)
        cycled = load_user_model(cycled.to_bytes())
        cycled.learn_one(x, y)
    assert cycled.to_bytes() == kept.to_bytes()


def test_hyperparameters_survive_round_trip(kind):
    hyper = {"river": {"lr": 0.02, "l2": 0.001}, "bayes": {"prior_precision": 3.0, "noise_variance": 0.25},
             "rls": {"prior_precision": 2.0, "noise_variance": 0.5, "forgetting": 0.95, "bias_forgetting": 0.9,
                     "bias_precision": 6.0}}[kind]
    model = make_user_model(kind, DIM, **hyper)
    clone = load_user_model(model.to_bytes())
    for name, value in hyper.items():
        assert getattr(clone, name) == value


def test_learning_converges(kind):
    """A synthetic user: after 500 noisy observations predictions on fresh x are close to the truth."""
    rng = np.random.default_rng(42)
    w_true, b_true = rng.normal(size=DIM), 0.7
    model = make_user_model(kind, DIM)
    for _ in range(500):
        x = rng.normal(size=DIM)
        model.learn_one(x, x @ w_true + b_true + rng.normal(scale=0.1))
    X = rng.normal(size=(200, DIM))
    err = model.predict_many(X) - (X @ w_true + b_true)
    rmse = float(np.sqrt(np.mean(err**2)))
    # Constant-step SGD keeps hovering around w* (LMS misadjustment ~ lr * E|x|^2 * noise);
    # the exact posterior mean does not.
    assert rmse < {"river": 0.15, "bayes": 0.05, "rls": 0.08}[kind], rmse
    # and it beats the prior by far
    assert rmse < 0.05 * float(np.sqrt(np.mean((X @ w_true + b_true) ** 2)))


@pytest.mark.parametrize(
    ("method", "args", "name"),
    [
        ("learn_one", (np.ones(DIM - 1), 1.0), "x"),
        ("learn_one", (np.ones((1, DIM)), 1.0), "x"),
        ("learn_one", (np.ones((DIM, 1)), 1.0), "x"),
        ("learn_one", (1.0, 1.0), "x"),
        ("learn_one", (np.array(["a"] * DIM), 1.0), "x"),
        ("learn_one", (np.array([np.nan] + [0.0] * (DIM - 1)), 1.0), "x"),
        ("learn_one", (np.array([0.0] * (DIM - 1) + [np.inf]), 1.0), "x"),
        ("learn_one", (np.array([-np.inf] * DIM), 1.0), "x"),
        ("learn_one", (np.ones(DIM), float("nan")), "y"),
        ("learn_one", (np.ones(DIM), float("inf")), "y"),
        ("learn_one", (np.ones(DIM), "1.0"), "y"),
        ("learn_one", (np.ones(DIM), None), "y"),
        ("predict_one", (np.ones(DIM + 1),), "x"),
        ("predict_one", (np.full(DIM, np.nan),), "x"),
        ("predict_many", (np.ones(DIM),), "X"),
        ("predict_many", (np.ones((3, DIM + 1)),), "X"),
        ("predict_many", (np.array([[np.nan] * DIM]),), "X"),
    ],
)
def test_invalid_inputs(kind, method, args, name):
    model = trained(kind, n=5)
    before = model.to_bytes()
    with pytest.raises(LearnerError, match=rf"^{name} "):
        getattr(model, method)(*args)
    assert model.to_bytes() == before  # a rejected input leaves the model untouched


def _reframe(body: bytes) -> bytes:
    """`body` with a valid CRC, to get past the checksum to the structural checks."""
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d[:-1], "data is"),
        (lambda d: d[: len(d) // 2], "data is"),
        (lambda d: d[:5], "data is truncated"),
        (lambda d: b"", "data is truncated"),
        (lambda d: d + b"\x00", "data is"),
        (lambda d: d[:20] + bytes([d[20] ^ 0x01]) + d[21:], "data is corrupt"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0xFF]), "data is corrupt"),
        (lambda d: bytes([2]) + d[1:], "data has format version 2"),
        (lambda d: bytes([0]) + d[1:], "data has format version 0"),
        (lambda d: _reframe(d[:1] + bytes([99]) + d[2:-4]), "data has unknown kind tag 99"),
        (lambda d: _reframe(d[:-12]), "data holds"),
        (lambda d: _reframe(d[:2] + struct.pack("<H", DIM + 1) + d[4:-4]), "data holds"),
        (lambda d: _reframe(d[:12] + struct.pack("<d", np.nan) + d[20:-4]), "data holds non-finite"),
        (lambda d: _reframe(d[:12] + struct.pack("<d", -1.0) + d[20:-4]), "data holds"),
        (lambda d: d.decode("latin-1"), "data must be bytes"),
    ],
)
def test_invalid_bytes(kind, mangle, message):
    data = trained(kind, n=5).to_bytes()
    bad = mangle(data)
    with pytest.raises(LearnerError, match=f"^{message}"):
        type(make_user_model(kind, DIM)).from_bytes(bad)
    with pytest.raises(LearnerError, match=f"^{message}"):
        load_user_model(bad)


def test_bytes_of_another_kind_are_rejected(kind):
    other = next(k for k in USER_KINDS if k != kind)
    data = make_user_model(other, DIM).to_bytes()
    with pytest.raises(LearnerError, match="^data holds a"):
        type(make_user_model(kind, DIM)).from_bytes(data)


@pytest.mark.parametrize("dim", [0, -1, 1.5, True, "8", None, 70_000])
def test_invalid_dim(kind, dim):
    with pytest.raises(LearnerError, match="^dim "):
        make_user_model(kind, dim)


@pytest.mark.parametrize(
    "prior_mean", [np.zeros(DIM), np.zeros(DIM + 2), np.zeros((DIM + 1, 1)), np.full(DIM + 1, np.nan), "zeros"]
)
def test_invalid_prior_mean(kind, prior_mean):
    with pytest.raises(LearnerError, match="^prior_mean "):
        make_user_model(kind, DIM, prior_mean=prior_mean)


def test_serialised_size_is_compact(kind):
    expected = {"river": 12 + 8 * (4 + DIM + 1) + 4, "bayes": 12 + 8 * (2 + (DIM + 1) + (DIM + 1) * (DIM + 2) // 2) + 4,
                "rls": 12 + 8 * (5 + (DIM + 1) + (DIM + 1) * (DIM + 2) // 2) + 4}
    assert len(trained(kind).to_bytes()) == expected[kind]


def test_learn_one_checked_reports_the_error_before_and_the_weight_change(kind):
    """The engine publishes these two figures in every model update; both come from the model itself."""
    model, twin = trained(kind), trained(kind)
    x = np.linspace(-1, 1, DIM)
    w_before = np.append(*model.weights)
    expected_err = 2.5 - model.predict_one(x)
    err, delta = model.learn_one_checked(x, 2.5)
    twin.learn_one(x, 2.5)
    assert err == pytest.approx(expected_err, rel=1e-12)
    assert delta == pytest.approx(float(np.linalg.norm(np.append(*model.weights) - w_before)), rel=1e-12)
    assert delta > 0 and model.to_bytes() == twin.to_bytes()


def test_learn_one_checked_puts_the_model_back_when_learning_fails(kind, monkeypatch):
    """A learn_one that changed the weights and then raised, or left them infinite, leaves no trace."""
    model = trained(kind)
    before = model.to_bytes()
    learn = type(model).learn_one

    def learn_then_fail(self, x, y):
        learn(self, x, y)
        raise ValueError("boom after the update")

    monkeypatch.setattr(type(model), "learn_one", learn_then_fail)
    with pytest.raises(ValueError):
        model.learn_one_checked(np.ones(DIM), 1.0)
    assert model.to_bytes() == before and model.n_obs == 50

    def learn_to_nan(self, x, y):
        learn(self, x, y)
        self._coef()[:] = np.nan  # what an overflow in an update would leave

    monkeypatch.setattr(type(model), "learn_one", learn_to_nan)
    with pytest.raises(FloatingPointError):
        model.learn_one_checked(np.ones(DIM), 1.0)
    assert model.to_bytes() == before

    def learn_to_inf(self, x, y):
        learn(self, x, y)
        self._coef()[-1] = np.inf  # one weight, the bias: the step's length is inf, not nan

    monkeypatch.setattr(type(model), "learn_one", learn_to_inf)
    with pytest.raises(FloatingPointError):
        model.learn_one_checked(np.ones(DIM), 1.0)
    assert model.to_bytes() == before
    monkeypatch.undo()
    model.learn_one_checked(np.ones(DIM), 1.0)  # and it still learns
    assert model.n_obs == 51


@pytest.mark.filterwarnings("ignore:overflow encountered")  # numpy says so; the answer is still inf
def test_learn_one_checked_measures_a_step_too_long_to_square_without_calling_it_non_finite(kind, monkeypatch):
    """A finite step whose squared length overflows is a step of length inf, not a broken model."""
    model = trained(kind)
    learn = type(model).learn_one

    def learn_far(self, x, y):
        learn(self, x, y)
        self._coef()[0] = 1e300  # finite; its square is not

    monkeypatch.setattr(type(model), "learn_one", learn_far)
    err, delta = model.learn_one_checked(np.ones(DIM), 1.0)
    assert np.isfinite(err) and delta == np.inf and model.n_obs == 51


def test_the_default_snapshot_restores_any_learner_exactly(kind):
    """``UserModel``'s own ``_snapshot``/``_restore`` (the bytes round trip), for a learner without a cheaper one."""
    model = trained(kind)
    before = model.to_bytes()
    snapshot = UserModel._snapshot(model)
    model.learn_one(np.ones(DIM), 3.0)
    UserModel._restore(model, snapshot)
    assert model.to_bytes() == before and model.n_obs == 50


@pytest.mark.parametrize("kind", ["bayes", "rls"])
def test_after_a_failed_update_thompson_draws_come_from_the_restored_posterior(kind, monkeypatch):
    """The cached Cholesky factor belongs to the covariance it was computed from: a restore drops it."""
    model, twin = trained(kind), trained(kind)
    model.sample_weights(np.random.default_rng(0))  # caches the factor
    learn = type(model).learn_one

    def learn_then_fail(self, x, y):
        learn(self, x, y)
        self.sample_weights(np.random.default_rng(1))  # a factor of the half-learned posterior
        raise ValueError("boom after the update")

    monkeypatch.setattr(type(model), "learn_one", learn_then_fail)
    with pytest.raises(ValueError):
        model.learn_one_checked(np.ones(DIM), 1.0)
    monkeypatch.undo()
    w, b = model.sample_weights(np.random.default_rng(2))
    w_twin, b_twin = twin.sample_weights(np.random.default_rng(2))
    np.testing.assert_array_equal(w, w_twin)
    assert b == b_twin
