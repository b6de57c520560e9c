"""PopulationModel: additive statistics, the ridge solution, the offline-average prior."""

from __future__ import annotations

import numpy as np
import pytest

from learners import LearnerError, PopulationModel, make_user_model

pytestmark = pytest.mark.unit

DIM = 5


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM))
    return X, X @ rng.normal(size=DIM) - 1.0 + rng.normal(scale=0.2, size=n)


def learned(X, y, **kwargs):
    model = PopulationModel(DIM, **kwargs)
    for x, t in zip(X, y):
        model.learn_one(x, t)
    return model


def test_mean_is_the_ridge_solution():
    X, y = data()
    model = learned(X, y, prior_precision=3.0)
    Xt = np.column_stack([X, np.ones(len(X))])
    expected = np.linalg.solve(3.0 * np.eye(DIM + 1) + Xt.T @ Xt, Xt.T @ y)
    np.testing.assert_allclose(model.mean(), expected, rtol=0, atol=1e-10)


def test_merge_of_two_halves_equals_one_model_on_all_data():
    X, y = data()
    whole = learned(X, y)
    left, right = learned(X[:150], y[:150]), learned(X[150:], y[150:])
    for merged in (left + right, left.merge(right), sum([left, right])):
        assert merged.n_obs == whole.n_obs == 300
        np.testing.assert_allclose(merged.mean(), whole.mean(), rtol=0, atol=1e-10)
    assert left.n_obs == 150 and right.n_obs == 150  # merge does not mutate its inputs


def test_in_place_accumulation():
    X, y = data()
    total = PopulationModel(DIM)
    for part in np.array_split(np.arange(len(X)), 4):
        total += learned(X[part], y[part])
    np.testing.assert_allclose(total.mean(), learned(X, y).mean(), rtol=0, atol=1e-10)


def test_merge_needs_the_same_prior():
    with pytest.raises(LearnerError, match="^other has dim"):
        PopulationModel(DIM) + PopulationModel(DIM + 1)
    with pytest.raises(LearnerError, match="^other has a different prior"):
        PopulationModel(DIM) + PopulationModel(DIM, prior_precision=2.0)
    with pytest.raises(LearnerError, match="^other has a different prior"):
        PopulationModel(DIM) + PopulationModel(DIM, prior_mean=np.ones(DIM + 1))
    with pytest.raises(LearnerError, match="^other must be a PopulationModel"):
        PopulationModel(DIM).merge(1)


def test_from_user_weights_starts_at_the_average():
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(50, DIM)), rng.normal(size=50)
    pop = PopulationModel.from_user_weights(W, b, prior_precision=10.0)
    np.testing.assert_allclose(pop.mean(), np.append(W.mean(axis=0), b.mean()), rtol=1e-12)
    assert pop.n_obs == 0


def test_online_data_pulls_away_from_the_offline_average():
    X, y = data(n=2000)
    W, b = np.zeros((3, DIM)), np.full(3, 50.0)
    pop = PopulationModel.from_user_weights(W, b, prior_precision=1.0)
    for x, t in zip(X, y):
        pop.learn_one(x, t)
    assert abs(pop.mean()[-1] - (-1.0)) < 0.1


def test_a_new_user_starts_from_the_population_mean():
    X, y = data()
    prior = learned(X, y).mean()
    for kind in ("river", "bayes"):
        user = make_user_model(kind, DIM, prior_mean=prior)
        assert user.predict_one(X[0]) == pytest.approx(X[0] @ prior[:-1] + prior[-1], rel=1e-12)


def test_round_trip_is_exact_and_size_is_compact():
    X, y = data()
    model = learned(X, y, prior_precision=2.0, prior_mean=np.arange(DIM + 1.0))
    data_ = model.to_bytes()
    clone = PopulationModel.from_bytes(data_)
    assert clone == model and clone.n_obs == 300
    np.testing.assert_array_equal(clone.mean(), model.mean())
    n = DIM + 1
    assert len(data_) == 12 + 8 * (1 + 2 * n + n * (n + 1) // 2) + 4


def test_from_bytes_rejects_user_models_and_corruption():
    with pytest.raises(LearnerError, match="^data holds a river model, expected population"):
        PopulationModel.from_bytes(make_user_model("river", DIM).to_bytes())
    good = PopulationModel(DIM).to_bytes()
    with pytest.raises(LearnerError, match="^data is corrupt"):
        PopulationModel.from_bytes(good[:30] + bytes([good[30] ^ 4]) + good[31:])
    with pytest.raises(LearnerError, match="^data has format version 9"):
        PopulationModel.from_bytes(bytes([9]) + good[1:])


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: PopulationModel(0), "dim"),
        (lambda: PopulationModel(DIM, prior_precision=0.0), "prior_precision"),
        (lambda: PopulationModel(DIM, prior_mean=np.zeros(DIM)), "prior_mean"),
        (lambda: PopulationModel(DIM).learn_one(np.zeros(DIM + 1), 0.0), "x"),
        (lambda: PopulationModel(DIM).learn_one(np.zeros(DIM), float("nan")), "y"),
        (lambda: PopulationModel.from_user_weights(np.zeros((0, DIM)), np.zeros(0)), "W"),
        (lambda: PopulationModel.from_user_weights(np.zeros(DIM), np.zeros(1)), "W"),
        (lambda: PopulationModel.from_user_weights(np.full((2, DIM), np.nan), np.zeros(2)), "W"),
        (lambda: PopulationModel.from_user_weights(np.zeros((2, DIM)), np.zeros(3)), "b"),
    ],
)
def test_invalid_inputs(call, name):
    with pytest.raises(LearnerError, match=f"^{name} "):
        call()


def population_bytes(prior_precision, payload_tail=None, dim=2):
    """Bytes of a population model of ``dim`` with a chosen prior_precision (zero statistics)."""
    from learners import _codec
    from learners._codec import Kind

    n = dim + 1
    tail = np.zeros(2 * n + n * (n + 1) // 2) if payload_tail is None else payload_tail
    return _codec.encode(Kind.POPULATION, dim, 0, np.concatenate(([prior_precision], tail)))


def test_equality_compares_every_statistic_and_the_prior():
    X, y = data(n=20)
    a = learned(X, y)
    assert a == learned(X, y)
    changed_y = learned(X, y + 1.0)  # same X'X and n, other X'y
    assert a != changed_y
    changed_x = learned(X * 2.0, y)  # other X'X (and X'y)
    assert a != changed_x
    other_prior = learned(X, y, prior_precision=2.0)
    assert a != other_prior
    other_mean = learned(X, y, prior_mean=np.ones(DIM + 1))
    assert a != other_mean
    fewer = learned(X[:-1], y[:-1])
    fewer._XtX, fewer._Xty = a._XtX.copy(), a._Xty.copy()  # only the count differs
    assert a != fewer


def test_hyperparameters_read_back_and_survive_copies_and_bytes():
    m0 = np.linspace(-1.0, 1.0, DIM + 1)
    model = PopulationModel(DIM, prior_precision=0.5, prior_mean=m0)
    assert model.prior_mean is m0 and model.prior_precision == 0.5
    X, y = data(n=10)
    for x, t in zip(X, y):
        model.learn_one(x, t)
    for copy in (0 + model, sum([model]), PopulationModel.from_bytes(model.to_bytes())):
        assert copy == model
        np.testing.assert_array_equal(copy.prior_mean, m0)
        np.testing.assert_array_equal(copy.mean(), model.mean())


def test_only_zero_starts_a_sum():
    model = PopulationModel(DIM)
    with pytest.raises(TypeError):
        5 + model
    with pytest.raises(LearnerError, match="^other must be a PopulationModel, got str$"):
        model.merge("model")


def test_from_user_weights_defaults_and_a_single_user():
    W, b = np.ones((1, DIM)), np.array([0.5])
    model = PopulationModel.from_user_weights(W, b)
    assert model.prior_precision == 1.0
    np.testing.assert_array_equal(model.mean(), np.append(W[0], 0.5))
    assert PopulationModel.from_user_weights(W, b, prior_precision=4.0).prior_precision == 4.0


def test_from_bytes_checks_the_prior_and_the_length():
    assert PopulationModel.from_bytes(population_bytes(0.5)).prior_precision == 0.5
    with pytest.raises(LearnerError, match=r"^data holds prior_precision=0.0, must be > 0$"):
        PopulationModel.from_bytes(population_bytes(0.0, payload_tail=np.arange(1.0, 13.0)))
    with pytest.raises(LearnerError, match=r"^data holds 15 float64 values, a population model of dim 2 needs 13$"):
        PopulationModel.from_bytes(population_bytes(1.0, payload_tail=np.zeros(14)))


def test_learn_many_adds_the_same_statistics_as_learn_one_per_row():
    """The engine adds a batch's feedback to its partition's statistics in one call."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    one, many = PopulationModel(3), PopulationModel(3)
    for xi, yi in zip(X, y):
        one.learn_one(xi, yi)
    many.learn_many(X, y)
    assert many.n_obs == one.n_obs == 40
    np.testing.assert_allclose(many.mean(), one.mean(), rtol=1e-10)
    with pytest.raises(LearnerError):
        many.learn_many(X, y[:-1])
    with pytest.raises(LearnerError):
        many.learn_many(X, np.append(y[:-1], np.nan))
    assert many.n_obs == 40


def test_learn_many_refuses_targets_of_another_length_or_not_finite_by_name():
    pop = PopulationModel(3)
    X = np.ones((2, 3))
    with pytest.raises(LearnerError, match=r"y must be finite with shape \(2,\), got shape \(3,\)"):
        pop.learn_many(X, np.ones(3))
    with pytest.raises(LearnerError, match=r"y must be finite with shape \(2,\), got shape \(2,\)"):
        pop.learn_many(X, np.array([1.0, np.nan]))
    assert pop.n_obs == 0


def test_copy_equals_a_round_trip_through_bytes_and_learns_apart():
    """``copy`` (each batch learns into its own copy of a partition's statistics): equal to what the bytes
    give, and learning into it leaves the original as it was (mutmut: arrays shared, not copied)."""
    X, y = data(n=20)
    model = learned(X[:10], y[:10], prior_precision=2.0, prior_mean=np.linspace(0.0, 1.0, DIM + 1))
    copy = model.copy()
    assert copy == model == PopulationModel.from_bytes(model.to_bytes())
    before = PopulationModel.from_bytes(model.to_bytes())
    copy.learn_many(X[10:], y[10:])
    assert model == before and copy.n_obs == 20
    before.learn_many(X[10:], y[10:])
    assert copy == before  # what the engine computed before it copied without the bytes
