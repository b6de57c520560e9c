"""What ``stream/engine/batch.py`` promises beyond the join and learning, through :meth:`Engine.process`:
re-emitting what a re-read batch already decided, the per-batch counts and timings the worker exports,
and the dead letters' texts. Each docstring names the mutants (mutmut's numbering in docs/testing.md,
"Sixth run") it was written against.
"""

from __future__ import annotations

import time

import numpy as np

import pytest

from bandits import make_policy
from stream.engine import Engine
from stream.engine.anytime import Anytime
from stream.engine.joins import JoinRecord
from stream.engine.selection import Selection
from stream.engine.serving import base_prior

from .test_engine import T0, Log, MemoryState, PoisonedModel, engine, feedback, model, outputs, query, reconciles, run  # noqa: F401
from .test_engine_anytime import late
from .test_engine_held import CountingState
from .test_engine_user_memory import NEW, v2  # noqa: F401 (v2: a fixture)

pytestmark = pytest.mark.unit


def make_engine(model, policy=None, **kw) -> Engine:
    return Engine(model, policy or make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                  seed=7, clock=lambda: T0, **kw)


def deadline(**kw) -> Anytime:
    return Anytime(deadline_ms=3_600_000, chunk_rows=3, clock=lambda: T0, **kw)


# ------------------------------------------------------------- re-read batches
def test_a_batch_that_mixes_new_requests_with_decided_ones_answers_each_in_order(engine):
    """``_reemit_decided`` 17 (``break`` for ``continue`` after a new request): a new request before a
    re-read one must not stop the re-read one, nor the new ones after it, from being answered."""
    state, log = MemoryState(), Log()
    decided = log.rec(query("old"))
    first = run(engine, state, [decided])
    batch = run(engine, state, [log.rec(query("new1")), decided, log.rec(query("new2"))])
    assert sorted(p["request_id"] for p in outputs(batch, "predictions")) == ["new1", "new2", "old"]
    assert first.outputs.predictions[0] in batch.outputs.predictions
    assert batch.counts["predictions"] == 2 and batch.counts["predictions_redelivered"] == 1
    assert reconciles(batch.counts)


def test_every_held_feedback_a_re_read_batch_re_emits_is_counted(model):
    """``_reemit_decided`` 42 (``held_redelivered = 1``): a re-read query batch that had applied two held
    feedbacks re-emits both outcomes and counts both."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2")), log.rec(feedback("r2", "i3"))])
    queries = [log.rec(query("r1")), log.rec(query("r2"))]
    first = run(engine, state, queries)
    assert first.counts["held_applied"] == 2
    again = run(engine, state, queries)
    assert again.counts["held_redelivered"] == 2 and sorted(again.outputs.records) == sorted(first.outputs.records)


# ------------------------------------------------------------------ the deadline
@pytest.mark.parametrize("anytime", [False, True])
def test_a_record_that_breaks_the_feature_net_is_a_dead_letter_that_names_the_error(model, anytime):
    """``_embed`` 24, 30 (the detail under a deadline) and the same detail without one: the operator reads
    the feature net's error."""
    engine = Engine(PoisonedModel(model), make_policy("greedy"), learner="river", join_window_s=60,
                    clock=lambda: T0, anytime=deadline() if anytime else None)
    batch = run(engine, MemoryState(), [Log().rec(query("a")), Log().rec(query("b", poison=1.0))])
    assert [(d.reason, d.detail) for d in batch.outputs.dead] == [("embedding_failed", "ValueError: poisoned input")]


def test_every_approximated_query_and_candidate_in_a_batch_is_counted(model):
    """``_embed`` 32, 36 (``candidates_approximated =``, ``queries_approximated =`` for ``+=``): two late
    queries in one batch count two queries and all five candidates."""
    engine = make_engine(model, anytime=deadline())
    batch = run(engine, MemoryState(), [Log().rec(late("r1", items=("i1", "i2", "i3"))),
                                        Log().rec(late("r2", items=("i1", "i2"), user="u2"))])
    assert batch.counts["queries_approximated"] == 2 and batch.counts["candidates_approximated"] == 5


@pytest.mark.parametrize("how", ["one pass", "one pass under a deadline", "a pass per query after a failure"])
def test_the_feature_net_time_is_the_time_its_passes_took(model, how):
    """``_embed`` 41-43 and the other passes' timings (``None``, ``+ t0``, ``- perf_counter``): the worker
    exports ``feature_net_s``; it lies between zero and the batch's own wall time."""
    net = PoisonedModel(model) if how.startswith("a pass per query") else model
    engine = Engine(net, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0,
                    anytime=deadline() if "deadline" in how else None)
    log = Log()
    records = [log.rec(query("a")), log.rec(query("b", poison=1.0) if net is not model else query("b"))]
    t0 = time.perf_counter()
    batch = engine.process(records, MemoryState())
    wall = time.perf_counter() - t0
    assert 0 < batch.feature_net_s <= wall
    assert t0 < batch.features_ready <= t0 + wall if "deadline" in how else batch.features_ready is None


# ------------------------------------------------------------------- selection
def test_serving_a_selection_makes_each_challengers_user_cache_at_once(model, v2):
    """``serve_selection`` 2 (``is None`` for ``is not None``): each challenger's users get a cache of the
    worker's size with the challenger's prior when it is served, so its figures show from the start and
    feedback to its decisions after a restart learns into it, not into a prior-less retired-version cache."""
    engine = make_engine(model, cache_users=700)
    engine.serve_selection(Selection([v2], mode="shadow"))
    assert sorted(engine.cache_figures()) == [("v1", 0, 700, 0, 0), ("v2", 0, 700, 0, 0)]
    engine.serve_selection(None)
    assert engine.selection is None


class CountingModel(PoisonedModel):
    """The real feature net (raising on a ``poison`` context), counting its forward passes and their sizes."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.passes: list[int] = []

    def embed_many(self, queries, **kw):
        self.passes.append(len(queries))
        return super().embed_many(queries)


def test_a_batchs_queries_are_embedded_in_one_forward_pass_and_one_per_query_only_after_a_failure(model):
    """``_embed`` 48-55 (the batch's pass broken, so every batch fell back to a pass per query: the same
    outputs, N times the feature net's cost): one pass for the batch; after it fails, one per query."""
    net = CountingModel(model)
    engine = Engine(net, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0)
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query(r)) for r in ("a", "b", "c")])
    assert net.passes == [3] and batch.counts["predictions"] == 3
    net.passes.clear()
    batch = run(engine, state, [log.rec(query("d")), log.rec(query("e", poison=1.0)), log.rec(query("f"))])
    assert net.passes == [3, 1, 1, 1] and batch.counts["predictions"] == 2


# --------------------------------------------------------------------- scoring
def test_a_users_stored_weights_score_their_queries_after_memory_was_dropped(model):
    """``_score_with`` 10 (the store asked for the users of feature net ``None``): after a revoke or a
    restart, a user's next query is scored with the stored weights, not a fresh model."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2"))])
    engine.forget()
    batch = run(engine, state, [log.rec(query("r3"))])
    assert outputs(batch, "decisions")[0]["user_weights_version"] == 2


def diverged_user(model, q) -> bytes:
    """A stored user state whose weights grew huge (finite, so it was stored) in the direction of ``q``'s first
    candidate: that candidate's score overflows to infinity."""
    from learners import make_user_model

    x = model.embed(q.context, [c.to_dict() for c in q.candidates])[0].astype(np.float64)
    assert np.abs(x).sum() > 0.1
    m = make_user_model("river", model.output_dim)
    m._set_state(np.append(np.where(x >= 0, 1.7e308, -1.7e308), 1.7e308))
    return m.to_bytes()


def test_a_query_scored_nan_or_infinite_is_a_dead_letter_and_the_rest_is_answered(model):
    """``_score_with`` 28-31, 55-63 (the dead letter's record, reason and detail): a query whose scores are not
    finite is that record's dead letter, saying why; the other queries are answered."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    state.users[(model.version, "diverged")] = diverged_user(model, query("b", user="diverged"))
    bad = log.rec(query("b", user="diverged"))
    with np.errstate(over="ignore"):  # the overflow is the point
        batch = run(engine, state, [log.rec(query("a")), bad, log.rec(query("c", user="u2"))])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (bad, "scoring_failed", "FloatingPointError: the user model scored a candidate NaN or infinite")]
    assert [p["request_id"] for p in outputs(batch, "predictions")] == ["a", "c"] and reconciles(batch.counts)


class FailsOnItem(make_policy("epsilon_greedy:epsilon=0.3").__class__):
    """Epsilon-greedy that needs the embeddings too (so each request is decided alone) and raises on a
    request offering the item ``bad``."""

    needs = frozenset({"scores", "embeddings"})

    def decide(self, candidates, rng):
        if "bad" in candidates.action_ids:
            raise ValueError("cannot rank the item 'bad'")
        return super().decide(candidates, rng)


def test_a_request_the_policy_cannot_decide_is_a_dead_letter_and_the_next_ones_are_answered(model):
    """``_score`` 150-159 (the dead letter's record, reason, detail; ``break`` for ``continue``)."""
    engine = Engine(model, FailsOnItem(0.3), learner="river", join_window_s=60.0, seed=7, clock=lambda: T0)
    state, log = MemoryState(), Log()
    bad = log.rec(query("b", items=("i1", "bad")))
    batch = run(engine, state, [log.rec(query("a")), bad, log.rec(query("c"))])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (bad, "scoring_failed", "ValueError: cannot rank the item 'bad'")]
    assert [p["request_id"] for p in outputs(batch, "predictions")] == ["a", "c"] and "b" not in state.decisions


def test_a_request_repeated_in_a_batch_after_its_first_record_failed_is_a_dead_letter_too(model):
    """``_score`` 199 (``.get(rid, None)``: unpacking None crashed the batch): the repeat names the failure."""
    engine = Engine(PoisonedModel(model), make_policy("greedy"), learner="river", join_window_s=60,
                    clock=lambda: T0)
    log = Log()
    first, repeat = log.rec(query("b", poison=1.0)), log.rec(query("b", poison=1.0))
    batch = run(engine, MemoryState(), [log.rec(query("a")), first, repeat])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (first, "embedding_failed", "ValueError: poisoned input"),
        (repeat, "scoring_failed", "the first record of request 'b' in this batch failed")]
    assert reconciles(batch.counts)


def test_the_logged_latency_runs_from_when_the_batch_was_polled(model):
    """``_score`` 105-107 (``/ 1000``, ``+ started``, ``* 1001``): a batch polled 100 s before it was processed
    logs 100,000 ms and a little more."""
    engine, log = make_engine(model), Log()
    started = time.perf_counter() - 100.0
    batch = engine.process([log.rec(query("r1"))], MemoryState(), started=started)
    elapsed_ms = (time.perf_counter() - started) * 1000
    (prediction,) = outputs(batch, "predictions")
    assert 100_000 <= prediction["latency_ms"] <= elapsed_ms


def test_each_decided_query_leaves_its_own_timestamp_for_the_end_to_end_latency(model):
    """``_score`` 196 (``query_ts.append(None)``): the worker measures end-to-end latency from these."""
    engine, log = make_engine(model), Log()
    batch = engine.process([log.rec(query("r1", ts=T0 - 2)), log.rec(query("r2", ts=T0 - 1))], MemoryState())
    assert batch.query_ts == [T0 - 2, T0 - 1]


@pytest.mark.parametrize("wait, pending", [(0.0, False), (0.5, True)])
def test_only_a_reward_wait_leaves_decisions_pending(model, wait, pending):
    """``_score`` 173, 174 (``>= 0``: every decision of a deployment without a wait would get a default
    reward at once; ``> 1``: a wait under a second ignored)."""
    engine, state, log = make_engine(model, reward_wait_s=wait), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1", ts=T0 - 3))])
    assert state.pending == ({(0, "r1"): T0 - 3 + wait} if pending else {})


# ---------------------------------------------------------------------- slates
def slate(rid: str, k: int, user: str = "u1"):
    from stream.events import Item, Query

    return Query(request_id=rid, user_id=user, ts=T0, context={"hour": 3.0},
                 candidates=tuple(Item(f"i{j}") for j in range(1, 6)), k=k)


def slate_decisions(batch) -> list[dict]:
    return outputs(batch, "decisions")


def test_a_slate_of_two_logs_two_decisions(model):
    """``_score`` 120 (``k > 2``): a slate of two positions is a slate."""
    batch = run(make_engine(model), MemoryState(), [Log().rec(slate("r1", 2))])
    assert [d.get("position", 0) for d in slate_decisions(batch)] == [0, 1]


def test_each_slate_position_draws_with_its_own_seed_from_the_requests(model):
    """``_score`` 131 (``fill(..., seed=None)``: every request's later positions drew with the same fixed
    seeds): position j logs ``slot_seed(the request's seed, j)``."""
    from stream.engine.serving import request_seed
    from stream.engine.slates import slot_seed

    engine, log = make_engine(model), Log()
    batch = run(engine, MemoryState(), [log.rec(slate("r1", 3)), log.rec(slate("r2", 3))])
    seeds = [(d["request_id"], d.get("position", 0), d["seed"]) for d in slate_decisions(batch)]
    assert seeds == [(r, j, slot_seed(request_seed(7, r), j)) for r in ("r1", "r2") for j in range(3)]


def test_a_greedy_slate_fills_its_later_positions_by_score(model):
    """``_score`` 129 (``fill(d, None, ...)``): with no probability left, each later position is the
    best-scored candidate not yet taken."""
    engine = Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, seed=7, clock=lambda: T0)
    ds = slate_decisions(run(engine, MemoryState(), [Log().rec(slate("r1", 3))]))
    order = sorted(range(5), key=lambda i: -ds[0]["scores"][i])
    assert [d["chosen_index"] for d in ds] == order[:3] and [d["propensity"] for d in ds] == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------------- policy
class Spy(make_policy("epsilon_greedy:epsilon=0.3").__class__):
    """Epsilon-greedy that records how it was asked: ``decide_many`` per batch, ``decide`` per request."""

    def __init__(self, epsilon: float = 0.3, needs=frozenset({"scores"})) -> None:
        super().__init__(epsilon)
        self.needs = needs
        self.calls: list[str] = []

    def decide_many(self, scores, seeds):
        self.calls.append(f"decide_many({len(scores)})")
        return super().decide_many(scores, seeds)

    def decide(self, candidates, rng):
        self.calls.append("decide")
        return super().decide(candidates, rng)


def _decisions(model, policy, rids):
    engine = Engine(model, policy, learner="river", join_window_s=60.0, seed=7, clock=lambda: T0)
    log = Log()
    batch = run(engine, MemoryState(), [log.rec(query(r, user=f"user{i % 3}")) for i, r in enumerate(rids)])
    assert not batch.outputs.dead
    return [(d["request_id"], d["pmf"], d["chosen_index"], d["seed"]) for d in outputs(batch, "decisions")]


def test_a_policy_that_needs_only_scores_decides_a_batch_in_one_call_and_others_per_request(model):
    """``_decide`` 2-9 (the batch call broken or skipped, so every batch fell back to a call per request:
    the same draws, the policy's cost per request) and 16 (a request drawn without its seed): one
    ``decide_many`` for a scores-only policy; per request for one that needs more, with the same draws."""
    rids = [f"r{i}" for i in range(20)]
    batched, alone = Spy(), Spy(needs=frozenset({"scores", "embeddings"}))
    together, one_by_one = _decisions(model, batched, rids), _decisions(model, alone, rids)
    assert batched.calls == ["decide_many(20)"] and alone.calls == ["decide"] * 20
    assert together == one_by_one


def test_a_thompson_policy_decides_with_each_users_posterior(model):
    """``_decide`` 23, 27 (the user not passed to the policy's view, so no posterior): Thompson sampling over
    a Bayesian user decides every request, with the pmf of that user's posterior."""
    from bandits import make_policy as policy
    from stream.engine import serving

    engine = Engine(model, policy("thompson"), learner="bayes", join_window_s=60.0, seed=7, clock=lambda: T0)
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2"))])
    assert not batch.outputs.dead and batch.counts["predictions"] == 2
    record = JoinRecord.unpack(state.decisions["r1"])
    user = engine.version_cache(model).get_many(["u1"], lambda ids: {})["u1"]
    view = serving.policy_candidates(np.asarray(record.decision.scores), record.embeddings.astype(np.float64),
                                     ("i1", "i2", "i3", "i4"), user)
    assert view.posterior_cov is not None
    expected = serving.decide(engine.policy, view, record.decision.seed)
    assert list(record.decision.pmf) == pytest.approx(list(expected.pmf))


# ----------------------------------------------------------------- held release
def test_holding_off_reads_no_held_feedback_and_a_limit_of_one_still_holds_and_releases(model):
    """``_release_held`` 13 (``held_max >= 0``: a store read per query batch with holding off) and 14
    (``held_max > 1``: with a limit of one, held feedback was never applied)."""
    off, state, log = make_engine(model, held_max=0), CountingState(), Log()
    run(off, state, [log.rec(query("r1"))])
    assert state.held_lookups == 0
    one, state, log = make_engine(model, held_max=1), CountingState(), Log()
    assert run(one, state, [log.rec(feedback("r2", "i2"))]).counts["feedback_held"] == 1
    assert run(one, state, [log.rec(query("r2"))]).counts["held_applied"] == 1 and not state.held


def test_held_feedback_past_its_deadline_does_not_stop_the_next_from_being_applied(model):
    """``_release_held`` 19 (``break`` for ``continue``): of two held feedbacks decided in one batch, the
    first past its deadline (left to the sweep), the second is applied."""
    clock = [T0]
    engine = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                    seed=7, clock=lambda: clock[0])
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2"))])
    clock[0] = T0 + 30
    run(engine, state, [log.rec(feedback("r2", "i2"))])
    clock[0] = T0 + 60  # r1's deadline, not yet r2's
    batch = run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    assert [o["decision"]["request_id"] for o in outputs(batch, "outcomes")] == ["r2"]
    assert batch.counts["held_applied"] == 1 and list(state.held) == [(0, "r1")]


def test_feedback_that_joins_a_known_decision_reads_no_held_feedback(model):
    """``_learn`` 16 (``or`` for ``and``: every feedback without a marker yet looked for held feedback, a
    store read per feedback batch): only feedback whose request is unknown looks."""
    engine, state, log = make_engine(model), CountingState(), Log()
    engine.held_counts({0: 0})  # the query batch skips its own lookup
    run(engine, state, [log.rec(query("r1"))])
    before = state.held_lookups
    batch = run(engine, state, [log.rec(feedback("r1", "i2"))])
    assert batch.counts["feedback_applied"] == 1 and state.held_lookups == before
    run(engine, state, [log.rec(feedback("r9", "i2"))])
    assert state.held_lookups == before + 1


# ---------------------------------------------------------------- the join's verdicts
def test_each_join_dead_letter_is_its_own_record(engine):
    """``_learn`` 115 (the dead letter without its record): a feedback the join refuses goes to the
    dead-letter topic as the record consumed, key, bytes and offset included."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2", ts=T0 - 200))])
    refused = [log.rec(feedback("r1", "i1", user="u2")), log.rec(feedback("r1", "zz")),
               log.rec(feedback("r2", "i1"))]
    batch = run(engine, state, refused)
    assert [(d.record, d.reason) for d in batch.outputs.dead] == [
        (refused[0], "user_mismatch"), (refused[1], "unknown_item"), (refused[2], "late_feedback")]


def test_redelivered_and_superseded_feedback_is_counted_each_and_the_batch_goes_on(model):
    """``_learn`` 131, 140 (``= 1`` for ``+= 1``) and 136, 145 (``break`` for ``continue``): two records read
    again and two default rewards after real ones are four records counted, and the feedback after them in
    the same batch is still applied."""
    from .test_engine_rewards import WAIT, default

    engine = make_engine(model, reward_wait_s=WAIT)
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query(r)) for r in ("r1", "r2", "r3")])
    applied = [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2"))]
    run(engine, state, applied)
    batch = run(engine, state, applied + [log.rec(default("r1")), log.rec(default("r2")),
                                          log.rec(feedback("r3", "i3"))])
    assert (batch.counts["feedback_redelivered"], batch.counts["default_reward_superseded"],
            batch.counts["feedback_applied"]) == (2, 2, 1)
    assert [o["decision"]["request_id"] for o in outputs(batch, "outcomes")] == ["r1", "r2", "r3"]
    assert reconciles(state.counts)


# ------------------------------------------------------------ counts of the batch
def test_every_query_served_from_coarsened_cache_entries_is_counted(model):
    """``_score`` 187, 191 (``=`` for ``+=``): two queries near a cached one count two queries and all of
    their candidates."""
    from features.cache import FeatureCaches

    engine = make_engine(model, feature_caches=FeatureCaches(capacity=1000, lsh_bits=8, kinds=("mlp",)))
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("n1", hour=3.0))])
    batch = run(engine, state, [log.rec(query("n2", hour=3.001)), log.rec(query("n3", user="u2", hour=3.002))])
    assert batch.counts["queries_coarsened"] == 2 and batch.counts["candidates_coarsened"] == 8


def test_a_selection_skipped_for_a_batch_answered_by_default_is_counted(model, v2):
    """``_score`` 57 (``plan_or_none(..., None)``: the count had no batch to go to): in apprentice mode a
    selection has nothing to choose; the batch counts it skipped and is answered."""
    engine = make_engine(model)
    engine.serve_selection(Selection([v2], mode="exp3"))
    engine.serve_default = True
    batch = run(engine, MemoryState(), [Log().rec(query("r1"))])
    assert batch.counts["selection_skipped"] == 1 and batch.counts["predictions"] == 1


def test_feedback_that_fails_to_learn_is_a_dead_letter_of_its_own_record_and_a_held_one_is_counted_apart(
        model, monkeypatch):
    """``_learn`` 210 (the learning failure's dead letter without its record), 213, 217 (a held record's
    failure counted as consumed a second time, so the counts no longer reconcile) and 221 (``break``: the
    feedback after a failure in the same batch skipped)."""
    from .test_engine_learning import fail_on_reward

    engine, state, log = make_engine(model), MemoryState(), Log()
    early = log.rec(feedback("r1", "i2", reward=0.25))
    run(engine, state, [early, log.rec(query("r2"))])
    fail_on_reward(monkeypatch, 0.25)
    released = run(engine, state, [log.rec(query("r1"))])
    assert [(d.record, d.reason) for d in released.outputs.dead] == [(early, "learning_failed")]
    assert released.counts["held_dead_lettered"] == 1 and released.counts["dead_lettered"] == 0
    direct = log.rec(feedback("r2", "i3", reward=0.25))
    batch = run(engine, state, [direct, log.rec(feedback("r1", "i2", reward=1.0))])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (direct, "learning_failed", "ValueError: boom after the update")]
    assert batch.counts["dead_lettered"] == 1 and batch.counts["feedback_applied"] == 1  # the batch goes on
    assert reconciles(state.counts)


# ---------------------------------------------------------------- memory after a batch
def test_a_committed_batchs_users_are_served_from_memory_next(model):
    """``commit`` 1, 2 (``put(None, model)``, ``put(uid, None)``: the learned users not put back, so the next
    query of a user evicted during the batch reads the store again): with room for one user, the last user
    a committed batch learned answers its next query from memory."""
    engine, log = make_engine(model, cache_users=1), Log()
    state = CountingState()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2"))])
    run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2", user="u2"))])
    ((_, held, _, lookups, hits),) = [f for f in engine.cache_figures() if f[0] == model.version]
    after = run(engine, state, [log.rec(query("r3", user="u2"))])
    ((_, _, _, lookups2, hits2),) = [f for f in engine.cache_figures() if f[0] == model.version]
    assert held == 1 and (lookups2 - lookups, hits2 - hits) == (1, 1)
    assert outputs(after, "decisions")[0]["user_weights_version"] == 1


def test_reinstalling_the_live_version_without_a_warmed_cache_keeps_its_cached_features(model):
    """``install`` 2 (``or`` for ``and``: installing without a warmed cache dropped the live one, so every
    feature was computed again)."""
    from features.cache import FeatureCaches

    caches = FeatureCaches(capacity=1000)
    engine, state, log = make_engine(model, feature_caches=caches), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    engine.install(model)
    run(engine, state, [log.rec(query("r2"))])
    assert (caches.figures()["hits"], caches.figures()["misses"]) == (4, 4)
    make_engine(model).install(model, caches.warmed(model, []))  # an engine without caches ignores one


# -------------------------------------------------------------------- decoding
def test_a_record_that_does_not_decode_is_a_dead_letter_with_the_decoders_reason_and_detail(engine):
    """``process`` 37 (the decoder's detail dropped: the dead letter's ``eddy.error`` header)."""
    from stream import events

    state, log = MemoryState(), Log()
    bad = log.raw("query", b'{"schema":"eddy.query/1"}')
    with pytest.raises(events.EventError) as err:
        events.decode_query(bad.value)
    batch = run(engine, state, [bad])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [(bad, err.value.reason, err.value.detail)]
    assert err.value.detail


def test_a_decoder_bug_is_a_dead_letter_of_its_record_not_a_stopped_partition(engine, monkeypatch):
    """``process`` 41-49 (the dead letter of a decoder that raised something other than ``EventError``:
    its record, reason ``undecodable``, the error's type and text)."""
    from stream import events

    decode = events.decode_feedback

    def buggy(value):
        if b"i3" in value:
            raise KeyError("a decoder bug")
        return decode(value)

    monkeypatch.setattr(events, "decode_feedback", buggy)
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    bad = log.rec(feedback("r1", "i3"))
    batch = run(engine, state, [bad, log.rec(feedback("r1", "i2"))])
    assert [(d.record, d.reason, d.detail) for d in batch.outputs.dead] == [
        (bad, "undecodable", "KeyError: 'a decoder bug'")]
    assert batch.counts["feedback_applied"] == 1 and reconciles(batch.counts)


# ---------------------------------------------------------------------- defaults
def test_the_engines_documented_defaults(model):
    """``__init__`` 1-3, 5, 6: seed 0, 100,000 cached users, 10,000 held feedbacks per partition, rewards
    ``earliest``."""
    from stream.engine.serving import request_seed

    engine = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0)
    assert (engine.held_max, engine.cache_users, engine.reward_aggregation) == (10_000, 100_000, "earliest")
    batch = run(engine, MemoryState(), [Log().rec(query("r1"))])
    assert outputs(batch, "decisions")[0]["seed"] == request_seed(0, "r1")
    assert [f[2] for f in engine.cache_figures()] == [100_000]


# -------------------------------------------------------------- policy snapshots
class Uncounted(make_policy("epsilon_greedy:epsilon=0.3").__class__):
    """A learning policy that keeps no ``n_learned`` count (nothing says when to snapshot it)."""

    name = "uncounted"

    def learn(self, candidates, chosen, reward, propensity) -> None:
        pass

    def to_bytes(self) -> bytes:
        return b"snapshot"


@pytest.mark.parametrize("policy", ["uncounted", "at 250"])
def test_no_snapshot_between_multiples_or_without_a_count(model, policy):
    """``process`` 92 (``or``: a learning policy without ``n_learned`` crashed the batch) and 98 (``/`` for
    ``//``: 250 -> 251 crossed no multiple of 200 but wrote a snapshot)."""
    from .test_engine_learning import RecordingPolicy, decided

    policy = RecordingPolicy(n_learned=250) if policy == "at 250" else Uncounted()
    engine, state, log = make_engine(model, policy=policy), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    decision, _ = decided(state, "r1")
    batch = run(engine, state, [log.rec(feedback("r1", decision.candidates[decision.chosen_index].id))])
    assert batch.counts["policy_learned"] == 1 and batch.write.policy is None


# -------------------------------------------------------------- the reward wait
def test_every_default_reward_and_every_sum_applied_in_a_batch_is_counted(model):
    """``_learn`` 266, 271 (``default_rewards = 1``, ``reward_sums_applied = 1``)."""
    from .test_engine_rewards import WAIT, default
    from .test_engine_sum import SumState

    for aggregation, counter in (("earliest", "default_rewards"), ("sum", "reward_sums_applied")):
        engine = make_engine(model, reward_wait_s=WAIT, reward_aggregation=aggregation)
        state, log = SumState(), Log()
        run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
        if aggregation == "sum":
            run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2"))])
        batch = run(engine, state, [log.rec(default("r1")), log.rec(default("r2"))])
        assert batch.counts[counter] == 2 and batch.counts["feedback_applied"] == 2


@pytest.mark.parametrize("wait", [0.0, 0.5])
def test_a_reward_ends_its_wait_and_without_a_wait_nothing_is_written_for_it(model, wait):
    """``_learn`` 276 (``>= 0``: a deployment without a wait wrote a pending removal per feedback), 277 (``> 1``:
    a reward within a wait under a second left the decision pending, so a default reward followed) and 279
    (``pending.pop(None)``: a query and its reward in one batch wrote the decision pending and rewarded)."""
    engine, state, log = make_engine(model, reward_wait_s=wait), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    applied = run(engine, state, [log.rec(feedback("r1", "i1", ts=T0 + 0.25))])  # within the wait
    both = run(engine, state, [log.rec(query("r2")), log.rec(feedback("r2", "i2", ts=T0 + 0.25))])
    assert applied.counts["feedback_applied"] == both.counts["feedback_applied"] == 1 and not state.pending
    assert applied.write.rewarded == ({(0, "r1")} if wait else set()) and both.write.pending == {}


class SlowBatchModel(PoisonedModel):
    """The real feature net, whose pass over more than one query takes half a second and then fails."""

    def embed_many(self, queries, **kw):
        if len(queries) > 1:
            time.sleep(0.5)
            raise ValueError("the batch pass failed")
        return self._m.embed_many(queries)


def test_the_feature_net_time_of_a_batch_that_fell_back_includes_the_failed_pass(model):
    """``_embed`` 81 (``=`` for ``+=``: the failed batch pass's time dropped from ``feature_net_s``)."""
    engine = Engine(SlowBatchModel(model), make_policy("greedy"), learner="river", join_window_s=60,
                    clock=lambda: T0)
    log = Log()
    t0 = time.perf_counter()
    batch = engine.process([log.rec(query("a")), log.rec(query("b"))], MemoryState())
    assert 0.5 <= batch.feature_net_s <= time.perf_counter() - t0 and batch.counts["predictions"] == 2


# ---------------------------------------------------------------------- install
def test_an_offline_trained_user_is_scored_with_its_offline_weights(model):
    """``install`` 15, 20 (the live version's cache made without the offline users): a user the feature net
    was trained on, unknown to the store, starts from its own offline weights, not the population's."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])  # u1 is one of the offline users
    record = JoinRecord.unpack(state.decisions["r1"])
    w, b = model.user_weights["u1"]
    expected = record.embeddings.astype(np.float64) @ np.asarray(w, dtype=np.float64) + b
    np.testing.assert_allclose(record.decision.scores, expected, rtol=1e-6)
    assert not np.allclose(w, model.mean_user_weights()[0])


def test_installing_a_version_whose_feedback_came_first_gives_it_the_full_cache_and_its_prior(model, v2):
    """``install`` 8 (``m is not model``: the installed version kept the small prior-less cache that feedback
    for it had made, so its new users started from zeros)."""
    state, log = MemoryState(), Log()
    run(make_engine(v2), state, [log.rec(query("r1"))])
    engine = make_engine(model, cache_users=3_000)
    run(engine, state, [log.rec(feedback("r1", "i2"))])  # v2's users, before v2 is installed here
    engine.install(v2)
    assert {f[0]: f[2] for f in engine.cache_figures()}["v2"] == 3_000
    batch = run(engine, state, [log.rec(query("r2", user=NEW))])
    record = JoinRecord.unpack(state.decisions["r2"])
    prior = base_prior(v2)
    np.testing.assert_allclose(record.decision.scores,
                               record.embeddings.astype(np.float64) @ prior[:-1] + prior[-1], rtol=1e-6)
    assert batch.counts["predictions"] == 1


def test_feedback_for_a_decision_made_under_selection_still_learns_once_selection_is_off(model, v2):
    """``_learn`` 222 (``or`` for ``and``: the selector asked to learn when there is none, failing the batch):
    a decision logged with the versions' scores, then a restart without model selection."""
    from .test_engine_selection import SelectionState

    state, log = SelectionState(), Log()
    with_selection = make_engine(model)
    with_selection.serve_selection(Selection([v2], mode="shadow"))
    decided = run(with_selection, state, [log.rec(query("r1"))])
    assert set(outputs(decided, "decisions")[0]["version_scores"]) == {"v1", "v2"}
    batch = run(make_engine(model), state, [log.rec(feedback("r1", "i2"))])
    assert batch.counts["feedback_applied"] == 1 and "selection_learned" not in batch.counts
