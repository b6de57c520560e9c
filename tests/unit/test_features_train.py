"""train_feature_net: learns a planted low-rank signal, seeds repeat, arguments are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features import FeatureError, FeatureNetConfig, examples_from_records, train_feature_net

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]


def planted(n=20_000, n_users=200, n_items=100, d=8, seed=0):
    """reward = true_user_vec . true_item_vec / sqrt(d) (unit variance), in random order."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, d)), rng.normal(size=(n_items, d))
    u, i, h = rng.integers(n_users, size=n), rng.integers(n_items, size=n), rng.integers(24, size=n)
    r = (U[u] * V[i]).sum(1) / np.sqrt(d)
    return [(f"u{a}", {"hour": int(c)}, {"id": f"i{b}"}, float(y)) for a, b, c, y in zip(u, i, h, r)]


def test_learns_planted_factors_well_below_the_mean_baseline():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    m = train_feature_net(planted(), progress=False, device="cpu", version="syn")  # default schedule
    met = m.metrics
    assert met["val_rmse"] < 0.5 * met["baseline_val_rmse"], met  # about 0.18x on CPU
    assert met["train_rmse"] < met["baseline_val_rmse"]
    assert {"train_rmse", "val_rmse", "val_mae", "baseline_val_rmse", "epochs", "seconds", "device"} <= set(met)
    assert (met["n_train"], met["n_val"], met["epochs"], met["device"]) == (18_000, 2_000, 5, "cpu")
    assert len(met["history"]) == 5
    assert len(m.user_weights) == 200 and m.version == "syn"
    w, b = m.user_weights["u0"]
    assert w.shape == (16,) and w.dtype == np.float32 and isinstance(b, float)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's global RNG is untouched


def test_offline_user_weights_reproduce_the_training_predictions():
    ex = planted(n=600, n_users=20, n_items=15)
    m = train_feature_net(ex, epochs=3, batch_size=64, progress=False, device="cpu", val_fraction=0.0)
    assert m.metrics["val_rmse"] is None and m.metrics["baseline_val_rmse"] is None
    preds = np.array([m.predict(u, c, [it])[0] for u, c, it, _ in ex])
    rmse = float(np.sqrt(np.mean((preds - np.array([e[3] for e in ex])) ** 2)))
    assert rmse == pytest.approx(m.metrics["train_rmse"], rel=1e-4)


def test_offline_user_weights_are_the_ridge_solution_given_the_final_net():
    """The online ridge learner, fed a user's training examples from the population prior (the
    average user), would land on the same weights."""
    ex = planted(n=1000, n_users=10, n_items=15)
    lam = 2.5
    m = train_feature_net(ex, epochs=2, batch_size=128, weight_decay=lam, progress=False, device="cpu")
    n_train = m.metrics["n_train"]
    d = m.output_dim
    mean_w, mean_b = m.mean_user_weights()
    m0 = np.append(mean_w, mean_b)
    for user in ["u0", "u3", "u7"]:
        rows = [e for e in ex[:n_train] if e[0] == user]
        X = np.vstack([m.embed(c, [it]) for _, c, it, _ in rows]).astype(np.float64)
        X = np.column_stack([X, np.ones(len(X))])
        y = np.array([e[3] for e in rows])
        theta = np.linalg.solve(lam * np.eye(d + 1) + X.T @ X, lam * m0 + X.T @ y)
        w, b = m.user_weights[user]
        np.testing.assert_allclose(w, theta[:d], rtol=1e-3, atol=1e-4)
        assert b == pytest.approx(theta[d], rel=1e-3, abs=1e-4)


def test_same_seed_same_model_different_seed_different_model():
    ex = planted(n=2000, n_users=30, n_items=20)
    kw = dict(epochs=2, batch_size=128, progress=False, device="cpu")
    a, b, c = (train_feature_net(ex, seed=s, **kw) for s in (7, 7, 8))
    query = ({"hour": 5}, [{"id": "i1"}, {"id": "i2"}])
    assert np.array_equal(a.embed(*query), b.embed(*query))
    assert a.metrics["val_rmse"] == b.metrics["val_rmse"]
    assert all(np.array_equal(a.user_weights[u][0], b.user_weights[u][0]) for u in a.user_weights)
    assert not np.array_equal(a.embed(*query), c.embed(*query))


def test_validation_is_the_tail_and_unseen_users_get_the_mean_user():
    ex = [("old", {"x": 1.0}, {"id": "a"}, 1.0)] * 90 + [("new", {"x": 1.0}, {"id": "a"}, 1.0)] * 10
    m = train_feature_net(ex, epochs=2, batch_size=32, progress=False, device="cpu")
    assert set(m.user_weights) == {"old"}
    assert m.metrics["n_val"] == 10 and m.metrics["baseline_val_rmse"] == 0.0


def test_progress_bar_goes_to_stderr(capsys):
    train_feature_net(planted(n=300, n_users=5, n_items=5), epochs=1, batch_size=64, progress=True, device="cpu")
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err and "val_rmse=" in captured.err and captured.out == ""


def test_config_is_inferred_when_absent():
    m = train_feature_net([("u", {"x": 1, "d": "a"}, {"id": "i", "features": {"p": 2}}, 1.0)] * 10,
                          epochs=1, progress=False, device="cpu")
    assert m.config == FeatureNetConfig(context_numeric=("x",), context_categorical=("d",), item_numeric=("p",))


EX = [("u", {}, {"id": "a"}, 1.0)] * 4


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((EX,), {"epochs": 0}, "epochs must be an int >= 1, got 0"),
    ((EX,), {"batch_size": 1.5}, "batch_size must be an int >= 1, got 1.5"),
    ((EX,), {"lr": 0}, "lr must be a finite number > 0, got 0"),
    ((EX,), {"weight_decay": -1.0}, "weight_decay must be a finite number > 0, got -1.0"),
    ((EX,), {"weight_decay": 0}, "weight_decay must be a finite number > 0, got 0"),
    ((EX,), {"val_fraction": 1.0}, "val_fraction must be a finite number in [0, 1), got 1.0"),
    ((EX,), {"seed": -1}, "seed must be an int >= 0, got -1"),
    ((EX,), {"device": "bogus"}, "device must name a torch device, got 'bogus'"),
    ((EX, {"hidden": 3}), {}, "config must be a FeatureNetConfig or None, got dict"),
    (([],), {}, "at least one training example, got 0"),
    (([("u", {}, {"id": "a"}, float("nan"))],), {}, "examples[0] reward must be a finite number, got nan"),
    (([("u", {}, {"id": "a"}, "1")],), {}, "examples[0] reward must be a finite number, got '1'"),
    (([("u", {}, {"name": "a"}, 1.0)],), {}, "examples[0] item must be a dict with an 'id'"),
    (([(None, {}, {"id": "a"}, 1.0)],), {}, "examples[0] user_id must be a string, got None"),
    (([("u", {}, {"id": "a"})],), {}, "examples[0] must be (user_id, context, item, reward)"),
])
def test_bad_arguments_raise_feature_error(args, kwargs, message):
    with pytest.raises(FeatureError) as info:
        train_feature_net(*args, progress=False, **{"device": "cpu", **kwargs})
    assert message in str(info.value)


def test_examples_from_records():
    recs = [{"user_id": "u1", "context": {"h": 1}, "item": {"id": "a"}, "reward": 1, "ts": 5},
            {"user_id": "u2", "context": None, "item": {"id": "b"}, "reward": 0.5}]
    assert examples_from_records(recs) == [("u1", {"h": 1}, {"id": "a"}, 1.0), ("u2", {}, {"id": "b"}, 0.5)]
    with pytest.raises(FeatureError, match=r"records\[0\] has no 'reward' key"):
        examples_from_records([{"user_id": "u", "item": {"id": "a"}}])
    with pytest.raises(FeatureError, match=r"records\[0\] must be a dict"):
        examples_from_records([("u", {}, {"id": "a"}, 1.0)])
