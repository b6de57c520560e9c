"""Exp3 and Exp4 (model selection over feature-net versions): invalid inputs, state round trips and
seeded statistical checks that they move weight to the better arm."""

from __future__ import annotations

import numpy as np
import pytest

from bandits import BanditError, Exp3, Exp4

pytestmark = pytest.mark.unit

SELECTORS = (Exp3, Exp4)


@pytest.mark.parametrize("cls", SELECTORS)
@pytest.mark.parametrize("kwargs, message", [
    ({"arms": []}, "arms must be distinct non-empty strings"),
    ({"arms": ["a", "a"]}, "arms must be distinct"),
    ({"arms": ["a", ""]}, "arms must be distinct"),
    ({"arms": ["a"], "eta": 0.0}, "eta must be > 0"),
    ({"arms": ["a"], "eta": float("inf")}, "eta must be > 0 and finite"),
    ({"arms": ["a"], "gamma": 1.5}, "gamma must be in"),
    ({"arms": ["a"], "gamma": -0.1}, "gamma must be in"),
])
def test_invalid_hyperparameters_are_refused_by_name(cls, kwargs, message):
    kwargs = dict(kwargs)
    arms = kwargs.pop("arms")
    with pytest.raises(BanditError, match=message):
        cls(arms, **kwargs)


@pytest.mark.parametrize("loss, probability, message", [
    (1.5, 0.5, "loss must be a number in"),
    (-0.1, 0.5, "loss must be a number in"),
    (float("nan"), 0.5, "loss must be a number in"),
    (0.5, 0.0, "probability must be in"),
    (0.5, 1.2, "probability must be in"),
])
def test_exp3_refuses_bad_feedback_and_learns_nothing(loss, probability, message):
    sel = Exp3(["a", "b"])
    with pytest.raises(BanditError, match=message):
        sel.learn_one("a", loss, probability=probability)
    assert sel.n_learned == 0 and sel.predict_proba_one() == {"a": 0.5, "b": 0.5}
    with pytest.raises(BanditError, match="arm must be one of"):
        sel.learn_one("c", 0.5, probability=0.5)


def test_exp4_refuses_unknown_experts_and_missing_advice():
    ens = Exp4(["a", "b"])
    with pytest.raises(BanditError, match="losses must name experts"):
        ens.learn_one({"c": 0.1})
    with pytest.raises(BanditError, match="advice must come from every expert"):
        ens.predict_one({"a": 1.0})
    with pytest.raises(BanditError, match=r"probabilities\['a'\] must be in"):
        ens.learn_one({"a": 0.1}, {"a": 0.0})


@pytest.mark.parametrize("cls", SELECTORS)
def test_probabilities_sum_to_one_and_respect_the_gamma_floor(cls):
    sel = cls(["a", "b", "c"], eta=5.0, gamma=0.3)
    for _ in range(50):
        if cls is Exp3:
            sel.learn_one("a", 1.0, probability=sel.predict_proba_one()["a"])
        else:
            sel.learn_one({"a": 1.0, "b": 0.0, "c": 0.5})
    q = sel.predict_proba_one()
    assert sum(q.values()) == pytest.approx(1.0) and min(q.values()) >= 0.3 / 3 - 1e-12


@pytest.mark.parametrize("cls", SELECTORS)
def test_state_round_trips_and_a_new_arm_starts_at_the_best_estimate(cls):
    sel = cls(["a", "b"], eta=0.3, gamma=0.1)
    if cls is Exp3:
        sel.learn_one("a", 0.7, probability=0.5)
    else:
        sel.learn_one({"a": 0.7, "b": 0.2})
    again = cls.from_state(sel.state(), eta=0.3, gamma=0.1)
    assert again.predict_proba_one() == sel.predict_proba_one() and again.n_learned == 1
    sel.add_arm("c")
    q = sel.predict_proba_one()
    assert q["c"] == pytest.approx(max(q["a"], q["b"]))
    with pytest.raises(BanditError, match="one finite loss per"):
        cls.from_state({"arms": ["a", "b"], "losses": [0.0]})


def test_exp3_picks_follow_its_probabilities():
    sel = Exp3(["a", "b", "c"], eta=1.0, gamma=0.1)
    sel.learn_one("a", 1.0, probability=0.5)
    q = sel.predict_proba_one()
    u = np.random.default_rng(0).random(20_000)
    picks = [sel.pick(float(x)) for x in u]
    for arm, p in q.items():
        assert picks.count(arm) / len(picks) == pytest.approx(p, abs=0.015)
    with pytest.raises(BanditError, match="u must be a uniform draw"):
        sel.pick(1.0)


def test_exp3_importance_weighted_losses_are_unbiased():
    """E[loss / q * 1{picked}] = loss: the estimate of an arm's total loss does not depend on how often it was tried."""
    rng = np.random.default_rng(1)
    q = {"a": 0.2, "b": 0.8}
    totals = {"a": 0.0, "b": 0.0}
    n = 40_000
    for _ in range(n):
        arm = "a" if rng.random() < q["a"] else "b"
        totals[arm] += {"a": 0.3, "b": 0.6}[arm] / q[arm]
    assert totals["a"] / n == pytest.approx(0.3, rel=0.05) and totals["b"] / n == pytest.approx(0.6, rel=0.05)


@pytest.mark.parametrize("seed", range(5))
def test_exp3_moves_to_the_better_arm_from_bandit_feedback(seed):
    rng = np.random.default_rng(seed)
    sel = Exp3(["worse", "better"], eta=0.05, gamma=0.05)
    mean = {"worse": 0.5, "better": 0.3}
    for _ in range(2000):
        q = sel.predict_proba_one()
        arm = sel.pick(float(rng.random()))
        loss = float(np.clip(mean[arm] + 0.1 * rng.standard_normal(), 0, 1))
        sel.learn_one(arm, loss, probability=q[arm])
    assert sel.predict_proba_one()["better"] > 0.9


@pytest.mark.parametrize("seed", range(5))
def test_exp4_moves_weight_to_the_better_expert(seed):
    rng = np.random.default_rng(seed)
    ens = Exp4(["worse", "better"], eta=0.05)
    for _ in range(500):
        ens.learn_one({"worse": float(np.clip(0.5 + 0.1 * rng.standard_normal(), 0, 1)),
                       "better": float(np.clip(0.3 + 0.1 * rng.standard_normal(), 0, 1))})
    assert ens.predict_proba_one()["better"] > 0.99


@pytest.mark.parametrize("cls, version, text", [
    (Exp3, "exp3/1?eta=0.05&gamma=0.05", "Exp3(arms=['a', 'b'], eta=0.05, gamma=0.05)"),
    (Exp4, "exp4/1?eta=0.05&gamma=0.0", "Exp4(experts=['a', 'b'], eta=0.05, gamma=0.0)"),
])
def test_defaults_show_in_the_logged_version_and_the_repr(cls, version, text):
    """The version string goes into every decision: a changed default must show there."""
    sel = cls(["a", "b"])
    assert sel.version == version and repr(sel) == text


def test_exp4_mixes_advice_with_its_weights():
    ens = Exp4(["a", "b", "c"], eta=1.0, gamma=0.0)
    ens.learn_one({"a": 1.0, "b": 0.0, "c": 0.5})
    w = ens.predict_proba_one()
    advice = {"a": np.array([1.0, 4.0]), "b": np.array([2.0, 0.0]), "c": np.array([8.0, 1.0])}
    expected = w["a"] * advice["a"] + w["b"] * advice["b"] + w["c"] * advice["c"]
    np.testing.assert_allclose(ens.predict_one({**advice, "extra": np.array([9.0, 9.0])}), expected)
    single = {e: np.asarray(a, dtype=np.float32) for e, a in advice.items()}
    assert ens.predict_one(single).dtype == np.float64  # mixed in double precision whatever the advice's
    with pytest.raises(BanditError, match=r"missing \['b', 'c'\]"):
        ens.predict_one({"a": 1.0})


def test_exp4_importance_weights_each_observed_loss_and_counts_rounds():
    ens = Exp4(["a", "b"], eta=1.0, gamma=0.0)
    ens.learn_one({"a": 0.3, "b": 0.2}, {"a": 0.5, "b": 1.0})
    ens.learn_one({"a": 0.1})
    ens.learn_one({"b": 0.4}, {"b": 0.25})
    assert ens.state()["losses"] == pytest.approx([0.3 / 0.5 + 0.1, 0.2 + 0.4 / 0.25])
    assert ens.n_learned == 3


@pytest.mark.parametrize("cls", SELECTORS)
def test_a_state_without_a_round_count_starts_at_zero_rounds(cls):
    sel = cls.from_state({"arms": ["a", "b"], "losses": [0.5, 0.0]}, eta=1.0)
    assert sel.n_learned == 0 and sel.state()["losses"] == [0.5, 0.0]


def test_exp3_pick_is_the_inverse_cdf_at_its_edges():
    """[0, 1) is cut into consecutive intervals [F(i-1), F(i)): 0 picks the first arm, a boundary the next one,
    and a draw above the rounded-down last sum (seven arms at 1/7 add up to 1 - 2e-16) the last."""
    sel = Exp3(["a", "b"])
    assert sel.pick(0.0) == "a" and sel.pick(0.5) == "b" and sel.pick(np.nextafter(0.5, 0)) == "a"
    seven = Exp3([f"a{i}" for i in range(7)])
    assert sum(seven.predict_proba_one().values()) < np.nextafter(1.0, 0)
    assert seven.pick(float(np.nextafter(1.0, 0))) == "a6"


@pytest.mark.parametrize("cls", SELECTORS)
def test_large_losses_neither_overflow_nor_vanish(cls):
    """Only differences of losses matter: after thousands of rounds the weights are those of the gaps."""
    sel = cls.from_state({"arms": ["a", "b"], "losses": [1000.0, 1001.0], "n": 2000}, eta=1.0, gamma=0.0)
    q = sel.predict_proba_one()
    assert q["a"] == pytest.approx(1 / (1 + np.exp(-1.0))) and q["b"] == pytest.approx(1 - q["a"])


@pytest.mark.parametrize("loss", [True, "0.5", None])
def test_a_loss_that_is_not_a_number_is_refused(loss):
    with pytest.raises(BanditError, match="loss must be a number in"):
        Exp4(["a"]).learn_one({"a": loss})
    with pytest.raises(BanditError, match="loss must be a number in"):
        Exp3(["a"]).learn_one("a", loss, probability=1.0)
