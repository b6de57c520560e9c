"""The worker's user cache (stream/engine/users.py) on its own: where a new user starts, what a
batch's lookups cost the store, eviction at capacity, warming, and merging partitions' statistics.

Each test's docstring names the bug (or mutmut's mutant of users.py) it was checked to catch.
"""

from __future__ import annotations

import numpy as np
import pytest

from learners import PopulationModel, make_user_model
from stream.engine.users import UserCache, merged_population

pytestmark = pytest.mark.unit

DIM = 3


class Store:
    """The store's side of get_many: user states by id, and every load asked of it."""

    def __init__(self, **states: bytes):
        self.states = states
        self.loads: list[list[str]] = []

    def __call__(self, ids: list[str]) -> dict[str, bytes]:
        self.loads.append(list(ids))
        return {u: self.states[u] for u in ids if u in self.states}


def learned(n: int, w: float = 1.0) -> bytes:
    m = make_user_model("river", DIM)
    for _ in range(n):
        m.learn_one(np.full(DIM, w), 1.0)
    return m.to_bytes()


def weights(m) -> np.ndarray:
    w, b = m.weights
    return np.append(w, b)


def cache(capacity: int = 10, base_prior=None, offline=None) -> UserCache:
    return UserCache(kind="river", dim=DIM, capacity=capacity, base_prior=base_prior, offline=offline)


def test_a_new_user_starts_from_its_offline_weights_else_the_prior_else_zeros():
    """The three starts (Velox): a user the feature net was trained with keeps its offline weights; any
    other starts from the base prior; without one, from zeros."""
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    c = cache(base_prior=prior, offline={"known": (np.array([1.0, 2.0, 3.0]), 4.0)})
    np.testing.assert_array_equal(weights(c.fresh("known")), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(weights(c.fresh("other")), prior)
    np.testing.assert_array_equal(weights(cache().fresh("other")), np.zeros(DIM + 1))
    assert c.fresh("other").n_obs == 0 and c.base_prior is prior


def test_a_moved_prior_replaces_users_with_no_observations_and_keeps_the_rest():
    """set_prior: users with no observation of their own follow the prior; a user who learned keeps
    its weights (dropping it would lose nothing from the store, but serving it the prior would be wrong)."""
    store = Store(learner=learned(2))
    c = cache()
    c.get_many(["learner", "newbie"], store)
    c.set_prior(np.array([5.0, 5.0, 5.0, 5.0]))
    assert len(c) == 1
    got = c.get_many(["learner", "newbie"], store)
    assert got["learner"].n_obs == 2 and store.loads[-1] == ["newbie"]
    np.testing.assert_array_equal(weights(got["newbie"]), [5.0] * 4)


def test_a_prior_that_did_not_move_keeps_every_user_and_offline_users_never_follow_it():
    """set_prior runs every prior_refresh_s: with no feedback since, the mean is the same and nobody
    is rebuilt; a user the feature net was trained on starts from offline weights, which a moving prior
    does not change, so it stays in memory too (each rebuild builds a river model: 1.4% of a worker)."""
    store = Store()
    c = cache(offline={"known": (np.array([1.0, 2.0, 3.0]), 4.0)})
    first = c.get_many(["known", "newbie"], store)
    c.set_prior(np.zeros(DIM + 1))  # the prior it already had
    assert len(c) == 2
    c.set_prior(np.array([5.0, 5.0, 5.0, 5.0]))
    got = c.get_many(["known", "newbie"], store)
    assert got["known"] is first["known"] and store.loads[-1] == ["newbie"]
    np.testing.assert_array_equal(weights(got["known"]), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(weights(got["newbie"]), [5.0] * 4)
    c.set_prior(np.array([5.0, 5.0, 5.0, 5.0]))
    assert c.get_many(["newbie"], store)["newbie"] is got["newbie"]


def test_one_load_per_batch_for_the_users_not_in_memory_and_the_hit_rate_counts_them():
    """A batch asks the store once, for the missing users only, each once; lookups and hits are the
    hit rate's terms (the dashboard's)."""
    store = Store(a=learned(1), b=learned(2))
    c = cache()
    first = c.get_many(["a", "b", "z", "a"], store)
    assert store.loads == [["a", "b", "z"]] and (c.lookups, c.hits) == (4, 0)
    assert first["a"].n_obs == 1 and first["b"].n_obs == 2 and first["z"].n_obs == 0
    again = c.get_many(["a", "z", "y"], store)
    assert store.loads[-1] == ["y"] and (c.lookups, c.hits) == (7, 2)
    assert again["a"] is first["a"] and again["z"] is first["z"]  # memory's objects, not reloaded copies


def test_the_least_recently_used_user_is_evicted_at_capacity():
    """LRU, not FIFO: a user just looked up stays; the one longest unused goes."""
    store = Store()
    c = cache(capacity=2)
    c.get_many(["a"], store)
    c.get_many(["b"], store)
    c.get_many(["a"], store)  # a is now the most recent
    c.get_many(["c"], store)  # evicts b
    assert len(c) == 2 and c.capacity == 2
    c.get_many(["a", "c"], store)
    c.get_many(["b"], store)
    assert store.loads == [["a"], ["b"], ["c"], ["b"]]


def test_put_replaces_and_counts_as_recent():
    store = Store()
    c = cache(capacity=2)
    c.get_many(["a", "b"], store)
    m = make_user_model("river", DIM)
    c.put("a", m)
    c.put("c", make_user_model("river", DIM))  # evicts b, the older
    assert c.get_many(["a"], store)["a"] is m and store.loads == [["a", "b"]]


def test_warming_loads_users_not_in_memory_without_counting_lookups_or_overwriting():
    """A newly assigned partition's users: memory's (possibly newer) model wins over the stored one."""
    c = cache()
    mine = c.get_many(["a"], Store())["a"]
    c.warm({"a": learned(5), "b": learned(3)})
    assert len(c) == 2 and (c.lookups, c.hits) == (1, 0)
    got = c.get_many(["a", "b"], Store())
    assert got["a"] is mine and got["b"].n_obs == 3


def test_clear_forgets_everyone():
    store = Store(a=learned(1))
    c = cache()
    c.get_many(["a"], store)
    c.clear()
    assert len(c) == 0
    c.get_many(["a"], store)
    assert store.loads == [["a"], ["a"]]


def test_new_population_statistics_centre_on_the_base_prior():
    """Partitions' statistics merge only around the same prior (PopulationModel refuses otherwise)."""
    prior = np.array([0.5, 0.5, 0.5, 0.5])
    pop = cache(base_prior=prior).new_population()
    assert pop == PopulationModel(DIM, prior_mean=prior) and pop.n_obs == 0
    np.testing.assert_allclose(pop.mean(), prior)


def test_merged_population_sums_every_partition_and_is_none_without_observations():
    """None when nothing was learned anywhere (a new deployment keeps its offline prior), else the
    statistics of every partition, not only the first or the last."""
    parts = []
    for p in range(3):
        pop = PopulationModel(DIM)
        for i in range(p + 1):
            pop.learn_one(np.array([p, i, 1.0]), float(p))
        parts.append(pop)
    total = merged_population([x.to_bytes() for x in parts])
    assert total.n_obs == 6 and total == parts[0].merge(parts[1]).merge(parts[2])
    assert merged_population([]) is None
    assert merged_population([PopulationModel(DIM).to_bytes(), PopulationModel(DIM).to_bytes()]) is None
    assert merged_population([PopulationModel(DIM).to_bytes(), parts[1].to_bytes()]) == parts[1]


def test_a_user_asked_twice_in_a_batch_does_not_stop_the_others_loading():
    """mutmut ``continue`` -> ``break`` over the missing users: a repeated id before another new one
    must not leave the later user unanswered."""
    got = cache().get_many(["a", "a", "b", "c"], Store(c=learned(1)))
    assert set(got) == {"a", "b", "c"} and got["c"].n_obs == 1


def test_a_user_trained_offline_and_not_in_the_store_is_served_its_offline_weights():
    """mutmut ``fresh(None)``: through get_many, not only ``fresh``, the offline user keeps its weights."""
    c = cache(base_prior=np.zeros(DIM + 1), offline={"known": (np.array([1.0, 2.0, 3.0]), 4.0)})
    got = c.get_many(["known"], Store())
    np.testing.assert_array_equal(weights(got["known"]), [1.0, 2.0, 3.0, 4.0])


def test_one_observation_anywhere_moves_the_prior():
    """mutmut ``n_obs > 1``: a single applied feedback is already statistics worth merging."""
    pop = PopulationModel(DIM)
    pop.learn_one(np.ones(DIM), 1.0)
    assert merged_population([pop.to_bytes()]) == pop
