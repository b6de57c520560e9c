"""Slate estimators on a synthetic slate world whose true value is known by enumerating every ranking.

Slates are drawn the way the engine draws them (:func:`stream.engine.slates.fill`: the policy's pmf,
then renormalised over what is left); the target fills slates the same way with its own pmf."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bandits.base import Decision as PolicyDecision
from bandits.errors import BanditError
from bandits.ope.slate import SlateRewardInteractionIPS, SlateStandardIPS
from stream.engine.slates import fill

pytestmark = pytest.mark.unit

K, L = 5, 3
LOGGING = np.exp(np.array([1.0, 0.8, 0.6, 0.4, 0.2]) / 0.5)
LOGGING /= LOGGING.sum()
TARGET = np.exp(np.array([0.1, 0.3, 0.5, 0.7, 0.9]) / 0.3)
TARGET /= TARGET.sum()
CLICK = np.array([0.6, 0.5, 0.4, 0.3, 0.2])
BIAS = np.array([1.0, 0.6, 0.3])


def ranking_probability(pmf: np.ndarray, ranking: tuple[int, ...]) -> float:
    p, free = 1.0, np.ones(K, dtype=bool)
    for a in ranking:
        p *= pmf[a] / pmf[free].sum()
        free[a] = False
    return p


def cascade_reward(ranking, j):
    """Position j's click probability: its item and position only (additive, so also a cascade)."""
    return CLICK[ranking[j]] * BIAS[j]


def whole_slate_reward(ranking, j):
    """Position 0 is clicked far more often when item 4 sits below it: a reward that reads the whole slate."""
    base = CLICK[ranking[j]] * BIAS[j]
    return min(1.0, base * 3.0) if j == 0 and 4 in ranking[1:] else base


def truth(pmf: np.ndarray, reward) -> float:
    return sum(ranking_probability(pmf, r) * sum(reward(r, j) for j in range(L))
               for r in itertools.permutations(range(K), L))


def logged_world(reward, n: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    slate_id, position, rewards, pscore, target, rankings = [], [], [], [], [], []
    for s in range(n):
        first = int(rng.choice(K, p=LOGGING))
        slots = fill(PolicyDecision(LOGGING, first, float(LOGGING[first]), "p", "p/1"), np.zeros(K), L, seed=s)
        ranking = tuple(x.chosen for x in slots)
        rankings.append(ranking)
        free = np.ones(K, dtype=bool)
        for j, x in enumerate(slots):
            slate_id.append(s)
            position.append(j)
            rewards.append(float(rng.random() < reward(ranking, j)))
            pscore.append(x.propensity)
            target.append(TARGET[x.chosen] / TARGET[free].sum())  # the target's own draw given the same prefix
            free[x.chosen] = False
    return dict(slate_id=np.array(slate_id), position=np.array(position), reward=np.array(rewards),
                position_pscore=np.array(pscore), evaluation_position_pscore=np.array(target)), rankings


def within(estimator, arrays, true_value, sigmas=4.0):
    terms = estimator.terms(**arrays).weighted
    se = terms.std() / np.sqrt(terms.size)
    return abs(terms.mean() - true_value) < sigmas * se, terms.mean(), se


def test_logged_propensities_multiply_to_the_ranking_probability():
    arrays, rankings = logged_world(cascade_reward, n=200)
    joint = arrays["position_pscore"].reshape(-1, L).prod(axis=1)
    assert np.allclose(joint, [ranking_probability(LOGGING, r) for r in rankings])


def test_both_estimators_find_the_true_value_when_rewards_are_position_wise():
    arrays, _ = logged_world(cascade_reward)
    true_value = truth(TARGET, cascade_reward)
    assert true_value != pytest.approx(truth(LOGGING, cascade_reward), abs=0.05)  # the target differs
    for estimator in (SlateStandardIPS(), SlateRewardInteractionIPS()):
        ok, value, se = within(estimator, arrays, true_value)
        assert ok, (estimator.name, value, true_value, se)


def test_only_the_standard_estimator_is_unbiased_when_the_reward_reads_the_whole_slate():
    arrays, _ = logged_world(whole_slate_reward, seed=1)
    true_value = truth(TARGET, whole_slate_reward)
    ok, value, se = within(SlateStandardIPS(), arrays, true_value)
    assert ok, (value, true_value, se)
    ok, value, se = within(SlateRewardInteractionIPS(), arrays, true_value, sigmas=6.0)
    assert not ok, (value, true_value, se)  # the cascade assumption is wrong here, and it shows


def test_the_logging_policy_evaluated_on_itself_is_the_mean_slate_reward():
    arrays, _ = logged_world(cascade_reward, n=500)
    arrays["evaluation_position_pscore"] = arrays["position_pscore"]
    mean_total = arrays["reward"].reshape(-1, L).sum(axis=1).mean()
    for estimator in (SlateStandardIPS(), SlateRewardInteractionIPS()):
        assert estimator.estimate_policy_value(**arrays) == pytest.approx(mean_total)
        interval = estimator.estimate_interval(**arrays, n_bootstrap_samples=200)
        assert interval["lower"] <= mean_total <= interval["upper"]


@pytest.mark.parametrize("change, message", [
    (dict(position=np.array([0, 1, 0, 2])), "does not have each of its positions"),
    (dict(position=np.array([0, 0, 0, 1])), "does not have each of its positions"),
    (dict(position_pscore=np.array([0.5, 0.0, 0.5, 0.5])), "position_pscore must be in"),
    (dict(evaluation_position_pscore=np.array([0.5, 1.5, 0.5, 0.5])), "evaluation_position_pscore"),
    (dict(reward=np.array([1.0, np.nan, 0.0, 0.0])), "reward must be finite"),
    (dict(reward=np.array([1.0, 0.0])), "shape mismatch"),
    (dict(slate_id=np.array([])), "non-empty"),
])
def test_invalid_inputs_are_refused_with_the_parameter_named(change, message):
    arrays = dict(slate_id=np.array([0, 0, 1, 1]), position=np.array([0, 1, 0, 1]),
                  reward=np.array([1.0, 0.0, 0.0, 1.0]), position_pscore=np.full(4, 0.5),
                  evaluation_position_pscore=np.full(4, 0.5))
    arrays.update(change)
    with pytest.raises(BanditError, match=message):
        SlateStandardIPS().estimate_policy_value(**arrays)
