"""What learning one joined feedback does, pinned at the level of :meth:`Engine.process`:
the user's model and its partition, the model update's summary, the population statistics,
the rollback when learning fails, and a learning policy that learns only from what it chose.

These tests read only what a batch returns (outputs, counts, the write) and what the next
batch serves, so they hold for any implementation of the feedback path (per feedback or
vectorised per user). Each docstring names the mutant of ``Engine._apply`` (mutmut's
numbering, docs/testing.md) or the real bug it was checked to catch.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandits import EpsilonGreedy, make_policy
from features.model import FeatureModel
from learners import PopulationModel, load_user_model
from learners.sgd import RiverUserModel
from stream.engine import Engine
from stream.engine.batch import POLICY_SNAPSHOT_EVERY
from stream.engine.joins import JoinRecord
from stream.engine.serving import base_prior
from tests.unit.test_engine import T0, Log, MemoryState, feedback, outputs, query, run

pytestmark = pytest.mark.unit


class PartitionedState(MemoryState):
    """The store files a user's state under the partition of the feedback that wrote it (``{pN}:``
    keys): reading it through another partition finds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.user_partition: dict[tuple[str, str], int] = {}

    def load_users(self, fn, users):
        return {u: self.users[(fn, u)] for u, p in users.items()
                if (fn, u) in self.users and self.user_partition[(fn, u)] == p}

    def commit(self, w) -> None:
        super().commit(w)
        self.user_partition.update({k: p for k, (_, p) in w.users.items()})


class RecordingPolicy(EpsilonGreedy):
    """Epsilon-greedy that also "learns": it records each example (a fake learning policy, like VW)."""

    name = "recording"

    def __init__(self, epsilon: float = 0.3, n_learned: int = 0, fail: bool = False) -> None:
        super().__init__(epsilon)
        self.examples: list[tuple] = []
        self.n_learned = n_learned
        self.fail = fail

    def learn(self, candidates, chosen, reward, propensity) -> None:
        if self.fail:
            raise ValueError("this policy cannot learn")
        self.examples.append((candidates, chosen, reward, propensity))
        self.n_learned += 1

    def to_bytes(self) -> bytes:
        return f"snapshot at {self.n_learned}".encode()


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


def make_engine(model, policy=None, **kw) -> Engine:
    return Engine(model, policy or make_policy("epsilon_greedy:epsilon=0.3"), learner="river",
                  join_window_s=60.0, seed=7, clock=lambda: T0, **kw)


def decided(state: MemoryState, rid: str):
    record = JoinRecord.unpack(state.decisions[rid])
    return record.decision, record.embeddings


def other_than(chosen: int) -> int:
    return next(i for i in range(4) if i != chosen)


def user_state(state: MemoryState, fn: str, user: str = "u1"):
    return load_user_model(state.users[(fn, user)])


# ------------------------------------------------------------- the user's model
def test_a_users_state_is_written_and_read_under_its_partition(model):
    """Mutants 23 (the store is asked under partition None) and 124 (the state written under
    partition None): a user on partition 3, loaded back from the store, keeps its history."""
    engine, state, log = make_engine(model), PartitionedState(), Log()
    run(engine, state, [log.rec(query("r1"), 3), log.rec(query("r2"), 3)])
    first = run(engine, state, [log.rec(feedback("r1", "i1"), 3)])
    assert first.write.users[(model.version, "u1")][1] == 3
    engine.forget()  # the user is now only in the store
    batch = run(engine, state, [log.rec(feedback("r2", "i2"), 3)])
    assert outputs(batch, "model-updates")[0]["version"] == 2
    assert user_state(state, model.version).n_obs == 2


def test_feedback_for_a_feature_net_no_longer_installed_still_learns(model, tmp_path):
    """After a restart on a new feature net, feedback for a decision of the old one learns the old
    version's user (mutants 5-8: the old version's cache built without the embeddings' dimension)."""
    state, log = MemoryState(), Log()
    run(make_engine(model), state, [log.rec(query("r1"))])
    model.save(tmp_path / "v2")
    v2 = FeatureModel.load(tmp_path / "v2")
    v2.version = "v2"
    restarted = make_engine(v2)  # knows only v2
    batch = run(restarted, state, [log.rec(feedback("r1", "i2"))])
    assert batch.counts["feedback_applied"] == 1 and not batch.outputs.dead
    assert list(batch.write.users) == [(model.version, "u1")]
    assert user_state(state, model.version).n_obs == 1
    assert outputs(batch, "model-updates")[0]["feature_net_version"] == model.version


def test_each_update_of_a_user_in_one_batch_builds_on_the_last_even_past_the_cache(model):
    """Mutants 9 and 10 (the batch's own update ignored, the user read again): with room for one
    user, u1's second feedback in a batch must still see its first; the result is byte for byte
    what an engine with a large cache learns."""
    states = []
    for cache_users in (1, 1000):
        engine, state, log = make_engine(model, cache_users=cache_users), MemoryState(), Log()
        run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2")), log.rec(query("r3"))])
        batch = run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2", user="u2")),
                                    log.rec(feedback("r3", "i3", reward=0.0))])
        assert [u["version"] for u in outputs(batch, "model-updates")] == [1, 1, 2]
        states.append(state.users[(model.version, "u1")])
    assert user_state_bytes_n_obs(states[0]) == 2
    assert states[0] == states[1]


def user_state_bytes_n_obs(blob: bytes) -> int:
    return load_user_model(blob).n_obs


# ------------------------------------------------------------- the model update
def test_the_model_updates_summary_is_the_error_before_and_the_weights_change(model):
    """Mutants 38 (``reward + prediction``) and 77 (``|w_after + w_before|``), and the summary's
    keys: error = reward - the prediction before learning; delta_norm = |w_after - w_before|."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i1", reward=1.0))])
    before = user_state(state, model.version)
    _, emb = decided(state, "r2")
    batch = run(engine, state, [log.rec(feedback("r2", "i3", reward=0.25))])
    after = user_state(state, model.version)
    (update,) = outputs(batch, "model-updates")
    x = emb[2].astype(np.float64)
    flat = lambda m: np.concatenate([np.atleast_1d(np.asarray(w, dtype=np.float64)) for w in m.weights])  # noqa: E731
    assert set(update["summary"]) == {"n_obs", "delta_norm", "error"}
    assert update["summary"]["n_obs"] == 2 == update["version"]
    assert update["summary"]["error"] == pytest.approx(0.25 - before.predict_one(x), rel=1e-9, abs=1e-12)
    assert update["summary"]["delta_norm"] == pytest.approx(np.linalg.norm(flat(after) - flat(before)), rel=1e-9)
    assert update["summary"]["delta_norm"] > 0


# --------------------------------------------------------------- failed learning
def fail_on_reward(monkeypatch, bad: float) -> None:
    """The river model learns, then raises, for the reward ``bad`` (a model that fails half-way)."""
    learn = RiverUserModel.learn_one

    def learn_then_fail(self, x, y):
        learn(self, x, y)
        if y == bad:
            raise ValueError("boom after the update")

    monkeypatch.setattr(RiverUserModel, "learn_one", learn_then_fail)


def test_a_failure_after_an_applied_feedback_of_the_same_user_keeps_that_feedback_only(model, monkeypatch):
    """Mutants 106 (the batch's model left as the failure changed it) and 107 (the batch's model
    dropped): the batch writes the user as the first feedback left it, byte for byte."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    reference = MemoryState()
    reference.decisions = dict(state.decisions)
    run(make_engine(model), reference, [Log().rec(feedback("r1", "i1"))])
    fail_on_reward(monkeypatch, 0.25)
    batch = run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2", reward=0.25))])
    assert [d.reason for d in batch.outputs.dead] == ["learning_failed"]
    assert batch.counts["feedback_applied"] == 1 and list(batch.write.applied) == ["r1"]
    assert state.users[(model.version, "u1")] == reference.users[(model.version, "u1")]
    monkeypatch.undo()
    after = run(engine, state, [log.rec(query("r3"))])
    assert outputs(after, "decisions")[0]["user_weights_version"] == 1


def test_a_failed_feedback_puts_its_user_back_in_memory(model, monkeypatch):
    """Mutants 99 and 103 (the restored model not put back): the user stays in memory as it was,
    so the next query is a cache hit (no store read) and sees the state before the failure."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i1"))])
    fail_on_reward(monkeypatch, 0.25)
    run(engine, state, [log.rec(feedback("r2", "i2", reward=0.25))])
    monkeypatch.undo()
    (_, held, _, lookups, hits), = [f for f in engine.cache_figures() if f[0] == model.version]
    state.users.clear()  # had memory lost the user, the next query would start it from scratch
    after = run(engine, state, [log.rec(query("r3"))])
    (_, _, _, lookups2, hits2), = [f for f in engine.cache_figures() if f[0] == model.version]
    assert (lookups2 - lookups, hits2 - hits) == (1, 1)
    assert outputs(after, "decisions")[0]["user_weights_version"] == 1


def test_an_embedding_that_is_not_finite_is_a_dead_letter_that_says_so(model):
    """Mutants 31-33 (the dead letter's detail): the operator reads why."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    record = JoinRecord.unpack(state.decisions["r1"])
    emb = record.embeddings.copy()
    emb[1, 0] = np.nan
    state.decisions["r1"] = JoinRecord(record.decision_bytes, record.prediction_bytes, emb).pack()
    batch = run(engine, state, [log.rec(feedback("r1", "i2"))])
    assert [(d.reason, d.detail) for d in batch.outputs.dead] == [
        ("learning_failed", "FloatingPointError: the decision's embedding of this item is not finite")]


def test_weights_made_non_finite_by_learning_are_a_dead_letter_and_rolled_back(model, monkeypatch):
    """Mutant 47 (``and`` -> ``or``: refused only if the weights *and* the error are non-finite) and
    51-53 (the detail): a model whose weights learning made NaN, with a finite error."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i1"))])
    stored = state.users[(model.version, "u1")]
    learn = RiverUserModel.learn_one

    def learn_to_nan(self, x, y):
        learn(self, x, y)
        self._set_state(np.full(self.dim + 1, np.nan))

    monkeypatch.setattr(RiverUserModel, "learn_one", learn_to_nan)
    batch = run(engine, state, [log.rec(feedback("r2", "i2"))])
    assert [(d.reason, d.detail) for d in batch.outputs.dead] == [
        ("learning_failed", "FloatingPointError: learning this observation made the weights non-finite")]
    assert not batch.write.users and not batch.write.population
    assert state.users[(model.version, "u1")] == stored


# --------------------------------------------------------- population statistics
def test_population_statistics_learn_each_applied_feedback_and_are_copied_per_batch(model):
    """The partition's statistics are exactly the prior plus each applied (x, reward) (mutants 108-122);
    a batch that was processed but not committed leaves them as they were (copied per batch, not
    changed in memory), and after a restart they continue from the store."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query(r, user=u), 2) for r, u in (("r1", "a"), ("r2", "b"), ("r3", "c"))])
    expected = PopulationModel(model.output_dim, prior_mean=base_prior(model))
    run(engine, state, [log.rec(feedback("r1", "i1", user="a", reward=1.0), 2)])
    expected.learn_one(decided(state, "r1")[1][0].astype(np.float64), 1.0)
    assert PopulationModel.from_bytes(state.population[(model.version, 2)]) == expected
    engine.process([log.rec(feedback("r3", "i4", user="c", reward=5.0), 2)], state)  # never committed
    run(engine, state, [log.rec(feedback("r2", "i3", user="b", reward=0.5), 2)])
    expected.learn_one(decided(state, "r2")[1][2].astype(np.float64), 0.5)
    assert PopulationModel.from_bytes(state.population[(model.version, 2)]) == expected
    engine.forget()
    run(engine, state, [log.rec(feedback("r3", "i4", user="c", reward=5.0), 2)])
    expected.learn_one(decided(state, "r3")[1][3].astype(np.float64), 5.0)
    assert PopulationModel.from_bytes(state.population[(model.version, 2)]) == expected


class PopulationReads(MemoryState):
    """Counts the population statistics read from the store (a round trip each)."""

    def __init__(self) -> None:
        super().__init__()
        self.population_reads: list[tuple[str, int]] = []

    def load_population(self, fn, partition):
        self.population_reads.append((fn, partition))
        return super().load_population(fn, partition)


def test_a_partitions_statistics_are_read_once_per_batch_and_then_kept_in_memory(model):
    """``_population`` (mutmut: this batch's copy not looked up, memory's not looked up): the statistics come
    from this batch's copy, else memory, else the store: one read per partition the first time, none once a
    committed batch left them in memory, one again after ``forget``."""
    engine, state, log = make_engine(model), PopulationReads(), Log()
    run(engine, state, [log.rec(query(f"r{i}", user=f"user{i}"), 2) for i in range(5)])
    run(engine, state, [log.rec(feedback(f"r{i}", "i1", user=f"user{i}"), 2) for i in range(3)])
    assert state.population_reads == [(model.version, 2)]
    batch = run(engine, state, [log.rec(feedback("r3", "i2", user="user3"), 2)])
    assert state.population_reads == [(model.version, 2)] and batch.counts["feedback_applied"] == 1
    engine.forget()
    run(engine, state, [log.rec(feedback("r4", "i2", user="user4"), 2)])
    assert state.population_reads == [(model.version, 2)] * 2
    assert PopulationModel.from_bytes(state.population[(model.version, 2)]).n_obs == 5


# ----------------------------------------------------------------- policy learning
def test_a_learning_policy_learns_the_chosen_items_reward_with_the_decisions_view(model):
    """Mutants 126-140 (the policy never called, or called without the decision, the embeddings or
    the reward): one example, as the policy saw it when deciding."""
    policy = RecordingPolicy()
    engine, state, log = make_engine(model, policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, emb = decided(state, "r1")
    chosen_id = decision.candidates[decision.chosen_index].id
    batch = run(engine, state, [log.rec(feedback("r1", chosen_id, reward=0.75))])
    assert batch.counts["policy_learned"] == 1 and "policy_learn_failed" not in batch.counts
    ((candidates, chosen, reward, propensity),) = policy.examples
    assert (chosen, reward, propensity) == (decision.chosen_index, 0.75, decision.propensity)
    np.testing.assert_array_equal(candidates.scores, decision.scores)
    np.testing.assert_array_equal(candidates.embeddings, emb)
    assert candidates.action_ids == ("i1", "i2", "i3", "i4")


def test_a_policy_learns_nothing_from_feedback_on_an_item_it_did_not_choose(model):
    """Mutants 125 (``or``) and 132 (``!=``): the policy's example is its own choice, or none."""
    policy = RecordingPolicy()
    engine, state, log = make_engine(model, policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, _ = decided(state, "r1")
    batch = run(engine, state, [log.rec(feedback("r1", f"i{other_than(decision.chosen_index) + 1}"))])
    assert batch.counts["feedback_applied"] == 1
    assert policy.examples == [] and "policy_learned" not in batch.counts


def test_a_policy_that_does_not_learn_is_not_asked_to(model):
    """Mutant 125 (``hasattr(...) or chosen``): epsilon-greedy has no ``learn``; feedback on its
    choice must not count a failed policy update."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, _ = decided(state, "r1")
    batch = run(engine, state, [log.rec(feedback("r1", decision.candidates[decision.chosen_index].id))])
    assert batch.counts["feedback_applied"] == 1
    assert "policy_learned" not in batch.counts and "policy_learn_failed" not in batch.counts


def test_a_policy_that_fails_to_learn_leaves_the_users_update_standing(model):
    """The shared policy skips the example; the user's model still learns it."""
    policy = RecordingPolicy(fail=True)
    engine, state, log = make_engine(model, policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, _ = decided(state, "r1")
    batch = run(engine, state, [log.rec(feedback("r1", decision.candidates[decision.chosen_index].id))])
    assert batch.counts["policy_learn_failed"] == 1 and batch.counts["feedback_applied"] == 1
    assert user_state(state, model.version).n_obs == 1 and batch.write.policy is None


@pytest.mark.parametrize("start, snapshot", [(POLICY_SNAPSHOT_EVERY - 1, True), (POLICY_SNAPSHOT_EVERY, False)])
def test_the_policys_snapshot_joins_the_write_each_time_it_crosses_a_multiple(model, start, snapshot):
    """Every POLICY_SNAPSHOT_EVERY examples (199 -> 200 writes one, 200 -> 201 does not)."""
    policy = RecordingPolicy(n_learned=start)
    engine, state, log = make_engine(model, policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, _ = decided(state, "r1")
    batch = run(engine, state, [log.rec(feedback("r1", decision.candidates[decision.chosen_index].id))])
    assert batch.write.policy == (("recording", f"snapshot at {start + 1}".encode()) if snapshot else None)


def _on_chosen(state, log, rids):
    out = []
    for rid in rids:
        decision, _ = decided(state, rid)
        out.append(log.rec(feedback(rid, decision.candidates[decision.chosen_index].id, user=decision.user_id)))
    return out


def test_every_example_a_policy_learns_or_fails_to_learn_in_a_batch_is_counted(model):
    """``_policy_learn`` (mutmut: ``policy_learned = 1``, ``policy_learn_failed = 1``): two examples in one
    batch count two, so the snapshot cadence and the dashboards see every one."""
    for fail, counter in ((False, "policy_learned"), (True, "policy_learn_failed")):
        policy = RecordingPolicy(fail=fail)
        engine, state, log = make_engine(model, policy), MemoryState(), Log()
        run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2"))])
        batch = run(engine, state, _on_chosen(state, log, ["r1", "r2"]))
        assert batch.counts[counter] == 2 and batch.counts["feedback_applied"] == 2
        assert len(policy.examples) == (0 if fail else 2)


def test_a_policy_that_fails_to_learn_is_logged_with_its_name_the_request_and_the_error(model, caplog):
    """``_policy_learn``'s warning (mutmut: its text and arguments): the operator reads which policy, which
    request and why."""
    policy = RecordingPolicy(fail=True)
    engine, state, log = make_engine(model, policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    with caplog.at_level("WARNING", logger="eddy.engine"):
        run(engine, state, _on_chosen(state, log, ["r1"]))
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("eddy.engine", "WARNING", "policy recording could not learn from request r1: this policy cannot learn")]
