"""``first_uniforms`` is ``default_rng(seed).random()`` for every seed, on both of its paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import Candidates, make_policy
from bandits.draws import VECTOR_FROM, _hash_constants, _pcg64_states, first_uniforms

pytestmark = pytest.mark.unit

EDGES = [0, 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63, 2**64 - 1]


def numpy_draws(seeds):
    return [np.random.default_rng(s).random() for s in seeds]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(EDGES)), max_size=3 * VECTOR_FROM))
def test_each_seeds_first_uniform_is_numpys(seeds):
    got = first_uniforms(seeds)
    assert got.dtype == np.float64 and got.shape == (len(seeds),)
    assert got.tolist() == numpy_draws(seeds)  # exactly: the draw logged must be the one repeated


@pytest.mark.parametrize("n", [VECTOR_FROM - 1, VECTOR_FROM, 1000])
def test_both_paths_give_numpys_draws_on_either_side_of_the_switch(n):
    seeds = (EDGES * (n // len(EDGES) + 1))[:n - 100] + np.random.default_rng(n).integers(0, 2**63, 100).tolist()
    seeds = seeds[-n:]
    assert first_uniforms(seeds).tolist() == numpy_draws(seeds)


def test_a_negative_seed_is_refused_like_numpys():
    with pytest.raises((OverflowError, ValueError)):
        first_uniforms([-1] * VECTOR_FROM)


def test_a_batch_of_decisions_on_the_vectorised_path_is_each_decision_drawn_alone():
    policy = make_policy("epsilon_greedy:epsilon=0.5")
    rng = np.random.default_rng(3)
    scores = [rng.normal(size=int(k)) for k in rng.integers(1, 12, 4 * VECTOR_FROM)]
    seeds = rng.integers(0, 2**63 - 1, len(scores)).tolist()
    many = policy.decide_many(scores, seeds)
    alone = [policy.decide(Candidates(scores=s), np.random.default_rng(seed)) for s, seed in zip(scores, seeds)]
    assert [d.chosen for d in many] == [d.chosen for d in alone]
    assert len({d.chosen for d in many}) > 1  # the draws differ: a constant draw would not pass by chance


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(EDGES)), min_size=1, max_size=40))
def test_the_hashed_state_is_numpys_seed_sequence(seeds):
    # PCG64's seed words, from constants computed here (not the module's, computed once at import).
    states = _pcg64_states(np.asarray(seeds, dtype=np.uint64), _hash_constants())
    assert states == [tuple(np.random.SeedSequence(s).generate_state(4, np.uint64).tolist()) for s in seeds]
